// Counters of one virtio-blk device: requests by type, bytes, I/O errors by errno, guest faults
// by kind (each malformed request is answered with an error status and counted here), and the
// in-flight gauge. Read by the daemon's status and metrics endpoints and by tests.

import type { MalformedKind } from './request.js';

export class BlkMetrics {
  reads = 0;
  writes = 0;
  flushes = 0;
  getIds = 0;
  discards = 0;
  writeZeroes = 0;
  readBytes = 0;
  writtenBytes = 0;
  /** WRITE_ZEROES ranges the backing could not zero in place (no ZERO_RANGE): holed or written with zeros (zeroes.ts). */
  writeZeroesFallbacks = 0;
  /** Requests answered IOERR because the backing failed (see ioErrorsByCode). */
  ioErrors = 0;
  /** Requests of a type the device does not serve, answered UNSUPP. */
  unsupported = 0;
  /** Malformed requests answered IOERR without any I/O (see malformedByKind). */
  malformed = 0;
  /** Chains without a writable byte for the status, returned with length 0. */
  unanswerable = 0;
  /** Malformed descriptor chains (from takeChain): each put the device in NEEDS_RESET. */
  invalidChains = 0;
  /** Requests whose I/O is running now (a gauge), and the most seen at once. */
  inFlight = 0;
  maxInFlight = 0;
  /** Completions that arrived after a reset and were dropped (the ring was forgotten). */
  completionsAfterReset = 0;
  /** Runs of a queue's worker that stopped at the budget and yielded to the event loop. */
  queueYields = 0;
  /** Runs that waited for a rate limit (blk sets none; part of the workers' counters). */
  rateLimitWaits = 0;
  activations = 0;
  resets = 0;
  /** 1 when the io_uring engine serves this device, 0 for the thread pool. */
  engineIoUring = 0;
  readonly ioErrorsByCode: Record<string, number> = {};
  readonly malformedByKind: Partial<Record<MalformedKind, number>> = {};

  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this)) if (typeof v === 'number') out[k] = v;
    for (const [k, v] of Object.entries(this.ioErrorsByCode)) out[`ioErrors_${k}`] = v;
    for (const [k, v] of Object.entries(this.malformedByKind)) out[`malformed_${k}`] = v ?? 0;
    return out;
  }
}
