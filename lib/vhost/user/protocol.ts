// The vhost-user wire format (the vhost-user protocol specification, as QEMU's docs/interop
// publishes it): a 12-byte little-endian header {request u32, flags u32, size u32} and a payload
// of `size` bytes; descriptors ride as SCM_RIGHTS with the message. Pure data and codecs here:
// the socket is channel.ts, the conversation frontend.ts.

/** Frontend requests used by this frontend (the numbering is the protocol's). */
export const Req = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  RESET_DEVICE: 34,
  GET_MAX_MEM_SLOTS: 36,
} as const;

export function requestName(request: number): string {
  for (const [name, value] of Object.entries(Req)) if (value === request) return name;
  return `request ${request}`;
}

/** Header flags: protocol version 1 in bits 0-1, REPLY (bit 2), NEED_REPLY (bit 3). */
export const VERSION = 0x1;
export const VERSION_MASK = 0x3;
export const FLAG_REPLY = 1 << 2;
export const FLAG_NEED_REPLY = 1 << 3;

export const HEADER_SIZE = 12;
/** No message of the protocol is larger than a config space read (256 + 12) or a 8-region table. */
export const MAX_PAYLOAD = 4096;

/** Feature bit 30 of GET_FEATURES: the backend speaks protocol features. */
export const F_PROTOCOL_FEATURES = 1n << 30n;

/** Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  MTU: 4,
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CONFIG: 9,
  BACKEND_SEND_FD: 10,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
} as const;

/**
 * What this frontend can speak. REPLY_ACK makes every setting request confirmable, CONFIG gives
 * GET/SET_CONFIG, MQ lets the backend tell how many queues it serves, RESET_DEVICE a reset that
 * does not drop the owner. The others need a backend-to-frontend channel or dirty logging,
 * which a Bao device model has no use for (no migration).
 */
export const SUPPORTED_PROTOCOL_FEATURES =
  (1n << BigInt(ProtocolFeature.MQ)) |
  (1n << BigInt(ProtocolFeature.REPLY_ACK)) |
  (1n << BigInt(ProtocolFeature.CONFIG)) |
  (1n << BigInt(ProtocolFeature.RESET_DEVICE));

export function hasProtocolFeature(features: bigint, bit: number): boolean {
  return (features & (1n << BigInt(bit))) !== 0n;
}

export function formatProtocolFeatures(features: bigint): string {
  const names = Object.entries(ProtocolFeature)
    .filter(([, bit]) => hasProtocolFeature(features, bit))
    .map(([name]) => name);
  const known = Object.values(ProtocolFeature).reduce((m, bit) => m | (1n << BigInt(bit)), 0n);
  const rest = features & ~known;
  if (rest !== 0n) names.push(`0x${rest.toString(16)}`);
  return names.length === 0 ? 'none' : names.join('|');
}

/** SET_VRING_KICK/CALL/ERR payload: bit 8 = no descriptor sent (polling mode). */
export const VRING_NOFD_MASK = 1n << 8n;

export interface MessageHeader {
  readonly request: number;
  readonly flags: number;
  readonly size: number;
}

export function encodeMessage(request: number, flags: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, request, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, payload.length, true);
  out.set(payload, HEADER_SIZE);
  return out;
}

export function decodeHeader(bytes: Uint8Array): MessageHeader {
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  return { request: v.getUint32(0, true), flags: v.getUint32(4, true), size: v.getUint32(8, true) };
}

export function u64Payload(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
  return out;
}

export function readU64(payload: Uint8Array): bigint {
  if (payload.length < 8) throw new RangeError(`expected an 8-byte payload, got ${payload.length}`);
  return new DataView(payload.buffer, payload.byteOffset, 8).getBigUint64(0, true);
}

/** struct vhost_vring_state {u32 index; u32 num}. */
export function vringStatePayload(index: number, num: number): Uint8Array {
  const out = new Uint8Array(8);
  const v = new DataView(out.buffer);
  v.setUint32(0, index, true);
  v.setUint32(4, num, true);
  return out;
}

