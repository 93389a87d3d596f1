// The request journal in a state file (layout in native/journal.h): the ATTACH thread records
// each request it takes (state TAKEN) before anything handles it; the process marks it
// COMPLETING just before its COMPLETE and frees the slot after. A process started after one
// that died finds there the accesses it never completed, whose frontend vCPUs are paused.
//
// What a slot's state tells the next process:
//   TAKEN      never completed: complete it (a read is evaluated again, from the restored state;
//              a register write is applied again, which virtio-mmio registers tolerate).
//   COMPLETING the COMPLETE may or may not have reached the hypervisor. On Bao a request id is a
//              vCPU's slot, reused by that vCPU's next access, so completing it again could answer
//              an access this process never saw: it is dropped (a kill inside that window of a
//              few instructions leaves the vCPU paused; it is counted and logged).
//   WRITING    the thread was killed while recording it: nothing usable (the same window, at the
//              other end; a request taken outside the native thread, record()). Holding the
//              marker, it was a slot being armed (below): nothing was handed over, not counted.
//   ARMED      the slot was the buffer of an ATTACH in progress (native/journal.h): its request
//              holds the marker (op ASK) until the kernel copies a request over it. Still the
//              marker: nothing was handed over. A READ or WRITE: the driver handed it over and the
//              thread died before marking it TAKEN: complete it, as TAKEN.

import { decodeRequests, encodeRequests, type IoRequest } from '../../dispatcher/request.js';
import { JOURNAL_OFFSET, JOURNAL_SLOT_BYTES, JOURNAL_SLOTS } from './state-image.js';

const FREE = 0;
const TAKEN = 1;
const COMPLETING = 2;
const WRITING = 3;
const ARMED = 4;
const OP_WRITE = 0;
const OP_READ = 1;
const OP_ASK = 2;
const REQUEST_OFFSET = 8;
const REQUEST_BYTES = 48;
// In 32-bit words: a slot, and the low words of the request's addr (byte 8) and request_id (40).
const SLOT_WORDS = JOURNAL_SLOT_BYTES / 4;
const WORDS = JOURNAL_SLOTS * SLOT_WORDS;
const ADDR_WORD = (REQUEST_OFFSET + 8) / 4;
const ID_WORD = (REQUEST_OFFSET + 40) / 4;
// The low and high words of the request's op (byte 16).
const OP_WORD = (REQUEST_OFFSET + 16) / 4;

export interface JournalLeftovers {
  /** Requests a dead process took and never completed: complete them. */
  readonly taken: IoRequest[];
  /** Slots whose COMPLETE may have been issued, or whose recording was cut short: dropped. */
  readonly uncertain: number;
}

export class RequestJournal {
  private readonly words: Int32Array;

  /** `bytes` is the whole state file mapping (its buffer is what the native thread gets). */
  constructor(private readonly bytes: Uint8Array) {
    this.words = new Int32Array(bytes.buffer, bytes.byteOffset + JOURNAL_OFFSET, (JOURNAL_SLOTS * JOURNAL_SLOT_BYTES) / 4);
  }

  /** What the AttachLoop option needs. */
  get nativeTable(): { readonly buffer: ArrayBuffer; readonly offset: number; readonly slots: number } {
    return { buffer: this.bytes.buffer as ArrayBuffer, offset: this.bytes.byteOffset + JOURNAL_OFFSET, slots: JOURNAL_SLOTS };
  }

  /** Reads what a previous process left and clears every slot (call before attaching). */
  takeLeftovers(): JournalLeftovers {
    const taken: IoRequest[] = [];
    let uncertain = 0;
    for (let slot = 0; slot < JOURNAL_SLOTS; slot += 1) {
      const state = Atomics.load(this.words, this.stateIndex(slot));
      if (state === ARMED) {
        const op = this.words[this.stateIndex(slot) + OP_WORD]!;
        const opHigh = this.words[this.stateIndex(slot) + OP_WORD + 1]!;
        if (opHigh !== 0 || (op !== OP_READ && op !== OP_WRITE)) {
          // the marker (or, if the kernel ever wrote something else, nothing we can complete)
          Atomics.store(this.words, this.stateIndex(slot), FREE);
          continue;
        }
      }
      if (state === TAKEN || state === ARMED) {
        const at = this.bytes.byteOffset + JOURNAL_OFFSET + slot * JOURNAL_SLOT_BYTES + REQUEST_OFFSET;
        const raw = this.bytes.buffer.slice(at, at + REQUEST_BYTES) as ArrayBuffer;
        taken.push(decodeRequests(raw, 1)[0]!);
      } else if (state === COMPLETING || (state === WRITING && !this.holdsMarker(slot))) {
        uncertain += 1;
      }
      Atomics.store(this.words, this.stateIndex(slot), FREE);
    }
    return { taken, uncertain };
  }

  /**
   * The slot recording `req`, or -1 (not recorded: the journal was full, or none). Called at
   * every COMPLETE: a scan of the state words, comparing the low words of the request id and
   * the address as int32 (no DataView), from the low slots the native thread fills first.
   */
  find(req: IoRequest): number {
    const words = this.words;
    const id = req.requestId % 0x1_0000_0000 | 0;
    const addr = req.addr % 0x1_0000_0000 | 0;
    for (let base = 0; base < WORDS; base += SLOT_WORDS) {
      if (Atomics.load(words, base) !== TAKEN) continue;
      if (words[base + ID_WORD] === id && words[base + ADDR_WORD] === addr) return base / SLOT_WORDS;
    }
    return -1;
  }

  /** Records a request taken outside the native thread (one recovered from the journal). */
  record(req: IoRequest): number {
    const raw = new Uint8Array(encodeRequests([req]));
    for (let slot = 0; slot < JOURNAL_SLOTS; slot += 1) {
      if (Atomics.compareExchange(this.words, this.stateIndex(slot), FREE, WRITING) !== FREE) continue;
      this.bytes.set(raw, JOURNAL_OFFSET + slot * JOURNAL_SLOT_BYTES + REQUEST_OFFSET);
      Atomics.store(this.words, this.stateIndex(slot), TAKEN);
      return slot;
    }
    return -1;
  }

  markCompleting(slot: number): void {
    if (slot >= 0) Atomics.store(this.words, this.stateIndex(slot), COMPLETING);
  }

  release(slot: number): void {
    if (slot >= 0) Atomics.store(this.words, this.stateIndex(slot), FREE);
  }

  /** The slot's request is the marker an armed slot starts with (all zero, op ASK): a kill while arming it. */
  private holdsMarker(slot: number): boolean {
    const base = this.stateIndex(slot) + REQUEST_OFFSET / 4;
    for (let w = 0; w < REQUEST_BYTES / 4; w += 1) {
      if (this.words[base + w] !== (base + w === this.stateIndex(slot) + OP_WORD ? OP_ASK : 0)) return false;
    }
    return true;
  }

  private stateIndex(slot: number): number {
    return (slot * JOURNAL_SLOT_BYTES) / 4;
  }
}
