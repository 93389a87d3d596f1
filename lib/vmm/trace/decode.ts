// Decoding for `baoctl trace`: a trapped virtio-mmio access becomes the register's name and its
// value in words (status bits, feature bits by name for the device type, queue fields with the
// queue they select). Pure functions over numbers, so the daemon (which decodes only while a
// tracer is attached) and the unit tests share them.

import * as R from '../../virtio/mmio-registers.js';
import { formatStatus } from '../../virtio/status.js';

/** Register names by offset (virtio 1.2 §4.2.2). */
const REGISTERS: ReadonlyMap<number, string> = new Map([
  [R.MMIO_MAGIC_VALUE, 'MagicValue'],
  [R.MMIO_VERSION, 'Version'],
  [R.MMIO_DEVICE_ID, 'DeviceID'],
  [R.MMIO_VENDOR_ID, 'VendorID'],
  [R.MMIO_DEVICE_FEATURES, 'DeviceFeatures'],
  [R.MMIO_DEVICE_FEATURES_SEL, 'DeviceFeaturesSel'],
  [R.MMIO_DRIVER_FEATURES, 'DriverFeatures'],
  [R.MMIO_DRIVER_FEATURES_SEL, 'DriverFeaturesSel'],
  [R.MMIO_QUEUE_SEL, 'QueueSel'],
  [R.MMIO_QUEUE_NUM_MAX, 'QueueNumMax'],
  [R.MMIO_QUEUE_NUM, 'QueueNum'],
  [R.MMIO_QUEUE_READY, 'QueueReady'],
  [R.MMIO_QUEUE_NOTIFY, 'QueueNotify'],
  [R.MMIO_INTERRUPT_STATUS, 'InterruptStatus'],
  [R.MMIO_INTERRUPT_ACK, 'InterruptACK'],
  [R.MMIO_STATUS, 'Status'],
  [R.MMIO_QUEUE_DESC_LOW, 'QueueDescLow'],
  [R.MMIO_QUEUE_DESC_HIGH, 'QueueDescHigh'],
  [R.MMIO_QUEUE_DRIVER_LOW, 'QueueDriverLow'],
  [R.MMIO_QUEUE_DRIVER_HIGH, 'QueueDriverHigh'],
  [R.MMIO_QUEUE_DEVICE_LOW, 'QueueDeviceLow'],
  [R.MMIO_QUEUE_DEVICE_HIGH, 'QueueDeviceHigh'],
  [R.MMIO_SHM_SEL, 'SHMSel'],
  [R.MMIO_SHM_LEN_LOW, 'SHMLenLow'],
  [R.MMIO_SHM_LEN_HIGH, 'SHMLenHigh'],
  [R.MMIO_SHM_BASE_LOW, 'SHMBaseLow'],
  [R.MMIO_SHM_BASE_HIGH, 'SHMBaseHigh'],
  [R.MMIO_QUEUE_RESET, 'QueueReset'],
  [R.MMIO_CONFIG_GENERATION, 'ConfigGeneration'],
]);

/** The registers that act on the queue QueueSel selects. */
const QUEUE_REGISTERS = new Set([
  R.MMIO_QUEUE_NUM_MAX,
  R.MMIO_QUEUE_NUM,
  R.MMIO_QUEUE_READY,
  R.MMIO_QUEUE_DESC_LOW,
  R.MMIO_QUEUE_DESC_HIGH,
  R.MMIO_QUEUE_DRIVER_LOW,
  R.MMIO_QUEUE_DRIVER_HIGH,
  R.MMIO_QUEUE_DEVICE_LOW,
  R.MMIO_QUEUE_DEVICE_HIGH,
  R.MMIO_QUEUE_RESET,
]);

/** The register at `offset` of a window: its name, `config+0xN` in config space, or undefined. */
export function registerName(offset: number): string | undefined {
  if (offset >= R.MMIO_CONFIG && offset < R.MMIO_WINDOW_SIZE) return `config+0x${(offset - R.MMIO_CONFIG).toString(16)}`;
  return REGISTERS.get(offset);
}

