// InFlightRequests: the trapped accesses a DeviceModelServer was handed and has not completed
// yet, kept per batch (the arrays the ATTACH loop delivers), so that taking a request costs no
// allocation: the hot path adds one batch and then moves a cursor as its requests are completed.
//
// DeviceModelServer completes in arrival order (a write that waits for the device holds the
// accesses behind it, in order), so the request being completed is normally the one under the
// cursor. A completion out of that order is still honoured, never dropped: it is noted in a set
// that exists only once that happens, and the cursor skips it later. Containment does not rest on
// the order: whatever is taken and not yet completed is returned by drain(), in order.

import type { IoRequest } from '../dispatcher/index.js';

export class InFlightRequests {
  /** Batches with at least one request not completed; the first is partly done up to `cursor`. */
  private readonly batches: (readonly IoRequest[])[] = [];
  private cursor = 0;
  /** Requests completed ahead of the cursor (none while completions follow arrival order). */
  private ahead: Set<IoRequest> | undefined;
  private count = 0;

  /** Requests taken and not completed. */
  get size(): number {
    return this.count;
  }

  /** Takes a delivered batch (kept by reference: the caller must not change it). */
  add(batch: readonly IoRequest[]): void {
    if (batch.length === 0) return;
    this.batches.push(batch);
    this.count += batch.length;
  }

  /**
   * Marks `req` completed. Returns false if it is not in flight (completed already, or never
   * taken): the caller must not complete it again.
   */
  take(req: IoRequest): boolean {
    const head = this.batches[0];
    if (head === undefined) return false;
    if (head[this.cursor] === req) {
      this.count -= 1;
      this.cursor += 1;
      this.skipDone();
      return true;
    }
    if (this.ahead?.has(req) === true || !this.holds(req)) return false;
    (this.ahead ??= new Set()).add(req);
    this.count -= 1;
    return true;
  }

  /** Every request not completed, in arrival order; afterwards nothing is in flight. */
  drain(): IoRequest[] {
    const out: IoRequest[] = [];
    for (let b = 0; b < this.batches.length; b += 1) {
      const batch = this.batches[b]!;
      for (let i = b === 0 ? this.cursor : 0; i < batch.length; i += 1) {
        const req = batch[i]!;
        if (this.ahead?.has(req) !== true) out.push(req);
      }
    }
    this.batches.length = 0;
    this.cursor = 0;
    this.ahead = undefined;
    this.count = 0;
    return out;
  }

  /** Whether `req` is at or after the cursor (linear: only on an out-of-order completion). */
  private holds(req: IoRequest): boolean {
    for (let b = 0; b < this.batches.length; b += 1) {
      const batch = this.batches[b]!;
      const from = b === 0 ? this.cursor : 0;
      if (batch.indexOf(req, from) >= 0) return true;
    }
    return false;
  }

  /** Moves the cursor past completed requests and finished batches. */
  private skipDone(): void {
    for (;;) {
      const head = this.batches[0];
      if (head === undefined) {
        this.cursor = 0;
        this.ahead = undefined;
        return;
      }
      const ahead = this.ahead;
      if (ahead !== undefined) {
        while (this.cursor < head.length && ahead.delete(head[this.cursor]!)) this.cursor += 1;
        if (ahead.size === 0) this.ahead = undefined;
      }
      if (this.cursor < head.length) return;
      this.batches.shift();
      this.cursor = 0;
    }
  }
}
