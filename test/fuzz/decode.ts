// Structure-aware decoding of fuzzer bytes. The engine mutates flat byte strings; these helpers
// read them as what a hostile frontend controls: ring layouts (descriptor tables, indirect tables,
// avail entries and indices) and register access sequences. Values are drawn mostly from the
// places and numbers that matter (inside the data area, the ring edges, the region's ends, the
// register offsets, status bit combinations) and sometimes from the whole range, so the
// fuzzer reaches deep paths quickly without losing the absurd cases.
//
// Reading past the end yields zeros: every byte string decodes to something, and a short input
// decodes to a short script.

import * as R from '../../lib/virtio/mmio-registers.js';

export class FuzzInput {
  private pos = 0;

  constructor(readonly data: Uint8Array) {}

  get remaining(): number {
    return this.data.length - this.pos;
  }

  get done(): boolean {
    return this.pos >= this.data.length;
  }

  u8(): number {
    return this.pos < this.data.length ? (this.data[this.pos++] as number) : 0;
  }

  u16(): number {
    return this.u8() | (this.u8() << 8);
  }

  u32(): number {
    return (this.u16() | (this.u16() << 16)) >>> 0;
  }

  bool(): boolean {
    return (this.u8() & 1) === 1;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    if (n <= 1) return 0;
    return n <= 256 ? this.u8() % n : this.u32() % n;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T;
  }

