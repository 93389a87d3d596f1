// virtio-rng (virtio 1.2 §5.4, device ID 4): one request queue; the driver posts
// device-writable buffers and the device fills them with entropy from the OS. Bytes are
// generated straight into the guest's buffers (views onto the shared mapping), no copy.
// A chain with nothing writable is a guest fault: returned with length 0 and counted.

import { randomFillSync } from 'node:crypto';
import type { DeviceActivation, VirtioDevice } from '../../virtio/device.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC } from '../../virtio/features.js';
import { worthLogging } from '../../virtio/logger.js';
import type { SplitQueue } from '../../virtio/split-queue.js';
import { takeChain } from '../../virtio/take-chain.js';
import { newRngMetrics, type RngMetrics } from './metrics.js';

export const VIRTIO_ID_RNG = 4;
const REQUEST_QUEUE = 0;

export interface RngDeviceOptions {
  /** Fills a view with random bytes (default: the OS CSPRNG through crypto.randomFillSync). */
  readonly fill?: (view: Uint8Array) => void;
  /** Cap on bytes per request; Linux asks for at most a page or so (default 64 KiB). */
  readonly maxBytesPerRequest?: number;
  /** QueueNumMax of the request queue (default 256). */
  readonly queueSize?: number;
}

type Lifecycle =
  | { readonly kind: 'inactive' }
  | { readonly kind: 'active'; readonly activation: DeviceActivation; readonly queue: SplitQueue | undefined };

export class RngDevice implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_RNG;
  readonly name = 'rng';
  readonly features = RING_EVENT_IDX | RING_INDIRECT_DESC;
  readonly queueMaxSizes: readonly number[];
  /** §5.4.4: virtio-rng has no device configuration. */
  readonly config = new Uint8Array(0);
  readonly metrics: RngMetrics = newRngMetrics();

  private readonly fill: (view: Uint8Array) => void;
  private readonly maxBytes: number;
  private lifecycle: Lifecycle = { kind: 'inactive' };

  constructor(options: RngDeviceOptions = {}) {
    this.fill = options.fill ?? ((view) => randomFillSync(view));
    this.maxBytes = options.maxBytesPerRequest ?? 64 * 1024;
    this.queueMaxSizes = [options.queueSize ?? 256];
  }

  activate(activation: DeviceActivation): void {
    const queue = activation.queues[REQUEST_QUEUE];
    if (!queue) activation.log.warn({}, 'driver did not enable the request queue; the device stays idle');
    this.lifecycle = { kind: 'active', activation, queue };
    this.metrics.activations += 1;
    // Buffers may have been posted before DRIVER_OK, with their kick dropped.
    this.process();
  }

  queueNotify(queueIndex: number): void {
    if (queueIndex === REQUEST_QUEUE) this.process();
  }

  reset(): void {
    if (this.lifecycle.kind === 'active') this.metrics.resets += 1;
    this.lifecycle = { kind: 'inactive' };
  }

  private process(): void {
    const state = this.lifecycle;
    if (state.kind !== 'active' || !state.queue) return;
    const { activation, queue } = state;
    queue.disableNotification();
    do {
      for (;;) {
        const chain = takeChain(queue, REQUEST_QUEUE, activation, this.metrics);
        if (!chain) break;
        if (chain.writableLength === 0) {
          this.metrics.noWritableBuffer += 1;
          if (worthLogging(this.metrics.noWritableBuffer)) {
            activation.log.warn({ head: chain.head }, 'guest fault: entropy request without a writable buffer');
          }
          queue.addUsed(chain.head, 0);
          continue;
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
        queue.addUsed(chain.head, written);
        this.metrics.requests += 1;
        this.metrics.bytes += written;
      }
    } while (queue.enableNotification());
    activation.notifyUsed(REQUEST_QUEUE);
  }
}
