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
//              other end).

import { decodeRequests, encodeRequests, type IoRequest } from '../../dispatcher/request.js';
import { JOURNAL_OFFSET, JOURNAL_SLOT_BYTES, JOURNAL_SLOTS } from './state-image.js';

const FREE = 0;
const TAKEN = 1;
const COMPLETING = 2;
const WRITING = 3;
const REQUEST_OFFSET = 8;
const REQUEST_BYTES = 48;

export interface JournalLeftovers {
  /** Requests a dead process took and never completed: complete them. */
  readonly taken: IoRequest[];
  /** Slots whose COMPLETE may have been issued, or whose recording was cut short: dropped. */
  readonly uncertain: number;
}

export class RequestJournal {
  private readonly words: Int32Array;
  private readonly view: DataView;

  /** `bytes` is the whole state file mapping (its buffer is what the native thread gets). */
  constructor(private readonly bytes: Uint8Array) {
    this.words = new Int32Array(bytes.buffer, bytes.byteOffset + JOURNAL_OFFSET, (JOURNAL_SLOTS * JOURNAL_SLOT_BYTES) / 4);
    this.view = new DataView(bytes.buffer, bytes.byteOffset + JOURNAL_OFFSET, JOURNAL_SLOTS * JOURNAL_SLOT_BYTES);
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
      if (state === TAKEN) {
        const at = this.bytes.byteOffset + JOURNAL_OFFSET + slot * JOURNAL_SLOT_BYTES + REQUEST_OFFSET;
        const raw = this.bytes.buffer.slice(at, at + REQUEST_BYTES) as ArrayBuffer;
        taken.push(decodeRequests(raw, 1)[0]!);
      } else if (state === COMPLETING || state === WRITING) {
        uncertain += 1;
      }
      Atomics.store(this.words, this.stateIndex(slot), FREE);
    }
    return { taken, uncertain };
  }

  /** The slot recording `req`, or -1 (not recorded: the journal was full, or none). */
  find(req: IoRequest): number {
    for (let slot = 0; slot < JOURNAL_SLOTS; slot += 1) {
      if (Atomics.load(this.words, this.stateIndex(slot)) !== TAKEN) continue;
      const at = slot * JOURNAL_SLOT_BYTES + REQUEST_OFFSET;
      if (this.view.getUint32(at + 40, true) === req.requestId % 0x1_0000_0000 && this.view.getUint32(at + 8, true) === req.addr % 0x1_0000_0000) return slot;
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

  private stateIndex(slot: number): number {
    return (slot * JOURNAL_SLOT_BYTES) / 4;
  }
}
