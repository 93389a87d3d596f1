// The contract between the transport (MmioTransport) and a device (lib/devices/<type>).
// A device knows only its own protocol: it never sees registers, Bao, or the addon. The
// transport owns feature negotiation, the status machine, queue setup and interrupts, and
// hands the device an activation once the driver sets DRIVER_OK (virtio 1.2 §3.1.1).

import type { RingFaultCode } from './errors.js';
import type { GuestMemory } from './guest-memory.js';
import type { Logger } from './logger.js';
import type { SplitQueue } from './split-queue.js';

/** What a device gets at DRIVER_OK; valid until reset() is called. */
export interface DeviceActivation {
  readonly memory: GuestMemory;
  /** Indexed by virtio queue index; undefined for a queue the driver did not enable. */
  readonly queues: readonly (SplitQueue | undefined)[];
  /** Features the driver accepted (a subset of the device's offer). */
  readonly features: bigint;
  /**
   * Used entries were published on this queue: raise the used-buffer interrupt unless the
   * driver suppressed it (VIRTIO_F_EVENT_IDX or VIRTQ_AVAIL_F_NO_INTERRUPT).
   */
  notifyUsed(queueIndex: number): void;
  /** The config space changed: bump ConfigGeneration and raise the config interrupt. */
  configChanged(): void;
  /**
   * The driver broke the protocol in a way the device cannot recover from. The transport
   * logs it, sets DEVICE_NEEDS_RESET and tells the driver; the device stops using its queues.
   */
  fail(reason: string, detail?: Record<string, unknown>): void;
  /**
   * Count a fault of the frontend's rings by its code in the transport's stats (the
   * guest-fault counters of the metrics). Counting only: fail() is what stops the device.
   */
  ringFault(code: RingFaultCode): void;
  /** Rate-limited in time per device model (log-limiter.ts): guest-triggered lines go here. */
  readonly log: Logger;
}

/**
 * What a device whose queues are driven outside this process (lib/vhost: a kernel vhost device or
 * a vhost-user backend) gets from its host instead of kick callbacks and notifyUsed().
 */
export interface ExternalQueueHost {
  /**
   * The eventfd the driver's kicks of queue `index` signal (its ioeventfd), for the backend to
   * wait on; never polled in this process. Idempotent per queue. From the first call on, the
   * queue's kicks are signalled there (a DeviceModelServer registers the ioeventfd then), so a
   * device asks for it before the driver may kick: within activate(), synchronously.
   */
  kickFd(index: number): number;
  /** The eventfd whose every write raises the frontend interrupt (the irqfd). */
  readonly callFd: number;
  /** The shared region: an fd mappable from offset 0, its guest-physical base and size, and our mapping's address. */
  readonly region: { readonly fd: number; readonly guestAddress: bigint; readonly size: bigint; readonly mappedAt: bigint };
}

export interface VirtioDevice {
  /** Virtio device ID (virtio 1.2 §5: 1 net, 2 block, 3 console, 4 rng, 19 vsock). */
  readonly deviceId: number;
  /** Short name for logs and metrics ("rng", "console", ...). */
  readonly name: string;
  /**
   * Feature bits the device offers, device-specific ones plus the ring features it is
   * written to handle (EVENT_IDX, INDIRECT_DESC, IN_ORDER). The transport adds VERSION_1
   * and ACCESS_PLATFORM itself.
   */
  readonly features: bigint;
  /** Maximum size of each queue; the array length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** The device-specific configuration space, little-endian, read in place by the transport. */
  readonly config: Uint8Array;
  /**
   * The driver wrote `data` at `offset` of the config space (already bounds-checked).
   * Return false to refuse the write (the transport logs and ignores it).
   */
  writeConfig?(offset: number, data: Uint8Array): boolean;
  /** The driver set DRIVER_OK. Throwing (or rejecting) puts the device in NEEDS_RESET. */
  activate(activation: DeviceActivation): void | Promise<void>;
  /** The driver made buffers available on this queue (QueueNotify or its ioeventfd). */
  queueNotify(queueIndex: number): void;
  /**
   * The driver reset the device (status 0), or the daemon is shutting down. Stop all work,
   * finish or cancel in-flight requests, and forget the activation. Idempotent.
   *
   * Return a Promise when work is still finishing (a backend write from a guest buffer, an
   * I/O into guest memory): the transport completes the driver's Status=0 write only once it
   * settles, so after the driver saw the reset nothing the device does touches guest memory
   * or a ring. Return nothing when the device is quiet at once.
   */
  reset(): void | Promise<void>;
  /**
   * Present on devices whose queues are driven elsewhere: the host calls it once, before the
   * first activation, and then neither polls the kicks nor runs a kick watchdog. The transport
   * reads InterruptStatus with the used-buffer bit set while the driver is live, because the
   * backend raises interrupts through the irqfd behind its back.
   */
  bindExternalQueues?(host: ExternalQueueHost): void;
  /**
   * True for a device that publishes the used entries of the chains it takes in the order it
   * took them: it completes each within the event-loop turn that took it (rng, console), or its
   * workers publish in order (QueueWorker's inOrder: blk). After a daemon restart its queues can
   * continue from the used idx in the ring, the chains it held being taken again. Devices
   * without it are not resumed from saved state (they start from reset, as before).
   */
  readonly resumesFromUsed?: boolean;
}
