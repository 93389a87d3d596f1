// What a running daemon tells about itself (`baoctl status`, GET /status on its status socket):
// each device, its virtio status as the frontend set it, and the counters of every layer. Plain
// JSON data: the status socket sends it as is.

/** Counters of one device model: the request loop, the transport, and the virtio status. */
export interface DeviceModelSnapshot {
  /** The device status register as names (`ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK`, `RESET`). */
  readonly status: string;
  /** DeviceModelServer counters: requests, stray accesses, ioeventfd kicks, watchdog finds. */
  readonly server: Readonly<Record<string, number>>;
  /** MmioTransport counters: notifies, interrupts, guest faults (by kind), resets, NEEDS_RESET. */
  readonly transport: Readonly<Record<string, unknown>>;
}

export interface DeviceStatus {
  /** Position in the config's `devices:` list. */
  readonly index: number;
  readonly id: number;
  readonly type: string;
  /** The virtio-mmio window, hex. */
  readonly mmioAddr: string;
  readonly deviceModel?: DeviceModelSnapshot;
  /** The device's own counters (bytes, chains, backend drops...). */
  readonly metrics?: Readonly<Record<string, number>>;
  /** What the device runs on, as words (a disk's I/O engine, backing, cache mode). */
  readonly info?: Readonly<Record<string, string>>;
}

import type { ProcessStats } from './process-stats.js';

export type DaemonState = 'starting' | 'serving' | 'stopping';

export interface DaemonStatus {
  readonly pid: number;
  readonly state: DaemonState;
  /** The config file served. */
  readonly config: string;
  readonly startedAt: string;
  readonly uptimeMs: number;
  readonly devices: readonly DeviceStatus[];
  /** Memory, descriptors and event-loop delay of the daemon process (absent in embeddings that do not sample it). */
  readonly process?: ProcessStats;
}
