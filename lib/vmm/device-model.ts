// The seam between the daemon and the Bao side: a DeviceModelFactory opens the device model of
// one config entry (DM_GET_INFO, or CREATE_DM on revB, the shared-memory mapping, the irqfd),
// puts an MmioTransport in front of the given VirtioDevice and starts serving its requests.
// The daemon is written only against these interfaces, so it runs in unit tests without Bao;
// the real factory, over lib/dispatcher, is `lib/vmm/bao-device-model-factory.ts`.

import type { VirtioDevice } from '../virtio/device.js';
import type { Logger } from '../virtio/logger.js';
import type { DeviceConfig } from './config/types.js';
import type { DeviceModelSnapshot } from './status.js';
import type { TraceHub } from './trace/hub.js';
import type { KeptFds } from './restart/kept-fds.js';

export interface OpenDeviceModelRequest {
  /** The validated config entry: DM id, mmio window, revB CREATE_DM parameters. */
  readonly entry: DeviceConfig;
  /** The device to serve; the factory owns its transport, the daemon owns the device. */
  readonly device: VirtioDevice;
  /** A child logger bound to this device (`{ module: 'dm', id, type }`). */
  readonly log: Logger;
}

/** A device model that is up and serving one device. */
export interface ServedDevice {
  /**
   * Settles when serving ends by itself (e.g. the request loop died: DM torn down, EPERM),
   * resolving or rejecting with the reason. Absent or never settling while all is well.
   */
  readonly stopped?: Promise<void>;
  /** The device model's counters and virtio status now, for `baoctl status`. */
  snapshot?(): DeviceModelSnapshot;
  /**
   * Completes (with 0) every trapped access handed over and not answered yet; returns how many.
   * The last resort before the process exits, so that no frontend vCPU stays paused.
   */
  completePending?(): number;
  /**
   * Stop taking requests, let in-flight ones complete, detach the device (reset it) and
   * release the device model. Idempotent; the daemon bounds it with its shutdown timeout.
   */
  close(): Promise<void>;
}

export interface DeviceModelFactory {
  /**
   * Opens the device model for `request.entry` and serves `request.device` on it. On failure,
   * release whatever was acquired and throw; an error with a string `field` property (e.g.
   * 'id' when the driver has no such DM, 'mmio_addr') makes the daemon name that config key.
   */
  open(request: OpenDeviceModelRequest): Promise<ServedDevice>;
  /** Releases what the factory shares between devices (the dispatcher node). Optional. */
  close?(): Promise<void>;
}

/** The shape of the module the run command loads lazily (`lib/vmm/bao-device-model-factory.js`). */
export interface DeviceModelFactoryModule {
  createDeviceModelFactory(options: {
    readonly log: Logger;
    readonly trace?: TraceHub;
    readonly stateDir?: string;
    readonly kept?: KeptFds;
  }): DeviceModelFactory | Promise<DeviceModelFactory>;
}
