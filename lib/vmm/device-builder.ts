// What the daemon needs to turn one validated config entry into a VirtioDevice: a builder per
// served type (the default record is in device-builders.ts). A builder also opens the device's
// host side (a console backend: PTY, socket, stdio) and hands back the one close() that
// releases it, so the daemon owns exactly one handle per device (STYLE.md guideline 10).

import type { VirtioDevice } from '../virtio/device.js';
import type { Logger } from '../virtio/logger.js';
import type { BlockHostOps } from '../devices/blk/backing.js';
import type { PtyOpener } from '../devices/console/backends/pty.js';
import type { TapSyscalls } from '../devices/net/tap.js';
import type { DeviceConfig } from './config/types.js';
import type { ServedDeviceType } from './config/served.js';

export interface BuiltDevice {
  readonly device: VirtioDevice;
  /** Resets the device (idempotent) and closes its host-side resources. */
  close(): Promise<void>;
  /** The device's own counters now (logged at close, shown by `baoctl status`). */
  metrics?(): Readonly<Record<string, number>>;
  /** What the device runs on, as words (a disk's engine and backing), shown by `baoctl status`. */
  describe?(): Readonly<Record<string, string>>;
}

/** Host resources a builder may use; everything injectable for tests. */
export interface BuildContext {
  readonly log: Logger;
  /** Opens a PTY (from the addon); required only by consoles with backend pty. */
  readonly ptyOpener?: PtyOpener;
  /** Block-device syscalls (lock, BLKGETSIZE64, fallocate) from the addon; block devices. */
  readonly blockHost?: BlockHostOps;
  /** Opens and drives taps (from the addon); required only by net devices. */
  readonly tapSyscalls?: TapSyscalls;
  /** Streams for the stdio console backend; default process.stdin / process.stdout. */
  readonly stdin?: NodeJS.ReadableStream;
  readonly stdout?: NodeJS.WritableStream;
}

export type DeviceBuilder = (entry: DeviceConfig, context: BuildContext) => Promise<BuiltDevice>;

/**
 * One builder per served type: adding a served type without a builder does not compile. Entries
 * with `data_plane: vhost_user` go to `vhost_user`, whatever their type (the backend is the device).
 */
export type DeviceBuilders = { readonly [T in ServedDeviceType]: DeviceBuilder } & { readonly vhost_user?: DeviceBuilder; readonly vhost?: DeviceBuilder };

/** The builder of an entry (undefined: this set of builders cannot serve it). */
export function builderFor(builders: DeviceBuilders, entry: DeviceConfig): DeviceBuilder | undefined {
  if (entry.dataPlane === 'vhost_user') return builders.vhost_user;
  if (entry.dataPlane === 'vhost') return builders.vhost;
  return builders[entry.type];
}
