// The fast engine: io_uring (through the addon's thin ring, injected). Requests become SQEs whose
// iovecs point straight at the guest's buffers; the requests queued in one turn of the event
// loop go to the kernel together, and completions arrive through an eventfd that libuv polls,
// so no thread is tied up per request. Write-through writes carry RWF_DSYNC; a flush is
// IORING_OP_FSYNC with DATASYNC; discard and write-zeroes are IORING_OP_FALLOCATE. A short
// transfer continues where it stopped, as the thread-pool engine's loop does.
//
// Submissions carry about `submitBytes` of data each (default 128 KiB, at least one request).
// A buffered read whose data is in the page cache runs inside io_uring_enter itself, on the
// event loop's thread: one enter for four 1 MiB reads copied all four before any completed,
// so the driver got them back together, one interrupt for the batch, and the device then
// idled until the driver had answered and sent the next batch (lock-step). With the budget,
// each enter is followed at once by a reap: what the kernel finished inline completes (its used
// entry and interrupt go out in this turn's microtasks) before the next enter, which waits for
// the next turn of the event loop (setImmediate), so the driver works on the first completion
// while the later requests copy, and kicks, other devices and the rest of the loop are served
// between two copies. Small requests still go many to one enter (32 of 4 KiB fit).

import { constants as osConstants } from 'node:os';

import type { BlkEngine, IoDone } from '../engine.js';
import type { IoVector } from '../io-vector.js';

/** The addon's ring, as this engine uses it (lib/native.ts NativeUring). */
export interface UringRing {
  readonly eventfd: number;
  readonly entries: number;
  /** `count` (offset, length) ranges of `region` in `spans`; false when the submission queue is full. */
  readv(fd: number, region: Uint8Array, spans: Float64Array, count: number, offset: number, tag: number): boolean;
  writev(fd: number, region: Uint8Array, spans: Float64Array, count: number, offset: number, flags: number, tag: number): boolean;
  fsync(fd: number, tag: number): boolean;
  fallocate(fd: number, mode: number, offset: number, length: number, tag: number): boolean;
  submit(): number;
  /** The next completions into `out` as (tag, res) pairs, how many; res is a byte count or a negative errno. */
  reap(out: Int32Array): number;
  close(): void;
}

export interface IoUringEngineOptions {
  readonly ring: UringRing;
  /** Calls `onReadable` whenever `fd` (the ring's eventfd) is readable; close() stops it. */
  readonly watch: (fd: number, onReadable: () => void) => { close(): void };
  readonly fd: number;
  /** Whether fallocate works on the backing (a regular file). */
  readonly canFallocate: boolean;
  /** Bytes of reads and writes per io_uring_enter, at least one request each (see the banner). */
  readonly submitBytes?: number;
  /** Runs the next submission once one has used its budget (default setImmediate; tests). */
  readonly defer?: (fn: () => void) => void;
}

export const DEFAULT_SUBMIT_BYTES = 128 * 1024;
/** Completions taken from the ring per reap call (drain() calls again while it fills). */
const REAP_BATCH = 256;

const RWF_DSYNC = 0x2;
const FALLOC_FL_KEEP_SIZE = 0x1;
const FALLOC_FL_PUNCH_HOLE = 0x2;
const FALLOC_FL_ZERO_RANGE = 0x10;

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

function errnoError(negative: number, syscall: string): NodeJS.ErrnoException {
  const code = ERRNO_NAMES.get(-negative) ?? 'EIO';
  return Object.assign(new Error(`${code}: ${syscall} failed`), { code, errno: negative, syscall });
}

type Op =
  | { kind: 'read' | 'write'; data: IoVector; offset: number; total: number; durable: boolean; done: IoDone }
  | { kind: 'fsync'; done: IoDone }
  | { kind: 'fallocate'; mode: number; offset: number; length: number; done: IoDone };

/** A slot whose op was already failed (its submission was refused): only its tag is kept. */
const ABANDONED: Op = { kind: 'fsync', done: () => {} };