/** Feature bits every device type shares (virtio 1.2 §6). */
const TRANSPORT_FEATURE_NAMES: Readonly<Record<number, string>> = {
  24: 'NOTIFY_ON_EMPTY',
  27: 'ANY_LAYOUT',
  28: 'RING_INDIRECT_DESC',
  29: 'RING_EVENT_IDX',
  32: 'VERSION_1',
  33: 'ACCESS_PLATFORM',
  34: 'RING_PACKED',
  35: 'IN_ORDER',
  36: 'ORDER_PLATFORM',
  37: 'SR_IOV',
  38: 'NOTIFICATION_DATA',
  39: 'NOTIF_CONFIG_DATA',
  40: 'RING_RESET',
};

/** Device-specific feature bits (0..23) by virtio Device ID (virtio 1.2 §5). */
const DEVICE_FEATURE_NAMES: Readonly<Record<number, Readonly<Record<number, string>>>> = {
  1: {
    0: 'NET_CSUM',
    1: 'NET_GUEST_CSUM',
    2: 'NET_CTRL_GUEST_OFFLOADS',
    3: 'NET_MTU',
    5: 'NET_MAC',
    7: 'NET_GUEST_TSO4',
    8: 'NET_GUEST_TSO6',
    9: 'NET_GUEST_ECN',
    10: 'NET_GUEST_UFO',
    11: 'NET_HOST_TSO4',
    12: 'NET_HOST_TSO6',
    13: 'NET_HOST_ECN',
    14: 'NET_HOST_UFO',
    15: 'NET_MRG_RXBUF',
    16: 'NET_STATUS',
    17: 'NET_CTRL_VQ',
    18: 'NET_CTRL_RX',
    19: 'NET_CTRL_VLAN',
    21: 'NET_GUEST_ANNOUNCE',
    22: 'NET_MQ',
    23: 'NET_CTRL_MAC_ADDR',
  },
  2: {
    1: 'BLK_SIZE_MAX',
    2: 'BLK_SEG_MAX',
    4: 'BLK_GEOMETRY',
    5: 'BLK_RO',
    6: 'BLK_BLK_SIZE',
    9: 'BLK_FLUSH',
    10: 'BLK_TOPOLOGY',
    11: 'BLK_CONFIG_WCE',
    12: 'BLK_MQ',
    13: 'BLK_DISCARD',
    14: 'BLK_WRITE_ZEROES',
    16: 'BLK_SECURE_ERASE',
  },
  3: { 0: 'CONSOLE_SIZE', 1: 'CONSOLE_MULTIPORT', 2: 'CONSOLE_EMERG_WRITE' },
  19: { 0: 'VSOCK_STREAM', 1: 'VSOCK_SEQPACKET' },
  26: { 0: 'FS_NOTIFICATION' },
};

/** Device IDs by name, for the trace's header (virtio 1.2 §5). */
export const DEVICE_TYPES: Readonly<Record<number, string>> = { 1: 'net', 2: 'blk', 3: 'console', 4: 'rng', 19: 'vsock', 26: 'fs' };

/** The names of the bits set in feature word `sel` (bits 32*sel .. 32*sel+31) of device type `deviceId`. */
export function featureNames(deviceId: number, sel: number, word: number): string[] {
  const names: string[] = [];
  const own = DEVICE_FEATURE_NAMES[deviceId] ?? {};
  for (let b = 0; b < 32; b += 1) {
    if (((word >>> b) & 1) === 0) continue;
    const bit = 32 * sel + b;
    names.push((bit < 24 ? own[bit] : TRANSPORT_FEATURE_NAMES[bit]) ?? `bit${bit}`);
  }
  return names;
}

function interruptBits(value: number): string {
  const names: string[] = [];
  if (value & R.INTERRUPT_VRING) names.push('VRING');
  if (value & R.INTERRUPT_CONFIG) names.push('CONFIG');
  const rest = value & ~(R.INTERRUPT_VRING | R.INTERRUPT_CONFIG);
  if (rest !== 0) names.push(`0x${(rest >>> 0).toString(16)}`);
  return names.length === 0 ? 'none' : names.join('|');
}

/** The selectors in force at the access (MmioTransport.selectors after it). */
export interface Selectors {
  readonly deviceFeaturesSel: number;
  readonly driverFeaturesSel: number;
  readonly queueSel: number;
}

export interface DecodedAccess {
  /** The register's name, `config+0xN`, or `?0xNNN` for an offset that is none. */
  readonly register: string;
  /** The value in words ('' when a number says all). */
  readonly decoded: string;
  /** The queue a queue register acts on (QueueSel), or the queue a QueueNotify kicks. */
  readonly queue?: number;
}