  /** Up to `max` bytes (fewer when the input ends). */
  bytes(max: number): Uint8Array {
    const n = Math.min(max, this.remaining);
    const out = this.data.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

// --- ring layouts ----------------------------------------------------------------------------

/** Where things are in the guest region, for choosing addresses a driver would (or should not) use. */
export interface AddressSpace {
  /** GPA of the region's first byte, and its size. */
  readonly base: number;
  readonly size: number;
  /** A pool for data buffers. */
  readonly dataStart: number;
  readonly dataSize: number;
  /** GPAs of the indirect-table slots (each `INDIRECT_SLOT_BYTES` long). */
  readonly tables: readonly number[];
  /** Ring part GPAs, so descriptors can alias the rings themselves. */
  readonly rings: readonly number[];
}

export const INDIRECT_SLOT_BYTES = 512;

export interface RawDescriptor {
  readonly addr: bigint;
  readonly len: number;
  readonly flags: number;
  readonly next: number;
}

const DESC_NEXT = 1;
const DESC_WRITE = 2;
const DESC_INDIRECT = 4;

/** A guest address for a buffer of about `len` bytes. */
export function decodeAddress(input: FuzzInput, space: AddressSpace, len: number): bigint {
  const end = space.base + space.size;
  switch (input.u8() & 7) {
    case 0:
    case 1:
    case 2:
      return BigInt(space.dataStart + input.below(space.dataSize));
    case 3:
      return BigInt(input.pick(space.tables) + 16 * input.below(INDIRECT_SLOT_BYTES / 16));
    case 4:
      return BigInt(
        input.pick([space.base - 1, space.base - 16, space.base, end - 1, end, end - 16, end - len, end - len + 1, 0, input.pick(space.rings)]),
      );
    case 5:
      return BigInt(input.pick(space.rings) + input.below(64));
    case 6:
      return (BigInt(input.u32()) << 32n) | BigInt(input.u32());
    default:
      return BigInt(input.u32());
  }
}

/** A descriptor as a hostile driver writes it. `entries`: the table it lives in (for `next`). */
export function decodeDescriptor(input: FuzzInput, space: AddressSpace, entries: number): RawDescriptor {
  const shape = input.u8();
  let len: number;
  switch ((shape >>> 4) & 3) {
    case 0:
      len = input.u8();
      break;
    case 1:
      len = input.u16();
      break;
    case 2:
      len = input.pick([0, 1, 16, 32, 16 * entries, 16 * (entries + 1), 0xffff0, 0x100000, 0xffff_ffff, 0x8000_0000, space.size]);
      break;
    default:
      len = input.u32();
  }
  const addr = decodeAddress(input, space, len);
  let flags: number;
  if ((shape & 0x80) !== 0) flags = input.u16();
  else flags = shape & (DESC_NEXT | DESC_WRITE | DESC_INDIRECT);
  const nextByte = input.u8();
  const next = nextByte < 0xf0 ? nextByte % (entries + 2) : input.u16();
  return { addr, len, flags, next };
}

export function writeDescriptor(view: DataView, offset: number, d: RawDescriptor): void {
  view.setBigUint64(offset, d.addr & 0xffff_ffff_ffff_ffffn, true);
  view.setUint32(offset + 8, d.len >>> 0, true);
  view.setUint16(offset + 12, d.flags & 0xffff, true);
  view.setUint16(offset + 14, d.next & 0xffff, true);
}

/** A split-queue size: mostly small powers of two, sometimes anything (the constructor must refuse). */
export function decodeQueueSize(input: FuzzInput, max: number): number {
  const b = input.u8();
  if (b < 0xe0) return Math.min(1 << (b % 9), max);
  return input.pick([0, 3, max + 1, max * 2, 0x8000, 0x10000, input.u16()]);
}

/**
 * An index a driver writes into the avail ring (a head) or as avail idx: mostly in range, sometimes
 * just past it, sometimes anything.
 */
export function decodeIndex(input: FuzzInput, size: number): number {
  const b = input.u8();
  if (b < 0xc0) return b % size;
  if (b < 0xf0) return size + (b & 3);
  return input.u16();
}

// --- register accesses -----------------------------------------------------------------------

export type AccessOp = 'read' | 'write';

export interface RegisterAccess {
  readonly op: AccessOp;
  readonly offset: number;
  readonly width: number;
  readonly value: number;
}

/** Every register offset of the virtio-mmio window, and the device config area. */
export const REGISTER_OFFSETS: readonly number[] = [
  R.MMIO_MAGIC_VALUE,
  R.MMIO_VERSION,
  R.MMIO_DEVICE_ID,
  R.MMIO_VENDOR_ID,
  R.MMIO_DEVICE_FEATURES,
  R.MMIO_DEVICE_FEATURES_SEL,
  R.MMIO_DRIVER_FEATURES,
  R.MMIO_DRIVER_FEATURES_SEL,
  R.MMIO_QUEUE_SEL,
  R.MMIO_QUEUE_NUM_MAX,
  R.MMIO_QUEUE_NUM,
  R.MMIO_QUEUE_READY,
  R.MMIO_QUEUE_NOTIFY,
  R.MMIO_INTERRUPT_STATUS,
  R.MMIO_INTERRUPT_ACK,
  R.MMIO_STATUS,
  R.MMIO_QUEUE_DESC_LOW,
  R.MMIO_QUEUE_DESC_HIGH,
  R.MMIO_QUEUE_DRIVER_LOW,
  R.MMIO_QUEUE_DRIVER_HIGH,
  R.MMIO_QUEUE_DEVICE_LOW,
  R.MMIO_QUEUE_DEVICE_HIGH,
  R.MMIO_SHM_SEL,
  R.MMIO_SHM_LEN_LOW,
  R.MMIO_SHM_LEN_HIGH,
  R.MMIO_SHM_BASE_LOW,
  R.MMIO_SHM_BASE_HIGH,
  R.MMIO_QUEUE_RESET,
  R.MMIO_CONFIG_GENERATION,
  R.MMIO_CONFIG,
  R.MMIO_CONFIG + 2,
  R.MMIO_CONFIG + 4,
  R.MMIO_CONFIG + 8,
  R.MMIO_CONFIG + 12,
];

/** Values worth trying in any register: status combinations, selectors, feature words, edges. */
const INTERESTING_VALUES: readonly number[] = [
  0, 1, 2, 3, 4, 5, 7, 8, 0x0b, 0x0f, 0x40, 0x43, 0x47, 0x4b, 0x4f, 0x80, 0x8f, 0xcf, 0xff, 0x100, 0x400, 0x8000,
  0xffff, 0x1_0000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff,
  // VERSION_1 is bit 32 (word 1, bit 0); EVENT_IDX bit 29, INDIRECT_DESC bit 28, EMERG_WRITE bit 2.
  0x3000_0000, 0x3000_0004, 0x2000_0000, 0x1000_0000,
];

/** A value a driver stores; `extra` adds target-specific ones (ring GPAs). */
export function decodeValue(input: FuzzInput, extra: readonly number[] = []): number {
  const b = input.u8();
  if (b < 0x60) return input.pick(INTERESTING_VALUES);
  if (b < 0x90 && extra.length > 0) return input.pick(extra);
  if (b < 0xf0) return input.u32();
  // Junk above the access width and values no register holds (the transport masks to the width).
  return input.pick([-1, 2 ** 32, 2 ** 32 + input.u16(), 2 ** 53, Number.NaN, 1.5, Number.POSITIVE_INFINITY]);
}

export function decodeOffset(input: FuzzInput): number {
  const b = input.u8();
  if (b < 0xc8) return (REGISTER_OFFSETS[b % REGISTER_OFFSETS.length] as number) + (b >= 0xb0 ? b & 3 : 0);
  if (b < 0xf0) return input.u16() % (R.MMIO_WINDOW_SIZE + 0x20);
  return input.pick([-4, -1, R.MMIO_WINDOW_SIZE, R.MMIO_WINDOW_SIZE - 4, R.MMIO_WINDOW_SIZE - 1, 2 ** 32, 0.5, Number.NaN]);
}

export function decodeWidth(input: FuzzInput): number {
  return input.pick([4, 4, 4, 4, 4, 1, 2, 8, 0, 3]);
}

export function decodeAccess(input: FuzzInput, extraValues: readonly number[] = []): RegisterAccess {
  const op: AccessOp = input.bool() ? 'write' : 'read';
  const offset = decodeOffset(input);
  const width = decodeWidth(input);
  const value = op === 'write' ? decodeValue(input, extraValues) : 0;
  return { op, offset, width, value };
}
