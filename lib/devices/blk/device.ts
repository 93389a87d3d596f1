// virtio-blk (virtio 1.2 §5.2, device ID 2): a disk backed by a raw image file or a block
// device, through a BlkEngine (engine.ts). Many requests are in flight at once, on every
// queue: each chain is parsed (request.ts), handed to the engine as views of the guest's own
// buffers, and given back the moment its I/O finishes, in whatever order that happens.
//
// Durability. With FLUSH negotiated, writes may sit in the host's page cache and a flush is an
// fdatasync, which covers every write completed before it. A driver that was not offered FLUSH
// (or did not take it) assumes a write-through disk, so then every write is made durable before
// it completes. The cache mode changes that: `writethrough` always writes through, `unsafe`
// never syncs (scratch disks).
//
// Fairness: one notification serves at most serve-budget.ts's chainsPerTurn() chains, then
// the queue is served again from setImmediate, so other device models in the process run.
//
// Reset (and shutdown) waits for the I/O in flight: the engine may still be reading into
// guest buffers, so reset() returns a promise that resolves only once every request of the
// old activation has completed; their completions are dropped, never written to a ring the
// driver may be re-initialising. A queue closed by NEEDS_RESET is treated the same way.

import type { DeviceActivation, VirtioDevice } from '../../virtio/device.js';
import type { DescriptorChain } from '../../virtio/descriptor-chain.js';
import { hasFeature, RING_EVENT_IDX, RING_INDIRECT_DESC } from '../../virtio/features.js';
import { silentLogger, worthLogging, type Logger } from '../../virtio/logger.js';
import type { SplitQueue } from '../../virtio/split-queue.js';
import { takeChain } from '../../virtio/take-chain.js';
import {
  BLOCK_DEVICE_ID,
  buildConfigSpace,
  SECTOR_SIZE,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
} from './config.js';
import type { BlkEngine } from './engine.js';
import { BlkMetrics } from './metrics.js';
import { encodeSerial, parseRequest, type ByteRange, type RequestLimits, type ZeroRange } from './request.js';
import { chainsPerTurn, YieldScheduler } from './serve-budget.js';

export const DEFAULT_BLK_QUEUE_SIZE = 256;
/** The largest number of queues offered (Linux uses at most one per CPU). */
export const MAX_BLK_QUEUES = 64;
export const DEFAULT_SIZE_MAX = 1 << 20;
/** DISCARD / WRITE_ZEROES limits offered: 4 GiB - 512 per segment, 1 segment per request. */
const MAX_DISCARD_SECTORS = 0xffff_ffff >>> 0;
const MAX_DISCARD_SEG = 1;

export type BlkCacheMode = 'writeback' | 'writethrough' | 'unsafe';
export const BLK_CACHE_MODES: readonly BlkCacheMode[] = ['writeback', 'writethrough', 'unsafe'];

export interface BlkDeviceOptions {
  readonly engine: BlkEngine;
  /** Size of the backing in bytes; the disk is its whole 512-byte sectors. */
  readonly capacityBytes: number;
  /** GET_ID's answer (at most 20 bytes are sent). */
  readonly serial: string;
  readonly readOnly?: boolean;
  /** Offer FLUSH (bao-virtio-dm's advertise_flush); default true. */
  readonly flush?: boolean;
  readonly cache?: BlkCacheMode;
  /** Number of request queues (MQ); default 1. */
  readonly queues?: number;
  readonly queueSize?: number;
  /** Logical block size offered in BLK_SIZE (default 512). */
  readonly blockSize?: number;
  /** Physical block size of the backing, offered in TOPOLOGY (default 512). */
  readonly physicalBlockSize?: number;
  /** Offer DISCARD and WRITE_ZEROES (the engine must be able to punch holes). */
  readonly discard?: boolean;
  readonly segMax?: number;
  readonly sizeMax?: number;
  readonly log?: Logger;
}

interface Active {
  live: boolean;
  readonly activation: DeviceActivation;
  readonly queues: readonly (SplitQueue | undefined)[];
  readonly schedulers: readonly YieldScheduler[];
  readonly limits: RequestLimits;
  /** Every write is made durable before it completes (see the banner). */
  readonly writeThrough: boolean;
  readonly flushIsNoop: boolean;
  inFlight: number;
  drained: (() => void) | undefined;
  /** Queues with used entries published since their last notification. */
  readonly dirty: boolean[];
  notifyHandle: NodeJS.Immediate | undefined;
}

