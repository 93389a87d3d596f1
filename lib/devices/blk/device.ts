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
// Fairness: each queue is served by a QueueWorker (lib/virtio/queue-worker.ts), the mechanism
// every device shares: at most 64 chains are started per run, then the rest is served from
// setImmediate so other device models in the process run; completions settling together
// share one interrupt.
//
// Restart (issue 13): used entries are published in the order the requests were taken (the
// worker's inOrder), so a daemon that died leaves the requests it had in flight, finished or
// not, exactly as the avail entries from the used index on; its successor takes them again and
// re-submits them (resumesFromUsed), which is safe for reads and for writes of the same data.
// A request finishing early waits for those before it, nothing else.
//
// Reset (and shutdown) waits for the I/O in flight: the engine may still be reading into
// guest buffers, so reset() returns a promise that resolves only once every request of the
// old activation has completed (the workers' stop()); their completions are dropped, neither
// the status byte nor a used entry is written into a ring the driver may be re-initialising.
// A queue closed by NEEDS_RESET is treated the same way.

import type { DeviceActivation, VirtioDevice } from '../../virtio/device.js';
import type { DescriptorChain } from '../../virtio/descriptor-chain.js';
import { hasFeature, RING_EVENT_IDX, RING_INDIRECT_DESC } from '../../virtio/features.js';
import { silentLogger, worthLogging, type Logger } from '../../virtio/logger.js';
import { LATER, QueueWorker, type QueueWorkerBudget, type WorkerScheduler } from '../../virtio/queue-worker.js';
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
import { ZeroWriter } from './zeroes.js';

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
  /** Per-run budget of each queue's worker (default: 64 chains, no byte limit). */
  readonly budget?: QueueWorkerBudget;
  /** Injected scheduling of the workers' continuations (tests). */
  readonly scheduler?: WorkerScheduler;
}

interface Active {
  readonly activation: DeviceActivation;
  /** One worker per enabled queue (undefined where the driver left a queue off). */
  readonly workers: readonly (QueueWorker | undefined)[];
  readonly limits: RequestLimits;
  /** Every write is made durable before it completes (see the banner). */
  readonly writeThrough: boolean;
  readonly flushIsNoop: boolean;
}

/** blk's handle() only submits I/O: the byte budget would count data it never touches. */
const BLK_BUDGET: QueueWorkerBudget = { bytes: Infinity };

