// What every kernel vhost device (vhost-net, vhost-vsock) does the same way around its own
// start and stop: it is handed the external-queue host (the queues' ioeventfds, the irqfd, the
// shared region) before any activation, starts at DRIVER_OK and stops itself again if that
// fails part-way, forwards a kick that missed its ioeventfd to the kernel's kick fd, and counts
// all of it. The subclass says which queues the kernel drives and how it starts and stops them.

import * as fs from 'node:fs';

import type { DeviceActivation, ExternalQueueHost } from '../../virtio/device.js';

export interface KernelVhostMetrics {
  activations: number;
  stops: number;
  failedActivations: number;
  /** Kicks that reached us instead of the kernel (the guest wrote QueueNotify with no ioeventfd match). */
  forwardedKicks: number;
}

export abstract class KernelVhostDevice {
  readonly metrics: KernelVhostMetrics = { activations: 0, stops: 0, failedActivations: 0, forwardedKicks: 0 };

  protected host: ExternalQueueHost | undefined;
  protected running = false;
  private readonly kickBuf = Buffer.alloc(8);

  /**
   * @param kind the device's name in messages ('vhost-net')
   * @param dataQueues the queues the kernel drives (the others stay ours)
   */
  protected constructor(
    private readonly kind: string,
    protected readonly dataQueues: readonly number[],
  ) {
    this.kickBuf.writeBigUInt64LE(1n, 0);
  }

  bindExternalQueues(host: ExternalQueueHost): void {
    this.host = host;
  }

  activate(activation: DeviceActivation): void {
    const host = this.host;
    if (host === undefined) throw new Error(`${this.kind} activated without an external queue host`);
    try {
      this.start(activation, host);
      this.metrics.activations += 1;
    } catch (err) {
      this.metrics.failedActivations += 1;
      this.stop();
      throw err;
    }
  }

  queueNotify(queueIndex: number): void {
    // Only a kick that missed its ioeventfd gets here; a queue the kernel does not drive needs no service.
    if (!this.running || !this.dataQueues.includes(queueIndex) || this.host === undefined) return;
    this.metrics.forwardedKicks += 1;
    // Synchronous and tiny: an eventfd write never blocks below its 2^64-2 limit.
    fs.writeSync(this.host.kickFd(queueIndex), this.kickBuf, 0, 8);
  }

  /** Hands the rings to the kernel and sets `running` once it drives them. */
  protected abstract start(activation: DeviceActivation, host: ExternalQueueHost): void;

  /** Stops the kernel's worker and waits for it to leave the rings; a no-op when not running. */
  protected abstract stop(): void;
}