export class IoUringEngine implements BlkEngine {
  readonly name = 'io_uring';
  readonly canDiscard: boolean;
  private readonly ring: UringRing;
  private readonly watcher: { close(): void };
  /**
   * The ops in the kernel, by tag - 1: a tag is a free slot's index + 1, reused once its
   * completion was reaped (a Map's entries churned its table: ~140 bytes of garbage per request).
   */
  private readonly slots: (Op | undefined)[] = [];
  private readonly freeSlots: number[] = [];
  private inKernel = 0;
  /** Ops not in the submission queue yet, in arrival order (budget, or the queue was full). */
  private readonly waiting: Op[] = [];
  /** Where the ring writes the completions it reaps (tag, res pairs), reused by every drain. */
  private readonly reaped = new Int32Array(2 * REAP_BATCH);
  private readonly submitBytes: number;
  private readonly defer: (fn: () => void) => void;
  /** A submission is due (a microtask, or a deferred one once a submission used its budget). */
  private submitQueued = false;
  private closed = false;
  private idle: (() => void) | undefined;

  constructor(private readonly options: IoUringEngineOptions) {
    this.ring = options.ring;
    this.canDiscard = options.canFallocate;
    this.submitBytes = Math.max(1, options.submitBytes ?? DEFAULT_SUBMIT_BYTES);
    this.defer = options.defer ?? ((fn) => setImmediate(fn));
    this.watcher = options.watch(this.ring.eventfd, () => this.reap());
  }

  read(data: IoVector, offset: number, done: IoDone): void {
    // The caller's vector is kept, not copied: it may not change it before done (engine.ts).
    this.start({ kind: 'read', data, offset, total: data.length, durable: false, done });
  }

  write(data: IoVector, offset: number, durable: boolean, done: IoDone): void {
    this.start({ kind: 'write', data, offset, total: data.length, durable, done });
  }

  flush(done: IoDone): void {
    this.start({ kind: 'fsync', done });
  }

  discard(offset: number, length: number, done: IoDone): void {
    this.start({ kind: 'fallocate', mode: FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length, done });
  }