export class BlkDevice implements VirtioDevice {
  readonly deviceId = BLOCK_DEVICE_ID;
  readonly name = 'block';
  /** Requests in flight at a restart are re-submitted (see the banner). */
  readonly resumesFromUsed = true;
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
  private readonly zeroes: ZeroWriter;
  private readonly budget: QueueWorkerBudget;
  private readonly scheduler: WorkerScheduler | undefined;
  private state: Active | undefined;
  private resetting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: BlkDeviceOptions) {
    this.engine = options.engine;
    this.log = options.log ?? silentLogger;
    this.budget = { ...BLK_BUDGET, ...options.budget };
    this.zeroes = new ZeroWriter(options.engine);
    this.scheduler = options.scheduler;
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
    const limits: RequestLimits = {
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
    };
    const writeThrough = this.cache === 'writethrough' || (this.cache === 'writeback' && !flushNegotiated);
    const flushIsNoop = this.cache === 'unsafe';
    const workers = activation.queues.map((queue, queueIndex) => {
      if (queue === undefined) return undefined;
      const worker: QueueWorker = new QueueWorker({
        queue,
        queueIndex,
        activation,
        counters: this.metrics,
        handler: { handle: (chain) => this.handle(state, worker, chain) },
        budget: this.budget,
        inOrder: true,
        ...(this.scheduler ? { scheduler: this.scheduler } : {}),
      });
      return worker;
    });
    const state: Active = { activation, workers, limits, writeThrough, flushIsNoop };
    this.state = state;
    this.metrics.activations += 1;
    activation.log.info(
      { engine: this.engine.name, queues: workers.filter((w) => w !== undefined).length, flush: flushNegotiated, writeThrough },
      'block device active',
    );
    // Buffers may have been posted before DRIVER_OK, with their kicks dropped.
    for (const w of workers) w?.kick();
  }

  queueNotify(queueIndex: number): void {
    this.state?.workers[queueIndex]?.kick();
  }

  /** Resolves once no request of the forgotten activation can touch guest memory any more. */
  reset(): void | Promise<void> {
    const state = this.state;
    this.state = undefined;
    if (state !== undefined) {
      this.metrics.resets += 1;
      const waits = state.workers.map((w) => w?.stop()).filter((p): p is Promise<void> => p !== undefined);
      if (waits.length > 0) {
        this.log.info({ inFlight: state.workers.reduce((n, w) => n + (w?.inFlight ?? 0), 0) }, 'reset: waiting for the I/O in flight');
        const previous = this.resetting;
        const drained = Promise.all(waits).then(() => undefined);
        const all = previous === undefined ? drained : Promise.all([previous, drained]).then(() => undefined);
        this.resetting = all;
        // Forget it once settled, unless a later reset chained onto it.
        void all.then(() => {
          if (this.resetting === all) this.resetting = undefined;
        });
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

  /**
   * One chain: the used length now (answered without I/O), or LATER: the engine's callback
   * (completion()) gives it to the worker. A request costs that one closure and the worker's
   * small entry; a Promise per request (its reactions, microtasks and, at 32 in flight, the
   * objects surviving into the old generation) was half of the young garbage per request.
   */
  private handle(state: Active, worker: QueueWorker, chain: DescriptorChain): number | typeof LATER {
    const request = parseRequest(chain, state.limits);
    const region = chain.region;
    const head = chain.head;
    const queueIndex = worker.queueIndex;
    const log = state.activation.log;
    switch (request.kind) {
      case 'unanswerable':
        this.metrics.unanswerable += 1;
        if (worthLogging(this.metrics.unanswerable)) log.warn({ queue: queueIndex, head }, 'guest fault: block request without a writable status byte; returned unused');
        return 0;
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
        region[request.statusAt] = request.status;
        return 1;
      }
      case 'get-id': {
        this.metrics.getIds += 1;
        let copied = 0;
        for (const v of request.data.views()) {
          if (copied === this.serial.length) break;
          const n = Math.min(v.length, this.serial.length - copied);
          v.set(this.serial.subarray(copied, copied + n));
          copied += n;
        }
        region[request.statusAt] = VIRTIO_BLK_S_OK;
        return copied + 1;
      }
      case 'read': {
        // Reads and writes, nearly every request, cost one closure: the completion itself.
        this.metrics.reads += 1;
        const length = request.length;
        this.engine.read(request.data, request.offset, this.completion(state, worker, region, request.statusAt, length + 1, length, 0));
        return LATER;
      }
      case 'write': {
        this.metrics.writes += 1;
        const length = request.length;
        this.engine.write(request.data, request.offset, state.writeThrough, this.completion(state, worker, region, request.statusAt, 1, 0, length));
        return LATER;
      }
      case 'flush':
        this.metrics.flushes += 1;
        if (state.flushIsNoop) {
          region[request.statusAt] = VIRTIO_BLK_S_OK;
          return 1;
        }
        return this.submit(state, worker, region, request.statusAt, 1, (done) => this.engine.flush(done));
      case 'discard':
        this.metrics.discards += 1;
        return this.submit(state, worker, region, request.statusAt, 1, (done) =>
          this.eachRange(request.ranges, (r, next) => this.engine.discard(r.offset, r.length, next), done),
        );
      case 'write-zeroes':
        this.metrics.writeZeroes += 1;
        return this.submit(state, worker, region, request.statusAt, 1, (done) =>
          this.eachRange(
            request.ranges,
            (r: ZeroRange, next) => {
              const before = this.zeroes.fallbacks;
              this.zeroes.writeZeroes(r.offset, r.length, r.unmap, state.writeThrough, (err) => {
                this.metrics.writeZeroesFallbacks += this.zeroes.fallbacks - before;
                next(err);
              });
            },
            done,
          ),
        );
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

  /** Starts the engine's I/O through `start`; the worker is given the used length when it is done. */
  private submit(
    state: Active,
    worker: QueueWorker,
    region: Uint8Array,
    statusAt: number,
    okLength: number,
    start: (done: (err: NodeJS.ErrnoException | null) => void) => void,
  ): typeof LATER {
    start(this.completion(state, worker, region, statusAt, okLength, 0, 0));
    return LATER;
  }

  /**
   * The engine's callback for the request handle() serves (the worker defers it): writes the
   * status and gives the worker the used length. The status byte is written only while the activation is live: after a reset
   * or NEEDS_RESET the chain's memory is no longer the device's to write (the worker publishes
   * nothing then). `readBytes` and `writtenBytes` are counted on success.
   */
  private completion(
    state: Active,
    worker: QueueWorker,
    region: Uint8Array,
    statusAt: number,
    okLength: number,
    readBytes: number,
    writtenBytes: number,
  ): (err: NodeJS.ErrnoException | null) => void {
    const metrics = this.metrics;
    const token = worker.defer();
    metrics.inFlight += 1;
    if (metrics.inFlight > metrics.maxInFlight) metrics.maxInFlight = metrics.inFlight;
    return (err) => {
      metrics.inFlight -= 1;
      if (worker.isStopped || worker.queue.closed) {
        metrics.completionsAfterReset += 1;
        worker.complete(token, 0);
        return;
      }
      let status = VIRTIO_BLK_S_OK;
      if (err) {
        const code = typeof err.code === 'string' ? err.code : 'EIO';
        status = code === 'ENOTSUP' || code === 'EOPNOTSUPP' ? VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_IOERR;
        metrics.ioErrors += 1;
        const n = (metrics.ioErrorsByCode[code] ?? 0) + 1;
        metrics.ioErrorsByCode[code] = n;
        if (worthLogging(n)) {
          state.activation.log.error({ queue: worker.queueIndex, head: token.head, code, errno: err.errno, err: err.message }, `block I/O failed: ${code}`);
        }
      } else {
        metrics.readBytes += readBytes;
        metrics.writtenBytes += writtenBytes;
      }
      region[statusAt] = status;
      worker.complete(token, err ? 1 : okLength);
    };
  }
}
