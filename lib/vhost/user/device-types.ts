// The virtio device types a vhost-user backend may serve through this frontend: their virtio
// device id, queue count and size, and config space (length, and what it holds when the backend
// does not serve it with the CONFIG protocol feature). The backend does the device itself;
// these are the few facts the transport must know before the backend is asked anything.

export interface VhostUserTypeInfo {
  readonly deviceId: number;
  readonly queues: number;
  readonly queueSize: number;
  /** Bytes of device config space (virtio 1.2 §5.x). */
  readonly configSize: number;
  /** False when only the backend can fill the config space (CONFIG then required). */
  readonly configKnown: boolean;
}

/** Keyed by bao-virtio-dm's type names where it has one. */
export const VHOST_USER_TYPES = {
  // hiprio + one request queue, as bao-virtio-dm serves it; config: tag[36], num_request_queues
  fs: { deviceId: 26, queues: 2, queueSize: 1024, configSize: 40, configKnown: true },
  // rx, tx, event; config: guest_cid (u64)
  vsock: { deviceId: 19, queues: 3, queueSize: 1024, configSize: 8, configKnown: true },
  rng: { deviceId: 4, queues: 1, queueSize: 1024, configSize: 0, configKnown: true },
  i2c: { deviceId: 34, queues: 1, queueSize: 1024, configSize: 0, configKnown: true },
  scmi: { deviceId: 32, queues: 2, queueSize: 1024, configSize: 0, configKnown: true },
  // requestq, eventq; config: ngpio, gpio_names_size
  gpio: { deviceId: 41, queues: 2, queueSize: 256, configSize: 8, configKnown: false },
  // eventq, statusq; config: select/subsel/size + a 128-byte union
  input: { deviceId: 18, queues: 2, queueSize: 64, configSize: 136, configKnown: false },
  // control, event, tx, rx; config: jacks, streams, chmaps
  sound: { deviceId: 25, queues: 4, queueSize: 64, configSize: 12, configKnown: false },
  // one request queue; config: capacity, geometry, ... as vhost-user-blk backends report it
  block: { deviceId: 2, queues: 1, queueSize: 256, configSize: 60, configKnown: false },
} as const satisfies Record<string, VhostUserTypeInfo>;

export type VhostUserType = keyof typeof VHOST_USER_TYPES;
export const VHOST_USER_TYPE_NAMES = Object.keys(VHOST_USER_TYPES) as VhostUserType[];

export function isVhostUserType(type: string): type is VhostUserType {
  return Object.prototype.hasOwnProperty.call(VHOST_USER_TYPES, type);
}

/** Longest virtio-fs tag (virtio 1.2 §5.11.4: tag[36], NUL-padded, not NUL-terminated when full). */
export const FS_TAG_MAX = 36;

/** The config space we serve when the backend does not (fs: tag; vsock: guest CID). */
export function defaultConfig(type: VhostUserType, options: { tag?: string; guestCid?: bigint }): Uint8Array | undefined {
  const info: VhostUserTypeInfo = VHOST_USER_TYPES[type];
  if (!info.configKnown) return undefined;
  const out = new Uint8Array(info.configSize);
  const v = new DataView(out.buffer);
  if (type === 'fs') {
    out.set(Buffer.from(options.tag ?? '', 'utf8').subarray(0, FS_TAG_MAX), 0);
    v.setUint32(36, info.queues - 1, true);
  } else if (type === 'vsock') {
    v.setBigUint64(0, options.guestCid ?? 0n, true);
  }
  return out;
}

/** bao-virtio-dm's socket name: `<socket_path><type><id>.sock`, the type lowercase (bao-abi.md §5.1). */
export function baoVirtioDmSocket(socketPath: string, type: string, id: number): string {
  return `${socketPath}${type.toLowerCase()}${id}.sock`;
}