  writeZeroes(offset: number, length: number, unmap: boolean, done: IoDone): void {
    const mode = (unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
    this.start({ kind: 'fallocate', mode, offset, length, done });
  }

  /** Waits for every request in flight, then closes the ring. */
  async close(): Promise<void> {
    if (this.inKernel > 0 || this.waiting.length > 0) {
      await new Promise<void>((resolve) => {
        this.idle = resolve;
      });
    }
    if (this.closed) return;
    this.closed = true;
    this.watcher.close();
    this.ring.close();
  }

  private start(op: Op): void {
    if (this.closed) {
      const done = op.done;
      setImmediate(() => done(Object.assign(new Error('the io_uring engine is closed'), { code: 'ESHUTDOWN' })));
      return;
    }
    if ((op.kind === 'read' || op.kind === 'write') && op.total === 0) {
      const done = op.done;
      setImmediate(() => done(null));
      return;
    }
    this.waiting.push(op);
    this.queueSubmit();
  }

  /** Puts `op` in the submission queue; false when it is full. */
  private prep(op: Op): boolean {
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.slots.length;
    const tag = slot + 1;
    const fd = this.options.fd;
    let queued: boolean;
    switch (op.kind) {
      case 'read': {
        const d = op.data;
        queued = this.ring.readv(fd, d.region, d.spans, d.count, op.offset, tag);
        break;
      }
      case 'write': {
        const d = op.data;
        queued = this.ring.writev(fd, d.region, d.spans, d.count, op.offset, op.durable ? RWF_DSYNC : 0, tag);
        break;
      }
      case 'fsync':
        queued = this.ring.fsync(fd, tag);
        break;
      case 'fallocate':
        queued = this.ring.fallocate(fd, op.mode, op.offset, op.length, tag);
        break;
    }
    if (!queued) return false;
    this.slots[slot] = op;
    this.inKernel += 1;
    return true;
  }

  /** Submits what was queued in this turn, from a microtask (see submitSome). */
  private queueSubmit(): void {
    if (this.submitQueued) return;
    this.submitQueued = true;
    queueMicrotask(() => this.submitSome());
  }

  /**
   * One io_uring_enter for the waiting ops that fit in the byte budget (at least one), then a
   * reap of what the kernel finished inline; the rest goes in a later turn (see the banner).
   */
  private submitSome(): void {
    this.submitQueued = false;
    if (this.closed) return;
    let bytes = 0;
    let prepped = 0;
    while (this.waiting.length > 0) {
      const op = this.waiting[0]!;
      const size = op.kind === 'read' || op.kind === 'write' ? op.total : 0;
      if (prepped > 0 && bytes + size > this.submitBytes) break;
      if (!this.prep(op)) break; // the submission queue is full: reap() continues
      this.waiting.shift();
      prepped += 1;
      bytes += size;
    }
    if (prepped === 0) return;
    try {
      this.ring.submit();
    } catch (err) {
      // The kernel took nothing: fail what was queued rather than leave it hanging.
      // Their slots stay taken (ABANDONED) until a completion names them: the kernel may still
      // take those entries at a later enter, and a tag must not name two ops.
      for (let slot = 0; slot < this.slots.length; slot += 1) {
        const op = this.slots[slot];
        if (op === undefined || op === ABANDONED) continue;
        this.slots[slot] = ABANDONED;
        this.inKernel -= 1;
        op.done(err as NodeJS.ErrnoException);
      }
      this.checkIdle();
      return;
    }
    // Not queueSubmit(): a microtask would run before the completions' own, and copy the next
    // request before their used entries and interrupt went out.
    this.drain();
    if (this.waiting.length > 0 && !this.submitQueued) {
      this.submitQueued = true;
      this.defer(() => this.submitSome());
    }
    this.checkIdle();
  }

  /** The eventfd's callback: completions of ops the kernel finished asynchronously. */
  private reap(): void {
    if (this.closed) return;
    // Ops that found the submission queue full go once completions have made room.
    if (this.drain() > 0 && this.waiting.length > 0) this.queueSubmit();
    this.checkIdle();
  }

  /** Completes every op the completion queue holds; returns how many there were. */
  private drain(): number {
    // No completion callback reaps (they end in the worker, which submits from a microtask at
    // the earliest), so `reaped` is not written while it is read here.
    const reaped = this.reaped;
    let total = 0;
    for (;;) {
      const n = this.ring.reap(reaped);
      for (let i = 0; i < n; i += 1) {
        const op = this.take(reaped[2 * i]!);
        if (op !== undefined) this.complete(op, reaped[2 * i + 1]!);
      }
      total += n;
      if (n < REAP_BATCH) return total;
    }
  }

  private complete(op: Op, res: number): void {
    if (res < 0) {
      const syscall = op.kind === 'read' ? 'preadv' : op.kind === 'write' ? 'pwritev' : op.kind === 'fsync' ? 'fdatasync' : 'fallocate';
      op.done(errnoError(res, syscall));
      return;
    }
    if (op.kind !== 'read' && op.kind !== 'write') {
      op.done(null);
      return;
    }
    if (res >= op.total) {
      op.done(null);
      return;
    }
    const rest = op.data.advance(res);
    if (res === 0) {
      if (op.kind === 'read') {
        rest.fill(0); // past the end of the backing
        op.done(null);
      } else {
        op.done(Object.assign(new Error('pwritev wrote nothing'), { code: 'EIO' }));
      }
      return;
    }
    this.start({ ...op, data: rest, offset: op.offset + res, total: op.total - res });
  }

  /** The op of `tag`, its slot freed; undefined for a tag with no op (nothing of ours). */
  private take(tag: number): Op | undefined {
    const slot = tag - 1;
    const op = this.slots[slot];
    if (op === undefined) return undefined;
    this.slots[slot] = undefined;
    this.freeSlots.push(slot);
    if (op === ABANDONED) return undefined;
    this.inKernel -= 1;
    return op;
  }

  private checkIdle(): void {
    if (this.idle !== undefined && this.inKernel === 0 && this.waiting.length === 0) {
      const idle = this.idle;
      this.idle = undefined;
      idle();
    }
  }
}
