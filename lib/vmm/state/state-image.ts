// The layout of a device model's state file (one per device model, memory-mapped, in the state
// directory): what survives the daemon whatever kills it. A header, the request journal the
// native ATTACH thread writes (request-journal.ts), and two slots for the saved state.
//
// Torn writes. A SIGKILL can land between any two stores. The state is written into the slot
// that is not the latest (sequence number, length, payload, FNV-1a checksum of all three), and
// only then is the header's hint moved to it: the latest complete image is always intact in the
// other slot. A reader takes the valid slot with the highest sequence number and ignores the
// hint, so a torn hint or a torn slot costs at most the newest image, never a corrupt one. The
// file is in memory shared with the next process (tmpfs, the page cache), so program order of
// the stores is what counts; the hint is stored with Atomics so it is not moved before them.
// A power cut is not covered: /run does not survive one, and neither do the frontends.
//
//   0   u32 magic "NBST"      4  u32 layout version     8  u32 latest slot hint (0/1)
//   12  u32 slot bytes        16 u32 journal slots       20..64 reserved
//   64  journal: JOURNAL_SLOTS x 64 bytes (native/journal.h)
//   SLOT_BASE + i * SLOT_BYTES: u32 seq, u32 length, u32 checksum, u32 reserved, payload

export const STATE_MAGIC = 0x5453424e; // "NBST" little-endian
export const STATE_LAYOUT_VERSION = 1;
export const JOURNAL_OFFSET = 64;
export const JOURNAL_SLOTS = 64;
export const JOURNAL_SLOT_BYTES = 64;
export const SLOT_BASE = 8192;
export const SLOT_BYTES = 8192;
const SLOT_HEADER = 16;
export const MAX_PAYLOAD = SLOT_BYTES - SLOT_HEADER;
export const STATE_FILE_BYTES = SLOT_BASE + 2 * SLOT_BYTES;

export type ReadOutcome =
  | { readonly kind: 'empty' }
  | { readonly kind: 'ok'; readonly payload: Uint8Array; readonly seq: number }
  | { readonly kind: 'corrupt'; readonly reason: string };

/** FNV-1a, 32 bits: cheap, and enough to tell a torn or scribbled slot from a whole one. */
export function fnv1a(bytes: Uint8Array, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < bytes.length; i += 1) {
    h ^= bytes[i] as number;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** FNV-1a of one little-endian u32, continuing from `h`. */
function fnv1aU32(value: number, h: number): number {
  for (let i = 0; i < 4; i += 1) {
    h ^= (value >>> (8 * i)) & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** fnv1a over (seq, length) as two little-endian u32, then the payload. Allocates nothing: it runs on every save. */
function slotChecksum(seq: number, payload: Uint8Array): number {
  return fnv1a(payload, fnv1aU32(payload.length, fnv1aU32(seq, 0x811c9dc5)));
}

export class StateImage {
  private readonly view: DataView;
  private readonly words: Int32Array;
  /** The header words of slot 0 and 1 (made once: write() is on every register write). */
  private readonly slotWords: readonly [Int32Array, Int32Array];
  private seq = 0;
  private latest = -1;

  /** `bytes` is the whole file (STATE_FILE_BYTES), usually a shared mapping of it. */
  constructor(readonly bytes: Uint8Array) {
    if (bytes.byteLength < STATE_FILE_BYTES || bytes.byteOffset % 8 !== 0) throw new RangeError(`a state image needs ${STATE_FILE_BYTES} bytes, 8-aligned`);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, STATE_FILE_BYTES);
    this.words = new Int32Array(bytes.buffer, bytes.byteOffset, 16);
    this.slotWords = [0, 1].map((slot) => new Int32Array(bytes.buffer, bytes.byteOffset + SLOT_BASE + slot * SLOT_BYTES, 4)) as [Int32Array, Int32Array];
  }

  /** Whether the header says this is a state file of this layout (a new file reads as zeros). */
  get formatted(): boolean {
    return this.view.getUint32(0, true) === STATE_MAGIC && this.view.getUint32(4, true) === STATE_LAYOUT_VERSION;
  }

  /** Writes a fresh header and clears the slots and the journal (a new or discarded file). */
  format(): void {
    this.bytes.fill(0, 0, STATE_FILE_BYTES);
    this.view.setUint32(4, STATE_LAYOUT_VERSION, true);
    this.view.setUint32(12, SLOT_BYTES, true);
    this.view.setUint32(16, JOURNAL_SLOTS, true);
    Atomics.store(this.words, 0, STATE_MAGIC | 0);
    this.seq = 0;
    this.latest = -1;
  }

  /** The newest whole image, or why there is none. Remembers it, so that save() writes the other slot. */
  read(): ReadOutcome {
    if (!this.formatted) return this.view.getUint32(0, true) === 0 ? { kind: 'empty' } : { kind: 'corrupt', reason: 'not a node-bao state file of this version' };
    let best: { slot: number; seq: number; payload: Uint8Array } | undefined;
    const problems: string[] = [];
    for (let slot = 0; slot < 2; slot += 1) {
      const at = SLOT_BASE + slot * SLOT_BYTES;
      const seq = this.view.getUint32(at, true);
      const length = this.view.getUint32(at + 4, true);
      const sum = this.view.getUint32(at + 8, true);
      if (seq === 0 && length === 0) continue; // never written
      if (length > MAX_PAYLOAD) {
        problems.push(`slot ${slot}: length ${length} too large`);
        continue;
      }
      const payload = this.bytes.slice(at + SLOT_HEADER, at + SLOT_HEADER + length);
      if (slotChecksum(seq, payload) !== sum) {
        problems.push(`slot ${slot}: checksum mismatch`);
        continue;
      }
      if (best === undefined || seq > best.seq) best = { slot, seq, payload };
    }
    if (best === undefined) return problems.length === 0 ? { kind: 'empty' } : { kind: 'corrupt', reason: problems.join('; ') };
    this.seq = best.seq;
    this.latest = best.slot;
    return { kind: 'ok', payload: best.payload, seq: best.seq };
  }

  /** Saves `payload` as the newest image; a kill at any store leaves the previous one readable. */
  write(payload: Uint8Array): void {
    if (payload.length > MAX_PAYLOAD) throw new RangeError(`state of ${payload.length} bytes exceeds the slot (${MAX_PAYLOAD})`);
    const slot = this.latest === 0 ? 1 : 0;
    const seq = (this.seq + 1) >>> 0 || 1;
    const at = SLOT_BASE + slot * SLOT_BYTES;
    // Invalidate first: a slot half-overwritten must not pass for its older self.
    this.view.setUint32(at + 8, ~slotChecksum(this.view.getUint32(at, true), new Uint8Array(0)) >>> 0, true);
    this.bytes.set(payload, at + SLOT_HEADER);
    this.view.setUint32(at, seq, true);
    this.view.setUint32(at + 4, payload.length, true);
    // The checksum last, through Atomics: not moved before the stores it covers.
    Atomics.store(this.slotWords[slot], 2, slotChecksum(seq, payload) | 0);
    Atomics.store(this.words, 2, slot);
    this.seq = seq;
    this.latest = slot;
  }
}