function hex(value: number): string {
  return `0x${(value >>> 0).toString(16)}`;
}

/**
 * Decodes one access at `offset` of a device of type `deviceId`: `value` is what was read, or
 * written (masked to the width).
 */
export function decodeAccess(deviceId: number, offset: number, write: boolean, value: number, sel: Selectors): DecodedAccess {
  if (offset < 0 || offset >= R.MMIO_WINDOW_SIZE) return { register: 'outside the window', decoded: `offset ${offset < 0 ? '-' : ''}0x${Math.abs(offset).toString(16)}` };
  const register = registerName(offset) ?? `?${hex(offset)}`;
  const queue = QUEUE_REGISTERS.has(offset) ? { queue: sel.queueSel } : {};
  switch (offset) {
    case R.MMIO_MAGIC_VALUE:
      return { register, decoded: value === R.MAGIC_VALUE ? '"virt"' : 'not "virt"' };
    case R.MMIO_VERSION:
      return { register, decoded: value === 2 ? 'modern (virtio 1.x)' : value === 1 ? 'legacy' : 'unknown' };
    case R.MMIO_DEVICE_ID:
      return { register, decoded: DEVICE_TYPES[value] ?? (value === 0 ? 'no device' : `type ${value}`) };
    case R.MMIO_DEVICE_FEATURES:
      return { register, decoded: `word ${sel.deviceFeaturesSel}: ${featureNames(deviceId, sel.deviceFeaturesSel, value).join(' ') || 'none'}` };
    case R.MMIO_DRIVER_FEATURES:
      return { register, decoded: `word ${sel.driverFeaturesSel}: ${featureNames(deviceId, sel.driverFeaturesSel, value).join(' ') || 'none'}` };
    case R.MMIO_DEVICE_FEATURES_SEL:
    case R.MMIO_DRIVER_FEATURES_SEL:
      return { register, decoded: `word ${value}` };
    case R.MMIO_QUEUE_SEL:
      return { register, decoded: `queue ${value}`, queue: value };
    case R.MMIO_QUEUE_NUM_MAX:
      return { register, decoded: value === 0 ? `queue ${sel.queueSel} does not exist` : `queue ${sel.queueSel}: up to ${value} entries`, ...queue };
    case R.MMIO_QUEUE_NUM:
      return { register, decoded: `queue ${sel.queueSel}: ${value} entries`, ...queue };
    case R.MMIO_QUEUE_READY:
      return { register, decoded: `queue ${sel.queueSel}: ${value === 1 ? 'ready' : value === 0 ? 'not ready' : `invalid ${value}`}`, ...queue };
    case R.MMIO_QUEUE_RESET:
      return { register, decoded: `queue ${sel.queueSel}: ${value === 1 ? 'reset' : String(value)}`, ...queue };
    case R.MMIO_QUEUE_DESC_LOW:
    case R.MMIO_QUEUE_DESC_HIGH:
    case R.MMIO_QUEUE_DRIVER_LOW:
    case R.MMIO_QUEUE_DRIVER_HIGH:
    case R.MMIO_QUEUE_DEVICE_LOW:
    case R.MMIO_QUEUE_DEVICE_HIGH: {
      const area = offset < R.MMIO_QUEUE_DRIVER_LOW ? 'descriptor table' : offset < R.MMIO_QUEUE_DEVICE_LOW ? 'driver (avail) ring' : 'device (used) ring';
      const half = (offset & 4) === 0 ? 'low' : 'high';
      return { register, decoded: `queue ${sel.queueSel}: ${area} address, ${half} 32 bits ${hex(value)}`, ...queue };
    }
    case R.MMIO_QUEUE_NOTIFY:
      return { register, decoded: `kick queue ${value & 0xffff}`, queue: value & 0xffff };
    case R.MMIO_INTERRUPT_STATUS:
      return { register, decoded: interruptBits(value) };
    case R.MMIO_INTERRUPT_ACK:
      return { register, decoded: `ack ${interruptBits(value)}` };
    case R.MMIO_STATUS:
      return { register, decoded: write && value === 0 ? 'RESET (driver resets the device)' : formatStatus(value) };
    case R.MMIO_CONFIG_GENERATION:
      return { register, decoded: `generation ${value}` };
    default:
      return { register, decoded: '' };
  }
}