export function readVringState(payload: Uint8Array): { index: number; num: number } {
  if (payload.length < 8) throw new RangeError(`expected an 8-byte vring state, got ${payload.length}`);
  const v = new DataView(payload.buffer, payload.byteOffset, 8);
  return { index: v.getUint32(0, true), num: v.getUint32(4, true) };
}

export interface VringAddr {
  readonly index: number;
  readonly flags: number;
  /** Addresses in the frontend's address space, translated by the memory table's userspace_addr. */
  readonly desc: bigint;
  readonly used: bigint;
  readonly avail: bigint;
  readonly log: bigint;
}

/** struct vhost_vring_addr {u32 index, flags; u64 desc, used, avail, log}. */
export function vringAddrPayload(a: VringAddr): Uint8Array {
  const out = new Uint8Array(40);
  const v = new DataView(out.buffer);
  v.setUint32(0, a.index, true);
  v.setUint32(4, a.flags, true);
  v.setBigUint64(8, a.desc, true);
  v.setBigUint64(16, a.used, true);
  v.setBigUint64(24, a.avail, true);
  v.setBigUint64(32, a.log, true);
  return out;
}

export function readVringAddr(p: Uint8Array): VringAddr {
  if (p.length < 40) throw new RangeError(`expected a 40-byte vring address, got ${p.length}`);
  const v = new DataView(p.buffer, p.byteOffset, 40);
  return {
    index: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    desc: v.getBigUint64(8, true),
    used: v.getBigUint64(16, true),
    avail: v.getBigUint64(24, true),
    log: v.getBigUint64(32, true),
  };
}

export interface MemoryRegion {
  readonly guestPhysAddr: bigint;
  readonly memorySize: bigint;
  readonly userspaceAddr: bigint;
  readonly mmapOffset: bigint;
}

/** VhostUserMemory {u32 nregions; u32 padding; regions[n] of 4 x u64}; one fd per region. */
export function memTablePayload(regions: readonly MemoryRegion[]): Uint8Array {
  const out = new Uint8Array(8 + 32 * regions.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, regions.length, true);
  regions.forEach((r, i) => {
    const at = 8 + 32 * i;
    v.setBigUint64(at, r.guestPhysAddr, true);
    v.setBigUint64(at + 8, r.memorySize, true);
    v.setBigUint64(at + 16, r.userspaceAddr, true);
    v.setBigUint64(at + 24, r.mmapOffset, true);
  });
  return out;
}

export function readMemTable(p: Uint8Array): MemoryRegion[] {
  const v = new DataView(p.buffer, p.byteOffset, p.length);
  const n = p.length >= 8 ? v.getUint32(0, true) : 0;
  if (p.length < 8 + 32 * n) throw new RangeError(`memory table of ${n} regions in ${p.length} bytes`);
  return Array.from({ length: n }, (_, i) => {
    const at = 8 + 32 * i;
    return {
      guestPhysAddr: v.getBigUint64(at, true),
      memorySize: v.getBigUint64(at + 8, true),
      userspaceAddr: v.getBigUint64(at + 16, true),
      mmapOffset: v.getBigUint64(at + 24, true),
    };
  });
}

/** VhostUserConfig {u32 offset, size, flags; u8 payload[size]}. */
export function configPayload(offset: number, data: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, offset, true);
  v.setUint32(4, data.length, true);
  v.setUint32(8, flags, true);
  out.set(data, 12);
  return out;
}

export function readConfig(p: Uint8Array): { offset: number; size: number; flags: number; data: Uint8Array } {
  if (p.length < 12) throw new RangeError(`config payload of ${p.length} bytes`);
  const v = new DataView(p.buffer, p.byteOffset, 12);
  const offset = v.getUint32(0, true);
  const size = v.getUint32(4, true);
  const flags = v.getUint32(8, true);
  if (p.length < 12 + size) throw new RangeError(`config payload says ${size} bytes but carries ${p.length - 12}`);
  return { offset, size, flags, data: p.subarray(12, 12 + size) };
}
