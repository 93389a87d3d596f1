// virtio-rng (virtio 1.2 §5.4, device ID 4): one request queue; the driver posts
// device-writable buffers and the device fills them with entropy from the OS. Bytes are
// generated straight into the guest's buffers (views onto the shared mapping), no copy.
//
// Bounds. The queue is served by a QueueWorker (a budget of chains per run, then a yield), and
// the bytes are rate-limited by a token bucket (default 1 MiB/s with a 1 MiB burst): a request
// that finds the bucket empty waits for it to refill (the worker wakes itself), it is never
// dropped or shortened below what it would get otherwise. One request gets at most
// `maxBytesPerRequest` bytes (§5.4.6.1 lets the device fill less than the buffer).
//
// A request whose first descriptor is device-readable is refused: returned with length 0 and
// counted (readableRequests), nothing written. §5.4.6.1 forbids the driver to post
// driver-readable buffers; that is a wrong request, not corrupt rings: its head is valid and
// returning it leaves the ring consistent, so NEEDS_RESET (which takes the device away from a
// driver that may be probing) would punish more than the fault warrants. Linux never does it,
// so only a hostile frontend ever sees the 0. A chain with nothing writable is refused the same
// way (noWritableBuffer).

import { randomFillSync } from 'node:crypto';
import type { DeviceActivation, VirtioDevice } from '../../virtio/device.js';
import type { DescriptorChain } from '../../virtio/descriptor-chain.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC } from '../../virtio/features.js';
import { QueueWorker, type Admission, type QueueWorkerBudget, type WorkerScheduler } from '../../virtio/queue-worker.js';
import { TokenBucket } from '../../virtio/token-bucket.js';
import { newRngMetrics, type RngMetrics } from './metrics.js';

export const VIRTIO_ID_RNG = 4;
const REQUEST_QUEUE = 0;

export const DEFAULT_RNG_BYTES_PER_SECOND = 1024 * 1024;
export const DEFAULT_RNG_BURST_BYTES = 1024 * 1024;

export interface RngDeviceOptions {
  /** Fills a view with random bytes (default: the OS CSPRNG through crypto.randomFillSync). */
  readonly fill?: (view: Uint8Array) => void;
  /** Cap on bytes per request; Linux asks for at most a page or so (default 64 KiB). */
  readonly maxBytesPerRequest?: number;
  /** QueueNumMax of the request queue (default 256). */
  readonly queueSize?: number;
  /** Entropy bytes per second (default 1 MiB/s; Infinity: no limit) and burst (default 1 MiB). */
  readonly bytesPerSecond?: number;
  readonly burstBytes?: number;
  /** Per-run budget of the request queue's worker. */
  readonly budget?: QueueWorkerBudget;
  /** Injected time (tests): the bucket's clock in ms and the worker's scheduler. */
  readonly now?: () => number;
  readonly scheduler?: WorkerScheduler;
}

type Lifecycle =
  | { readonly kind: 'inactive' }
  | { readonly kind: 'active'; readonly activation: DeviceActivation; readonly worker: QueueWorker | undefined };

export class RngDevice implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_RNG;
  readonly name = 'rng';
  /** Every request is filled and completed in the turn that takes it (device-state.ts). */
  readonly resumesFromUsed = true;
  readonly features = RING_EVENT_IDX | RING_INDIRECT_DESC;
  readonly queueMaxSizes: readonly number[];
  /** §5.4.4: virtio-rng has no device configuration. */
  readonly config = new Uint8Array(0);
  readonly metrics: RngMetrics = newRngMetrics();

  private readonly fill: (view: Uint8Array) => void;
  private readonly maxBytes: number;
  private readonly bucket: TokenBucket;
  private readonly budget: QueueWorkerBudget | undefined;
  private readonly scheduler: WorkerScheduler | undefined;
  private lifecycle: Lifecycle = { kind: 'inactive' };

  constructor(options: RngDeviceOptions = {}) {
    this.fill = options.fill ?? ((view) => randomFillSync(view));
    this.maxBytes = options.maxBytesPerRequest ?? 64 * 1024;
    this.queueMaxSizes = [options.queueSize ?? 256];
    // The bucket belongs to the device, not to an activation: reset cycles do not refill it.
    this.bucket = new TokenBucket({
      rate: options.bytesPerSecond ?? DEFAULT_RNG_BYTES_PER_SECOND,
      burst: options.burstBytes ?? DEFAULT_RNG_BURST_BYTES,
      ...(options.now ? { now: options.now } : {}),
    });
    this.budget = options.budget;
    this.scheduler = options.scheduler;
  }

  activate(activation: DeviceActivation): void {
    const queue = activation.queues[REQUEST_QUEUE];
    if (!queue) activation.log.warn({}, 'driver did not enable the request queue; the device stays idle');
    const worker =
      queue &&
      new QueueWorker({
        queue,
        queueIndex: REQUEST_QUEUE,
        activation,
        counters: this.metrics,
        handler: { admit: () => this.admit(), handle: (chain) => this.serve(chain, activation) },
        ...(this.budget ? { budget: this.budget } : {}),
        ...(this.scheduler ? { scheduler: this.scheduler } : {}),
      });
    this.lifecycle = { kind: 'active', activation, worker };
    this.metrics.activations += 1;
    // Buffers may have been posted before DRIVER_OK, with their kick dropped.
    worker?.kick();
  }

  queueNotify(queueIndex: number): void {
    if (queueIndex === REQUEST_QUEUE && this.lifecycle.kind === 'active') this.lifecycle.worker?.kick();
  }

  /** Filling is synchronous, so nothing is in flight: the device is quiet on return. */
  reset(): void {
    const state = this.lifecycle;
    if (state.kind !== 'active') return;
    this.metrics.resets += 1;
    void state.worker?.stop();
    this.lifecycle = { kind: 'inactive' };
  }

  private admit(): Admission {
    const wait = this.bucket.msUntilAvailable();
    return wait === 0 ? 'now' : wait;
  }

  private serve(chain: DescriptorChain, activation: DeviceActivation): number {
    if (chain.readableCount > 0) {
      this.metrics.readableRequests += 1;
      activation.log.warn({ head: chain.head, count: this.metrics.readableRequests }, 'guest fault: entropy request with a device-readable buffer; returned unused');
      return 0;
    }
    if (chain.writableLength === 0) {
      this.metrics.noWritableBuffer += 1;
      activation.log.warn({ head: chain.head, count: this.metrics.noWritableBuffer }, 'guest fault: entropy request without a writable buffer');
      return 0;
    }
    // §5.4.6.1: the device may fill less than the whole buffer; cap what one request costs.
    let budget = this.maxBytes;
    for (const buffer of chain.writable) {
      if (budget === 0) break;
      const n = Math.min(buffer.length, budget);
      this.fill(n === buffer.length ? buffer : buffer.subarray(0, n));
      budget -= n;
    }
    const written = this.maxBytes - budget;
    this.bucket.take(written);
    this.metrics.requests += 1;
    this.metrics.bytes += written;
    return written;
  }
}
