// The normalized daemon configuration: what validation produces from a YAML file (ours or
// bao-virtio-dm's unchanged, spec §5.1) and what the daemon consumes. Everything here is
// already checked; addresses keep full u64 precision as bigint.

import type { VhostUserType } from '../../vhost/user/device-types.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Size of every virtio-mmio window bao-virtio-dm registers (spec §5.1: fixed 0x200). */
export const MMIO_WINDOW_SIZE = 0x200n;

/** Default time the daemon grants in-flight requests and backends to finish at shutdown. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5000;

/**
 * What revB's BAO_IOCTL_CREATE_DM needs (spec §3.3, §4.4 "Backend, revB"): without a device
 * tree the VMM itself tells the driver where the shared region is and which interrupt line
 * signals new requests. Ignored by the OOT/v1/v2 drivers, which read these from the DT.
 */
export interface CreateDmParams {
  readonly shmemAddr: bigint;
  readonly shmemSize: bigint;
  /** Root interrupt controller line (GIC SPI / PLIC source), not a Linux virq. */
  readonly irq: number;
}

interface DeviceConfigBase {
  /** Position in the `devices:` list, for messages (`devices[2]`). */
  readonly index: number;
  /** Device-model id (spec §1: index of the DT reg/interrupt pair; 0..15 on OOT/v1/v2). */
  readonly id: number;
  /** Frontend guest-physical base of the virtio-mmio window (remio `va`). */
  readonly mmioAddr: bigint;
  /** Only the in-process data plane is served; vhost and vhost_user are refused at validation. */
  readonly dataPlane: 'virtio';
  readonly createDm: CreateDmParams | undefined;
}

export type ConsoleBackendConfig =
  /** bao-virtio-dm's behaviour: a new PTY, optionally symlinked at `alias` (pty_alias). */
  | { readonly kind: 'pty'; readonly alias: string | undefined }
  /** The daemon's own stdin/stdout. */
  | { readonly kind: 'stdio' }
  /** A unix stream socket the daemon listens on; one client at a time. */
  | { readonly kind: 'socket'; readonly path: string };

export type ConsoleBackendKind = ConsoleBackendConfig['kind'];
export const CONSOLE_BACKEND_KINDS: readonly ConsoleBackendKind[] = ['pty', 'stdio', 'socket'];

export interface ConsoleDeviceConfig extends DeviceConfigBase {
  readonly type: 'console';
  readonly backend: ConsoleBackendConfig;
}

export interface RngDeviceConfig extends DeviceConfigBase {
  readonly type: 'rng';
}

export const BLOCK_ENGINES = ['auto', 'io_uring', 'thread-pool'] as const;
export type BlockEngineChoice = (typeof BLOCK_ENGINES)[number];
export const BLOCK_CACHE_MODES = ['writeback', 'writethrough', 'unsafe'] as const;
export type BlockCacheMode = (typeof BLOCK_CACHE_MODES)[number];

/** bao-virtio-dm's block keys (spec §5.1) plus node-bao's (serial, queues, ...). */
export interface BlockDeviceConfig extends DeviceConfigBase {
  readonly type: 'block';
  /** Raw image file or block device (file_path). */
  readonly filePath: string;
  readonly readOnly: boolean;
  /** bao-virtio-dm reads it and uses it for nothing; kept for status output. */
  readonly rootDevice: boolean;
  /** Offer VIRTIO_BLK_F_FLUSH (advertise_flush; default true). */
  readonly advertiseFlush: boolean;
  /** GET_ID's answer; undefined: derived from the path. */
  readonly serial: string | undefined;
  readonly queues: number;
  readonly queueSize: number;
  readonly discard: boolean;
  readonly engine: BlockEngineChoice;
  readonly cache: BlockCacheMode;
}


export interface NetDeviceConfig extends DeviceConfigBase {
  readonly type: 'net';
  /** tap_name: the tap interface (bao-virtio-dm: it must exist; node-bao: create_tap may make it). */
  readonly tapName: string;
  /** mac_addr as given, lower case; undefined: derived from the entry's id and window, stable. */
  readonly mac: string | undefined;
  /** create_tap: make the tap when missing (it lives while the daemon runs). Default false. */
  readonly createTap: boolean;
  /** mtu: what the guest is told (VIRTIO_NET_F_MTU); default 1500. Set the tap's own MTU to match. */
  readonly mtu: number;
  /** queue_pairs: one tap queue per pair (more than one needs a multi_queue tap). Default 1. */
  readonly queuePairs: number;
  /** queue_size: QueueNumMax of every queue. Default 256. */
  readonly queueSize: number;
}

export const NET_DEFAULTS = { mtu: 1500, queuePairs: 1, queueSize: 256 } as const;
export const NET_MAX_QUEUE_PAIRS = 16;


/** A device whose queues an external vhost-user backend drives (`data_plane: vhost_user`). */
export interface VhostUserDeviceConfig extends Omit<DeviceConfigBase, 'dataPlane'> {
  /** A type of lib/vhost/user/device-types.ts (fs, vsock, rng, i2c, gpio, ...). */
  readonly type: VhostUserType;
  readonly dataPlane: 'vhost_user';
  /** The backend's socket: node-bao's `socket`, else bao-virtio-dm's `<socket_path><type><id>.sock`. */
  readonly socket: string;
  /** fs: the mount tag served when the backend does not serve the config space. */
  readonly tag: string | undefined;
  /** vsock: the guest CID served when the backend does not serve the config space. */
  readonly guestCid: bigint | undefined;
}

/** A device the kernel's vhost serves (`data_plane: vhost`): vsock over /dev/vhost-vsock. */
export interface KernelVhostVsockConfig extends Omit<DeviceConfigBase, 'dataPlane'> {
  readonly type: 'vsock';
  readonly dataPlane: 'vhost';
  readonly guestCid: bigint;
}

/** The net entry's keys over vhost-net (one queue pair: vhost-net has no control queue). */
export interface KernelVhostNetConfig extends Omit<NetDeviceConfig, 'dataPlane'> {
  readonly dataPlane: 'vhost';
}

export type KernelVhostDeviceConfig = KernelVhostVsockConfig | KernelVhostNetConfig;

/** One entry per served device type; validation refuses every other type by name. */
export type DeviceConfig = ConsoleDeviceConfig | RngDeviceConfig | BlockDeviceConfig | NetDeviceConfig | VhostUserDeviceConfig | KernelVhostDeviceConfig;

export interface LogConfig {
  readonly level: LogLevel | undefined;
  readonly format: LogFormat | undefined;
}

export interface DaemonConfig {
  /** File the config was read from, when it came from a file. */
  readonly source: string | undefined;
  readonly log: LogConfig;
  readonly shutdownTimeoutMs: number;
  readonly devices: readonly DeviceConfig[];
}