export class BlkDevice implements VirtioDevice {
  readonly deviceId = BLOCK_DEVICE_ID;
  readonly name = 'block';
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly config: Uint8Array;
  readonly metrics = new BlkMetrics();
  readonly engine: BlkEngine;
  readonly capacitySectors: number;
  readonly readOnly: boolean;
  readonly cache: BlkCacheMode;

  private readonly serial: Uint8Array;
  private readonly segMax: number;
  private readonly sizeMax: number;
  private readonly log: Logger;
  private state: Active | undefined;
  private resetting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: BlkDeviceOptions) {
    this.engine = options.engine;
    this.log = options.log ?? silentLogger;
    this.readOnly = options.readOnly ?? false;
    this.cache = options.cache ?? 'writeback';
    const queues = options.queues ?? 1;
    const queueSize = options.queueSize ?? DEFAULT_BLK_QUEUE_SIZE;
    if (!Number.isInteger(queues) || queues < 1 || queues > MAX_BLK_QUEUES) throw new RangeError(`queues must be 1..${MAX_BLK_QUEUES}`);
    if (!Number.isInteger(queueSize) || queueSize < 2 || queueSize > 32768 || (queueSize & (queueSize - 1)) !== 0) {
      throw new RangeError('queueSize must be a power of two in 2..32768');
    }
    if (!Number.isSafeInteger(options.capacityBytes) || options.capacityBytes < SECTOR_SIZE) {
      throw new RangeError('capacityBytes must be at least one sector');
    }
    this.capacitySectors = Math.floor(options.capacityBytes / SECTOR_SIZE);
    // Linux needs seg_max <= queue size - 2 for direct chains (header and status take two).
    this.segMax = options.segMax ?? Math.max(1, queueSize - 2);
    this.sizeMax = options.sizeMax ?? DEFAULT_SIZE_MAX;
    this.serial = encodeSerial(options.serial);
    this.queueMaxSizes = new Array<number>(queues).fill(queueSize);
    const discard = (options.discard ?? false) && !this.readOnly;
    if (discard && !this.engine.canDiscard) throw new RangeError(`the ${this.engine.name} engine cannot discard`);

    let features =
      RING_EVENT_IDX |
      RING_INDIRECT_DESC |
      VIRTIO_BLK_F_SIZE_MAX |
      VIRTIO_BLK_F_SEG_MAX |
      VIRTIO_BLK_F_BLK_SIZE |
      VIRTIO_BLK_F_TOPOLOGY |
      VIRTIO_BLK_F_MQ;
    if (this.readOnly) features |= VIRTIO_BLK_F_RO;
    if (options.flush ?? true) features |= VIRTIO_BLK_F_FLUSH;
    if (discard) features |= VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES;
    this.features = features;

    const blockSize = options.blockSize ?? SECTOR_SIZE;
    this.config = buildConfigSpace({
      capacitySectors: BigInt(this.capacitySectors),
      blockSize,
      physicalBlockSize: Math.max(blockSize, options.physicalBlockSize ?? SECTOR_SIZE),
      sizeMax: this.sizeMax,
      segMax: this.segMax,
      numQueues: queues,
      maxDiscardSectors: discard ? MAX_DISCARD_SECTORS : 0,
      maxDiscardSeg: discard ? MAX_DISCARD_SEG : 0,
      discardSectorAlignment: discard ? Math.max(1, (options.physicalBlockSize ?? SECTOR_SIZE) / SECTOR_SIZE) : 0,
      maxWriteZeroesSectors: discard ? MAX_DISCARD_SECTORS : 0,
      maxWriteZeroesSeg: discard ? MAX_DISCARD_SEG : 0,
      writeZeroesMayUnmap: discard,
    });
    this.metrics.engineIoUring = this.engine.name === 'io_uring' ? 1 : 0;
  }

  activate(activation: DeviceActivation): void {
    const features = activation.features;
    const flushNegotiated = hasFeature(features, VIRTIO_BLK_F_FLUSH);
    const queues = activation.queues;
    const state: Active = {
      live: true,
      activation,
      queues,
      schedulers: queues.map((_, i) => new YieldScheduler(() => this.serve(state, i))),
      limits: {
        capacitySectors: this.capacitySectors,
        readOnly: this.readOnly,
        segMax: this.segMax,
        sizeMax: this.sizeMax,
        discard: hasFeature(features, VIRTIO_BLK_F_DISCARD),
        writeZeroes: hasFeature(features, VIRTIO_BLK_F_WRITE_ZEROES),
        maxDiscardSectors: MAX_DISCARD_SECTORS,
        maxDiscardSeg: MAX_DISCARD_SEG,
        maxWriteZeroesSectors: MAX_DISCARD_SECTORS,
        maxWriteZeroesSeg: MAX_DISCARD_SEG,
      },
      writeThrough: this.cache === 'writethrough' || (this.cache === 'writeback' && !flushNegotiated),
      flushIsNoop: this.cache === 'unsafe',
      inFlight: 0,
      drained: undefined,
      dirty: queues.map(() => false),
      notifyHandle: undefined,
    };
    this.state = state;
    this.metrics.activations += 1;
    activation.log.info(
      { engine: this.engine.name, queues: queues.filter((q) => q !== undefined).length, flush: flushNegotiated, writeThrough: state.writeThrough },
      'block device active',
    );
    // Buffers may have been posted before DRIVER_OK, with their kicks dropped.
    queues.forEach((q, i) => {
      if (q !== undefined) this.serve(state, i);
    });
  }

  queueNotify(queueIndex: number): void {
    const state = this.state;
    if (state === undefined || state.queues[queueIndex] === undefined) return;
    this.serve(state, queueIndex);
  }

  /** Resolves once no request of the forgotten activation can touch guest memory any more. */
  reset(): void | Promise<void> {
    const state = this.state;
    this.state = undefined;
    if (state !== undefined) {
      state.live = false;
      for (const s of state.schedulers) s.cancel();
      if (state.notifyHandle !== undefined) clearImmediate(state.notifyHandle);
      this.metrics.resets += 1;
      if (state.inFlight > 0) {
        this.log.info({ inFlight: state.inFlight }, 'reset: waiting for the I/O in flight');
        const previous = this.resetting;
        const drained = new Promise<void>((resolve) => {
          state.drained = resolve;
        });
        this.resetting = previous === undefined ? drained : Promise.all([previous, drained]).then(() => undefined);
      }
    }
    return this.resetting;
  }

  /** Drains in-flight I/O and closes the engine (daemon shutdown). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.reset();
      await this.engine.close();
    })();
    return this.closing;
  }

  private serve(state: Active, queueIndex: number): void {
    const queue = state.queues[queueIndex];
    if (!state.live || queue === undefined || queue.closed) return;
    let budget = chainsPerTurn(queue.size);
    queue.disableNotification();
    for (;;) {
      while (budget > 0) {
        const chain = takeChain(queue, queueIndex, state.activation, this.metrics);
        if (chain === null) break;
        budget -= 1;
        this.start(state, queue, queueIndex, chain);
      }
      if (!state.live || queue.closed) break;
      if (budget === 0) {
        // Come back next turn, notifications still off: the ring is not drained yet.
        this.metrics.budgetYields += 1;
        state.schedulers[queueIndex]!.schedule();
        break;
      }
      // Re-arm kicks, then re-check: buffers that raced with re-arming must not be missed.
      if (!queue.enableNotification()) break;
    }
    // Chains returned by takeChain or rejected at once need their interrupt too.
    this.flushNotify(state);
  }

  private start(state: Active, queue: SplitQueue, queueIndex: number, chain: DescriptorChain): void {
    const request = parseRequest(chain, state.limits);
    const head = chain.head;
    const log = state.activation.log;
    switch (request.kind) {
      case 'unanswerable':
        this.metrics.unanswerable += 1;
        if (worthLogging(this.metrics.unanswerable)) log.warn({ queue: queueIndex, head }, 'guest fault: block request without a writable status byte; returned unused');
        this.publish(state, queue, queueIndex, head, 0);
        return;
      case 'reject': {
        if (request.reason === 'unsupported') {
          this.metrics.unsupported += 1;
          if (worthLogging(this.metrics.unsupported)) log.warn({ queue: queueIndex, head, type: request.type }, 'block request type not supported; answered UNSUPP');
        } else {
          this.metrics.malformed += 1;
          const n = (this.metrics.malformedByKind[request.reason] ?? 0) + 1;
          this.metrics.malformedByKind[request.reason] = n;
          if (worthLogging(n)) log.warn({ queue: queueIndex, head, type: request.type, kind: request.reason }, 'guest fault: malformed block request; answered IOERR');
        }
        request.statusByte[0] = request.status;
        this.publish(state, queue, queueIndex, head, 1);
        return;
      }
      case 'get-id': {
        this.metrics.getIds += 1;
        let copied = 0;
        for (const v of request.views) {
          if (copied === this.serial.length) break;
          const n = Math.min(v.length, this.serial.length - copied);
          v.set(this.serial.subarray(copied, copied + n));
          copied += n;
        }
        request.statusByte[0] = VIRTIO_BLK_S_OK;
        this.publish(state, queue, queueIndex, head, copied + 1);
        return;
      }
      case 'read':
        this.metrics.reads += 1;
        this.begin(state);
        this.engine.read(request.views, request.offset, (err) => {
          if (!err) this.metrics.readBytes += request.length;
          this.finish(state, queue, queueIndex, head, request.statusByte, err, request.length + 1);
        });
        return;
      case 'write':
        this.metrics.writes += 1;
        this.begin(state);
        this.engine.write(request.views, request.offset, state.writeThrough, (err) => {
          if (!err) this.metrics.writtenBytes += request.length;
          this.finish(state, queue, queueIndex, head, request.statusByte, err, 1);
        });
        return;
      case 'flush':
        this.metrics.flushes += 1;
        this.begin(state);
        if (state.flushIsNoop) setImmediate(() => this.finish(state, queue, queueIndex, head, request.statusByte, null, 1));
        else this.engine.flush((err) => this.finish(state, queue, queueIndex, head, request.statusByte, err, 1));
        return;
      case 'discard':
        this.metrics.discards += 1;
        this.begin(state);
        this.eachRange(request.ranges, (r, done) => this.engine.discard(r.offset, r.length, done), (err) =>
          this.finish(state, queue, queueIndex, head, request.statusByte, err, 1),
        );
        return;
      case 'write-zeroes':
        this.metrics.writeZeroes += 1;
        this.begin(state);
        this.eachRange(
          request.ranges,
          (r: ZeroRange, done) => this.engine.writeZeroes(r.offset, r.length, r.unmap, done),
          (err) => this.finish(state, queue, queueIndex, head, request.statusByte, err, 1),
        );
        return;
    }
  }

  /** Runs `op` on each range in turn; the first error ends the request. */
  private eachRange<R extends ByteRange>(
    ranges: readonly R[],
    op: (range: R, done: (err: NodeJS.ErrnoException | null) => void) => void,
    done: (err: NodeJS.ErrnoException | null) => void,
  ): void {
    let i = 0;
    const next = (err: NodeJS.ErrnoException | null): void => {
      if (err || i === ranges.length) {
        done(err);
        return;
      }
      op(ranges[i++]!, next);
    };
    next(null);
  }

  private begin(state: Active): void {
    state.inFlight += 1;
    this.metrics.inFlight += 1;
    if (this.metrics.inFlight > this.metrics.maxInFlight) this.metrics.maxInFlight = this.metrics.inFlight;
  }

  private finish(
    state: Active,
    queue: SplitQueue,
    queueIndex: number,
    head: number,
    statusByte: Uint8Array,
    err: NodeJS.ErrnoException | null,
    okLength: number,
  ): void {
    state.inFlight -= 1;
    this.metrics.inFlight -= 1;
    if (!state.live || queue.closed) {
      // The driver reset the device (or it needs a reset): this ring is not ours to write.
      this.metrics.completionsAfterReset += 1;
      if (state.inFlight === 0 && state.drained !== undefined) {
        const drained = state.drained;
        state.drained = undefined;
        drained();
      }
      return;
    }
    let status = VIRTIO_BLK_S_OK;
    if (err) {
      const code = typeof err.code === 'string' ? err.code : 'EIO';
      status = code === 'ENOTSUP' || code === 'EOPNOTSUPP' ? VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_IOERR;
      this.metrics.ioErrors += 1;
      const n = (this.metrics.ioErrorsByCode[code] ?? 0) + 1;
      this.metrics.ioErrorsByCode[code] = n;
      if (worthLogging(n)) state.activation.log.error({ queue: queueIndex, head, code, errno: err.errno, err: err.message }, `block I/O failed: ${code}`);
    }
    statusByte[0] = status;
    this.publish(state, queue, queueIndex, head, err ? 1 : okLength);
    if (state.notifyHandle === undefined) {
      // Completions arriving in the same loop turn share one interrupt decision per queue.
      state.notifyHandle = setImmediate(() => {
        state.notifyHandle = undefined;
        this.flushNotify(state);
      });
    }
  }

  private publish(state: Active, queue: SplitQueue, queueIndex: number, head: number, length: number): void {
    queue.addUsed(head, length);
    state.dirty[queueIndex] = true;
  }

  private flushNotify(state: Active): void {
    if (!state.live) return;
    for (let i = 0; i < state.dirty.length; i += 1) {
      if (!state.dirty[i]) continue;
      state.dirty[i] = false;
      state.activation.notifyUsed(i);
    }
  }
}
