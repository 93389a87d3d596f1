// GuestMemory: the frontend's view of the shared region, as the device model sees it.
// Bao maps the remio shmem region at the same guest-physical base in both VMs, so a frontend
// GPA becomes an offset into our mapping by a subtraction (bao-abi.md §3.6). Everything here
// is bounds-checked and zero-copy: slice() returns a view onto the mapping, never a copy.
//
// GPAs are JS numbers. Every address that can be inside a region we can map is below 2^53,
// so a u64 read from a ring whose high word is >= 2^21 is reported as Infinity, which no
// range check accepts.

import { GuestMemoryError } from './errors.js';

/** Virtio rings are little-endian; the ring code uses native Uint16Array atomics. */
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** High words at or above this make a u64 GPA exceed Number.MAX_SAFE_INTEGER. */
const MAX_SAFE_HIGH_WORD = 0x20_0000;

export class GuestMemory {
  readonly size: number;
  /** Little-endian scalar access to the region (the DataView is made once, not per read). */
  readonly view: DataView;
  /**
   * The region as u16 cells, for the ring indices that need Atomics (split-queue.ts).
   * Cell i covers region offset 2*i; the region's byteOffset is required to be 8-aligned.
   */
  readonly u16: Uint16Array;

  constructor(
    readonly base: number,
    readonly bytes: Uint8Array,
  ) {
    if (!HOST_IS_LITTLE_ENDIAN) {
      throw new GuestMemoryError('GUEST_MEMORY_UNSUPPORTED', 'virtio rings need a little-endian host');
    }
    if (!Number.isSafeInteger(base) || base < 0 || base % 8 !== 0) {
      throw new GuestMemoryError('GUEST_MEMORY_UNSUPPORTED', `region base ${base} is not an 8-aligned safe integer`);
    }
    if (bytes.byteOffset % 8 !== 0) {
      throw new GuestMemoryError('GUEST_MEMORY_UNSUPPORTED', 'region view must start 8-aligned in its buffer');
    }
    if (!Number.isSafeInteger(base + bytes.byteLength)) {
      throw new GuestMemoryError('GUEST_MEMORY_UNSUPPORTED', 'region end is beyond 2^53');
    }
    this.size = bytes.byteLength;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, this.size >>> 1);
  }

  /**
   * Offset of [gpa, gpa+len) in the region, or -1 if any byte of it is outside. Written so
   * that no intermediate sum can exceed the region: offset <= size - len.
   */
  offsetOf(gpa: number, len: number): number {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || len < 0 || len > this.size) return -1;
    const offset = gpa - this.base;
    if (offset < 0 || offset > this.size - len) return -1;
    return offset;
  }

  contains(gpa: number, len: number): boolean {
    return this.offsetOf(gpa, len) >= 0;
  }

  /** A view of [gpa, gpa+len) onto the mapping (no copy). */
  slice(gpa: number, len: number): Uint8Array {
    const offset = this.checked(gpa, len);
    return this.bytes.subarray(offset, offset + len);
  }

  readU8(gpa: number): number {
    return this.view.getUint8(this.checked(gpa, 1));
  }

  readU16(gpa: number): number {
    return this.view.getUint16(this.checked(gpa, 2), true);
  }

  readU32(gpa: number): number {
    return this.view.getUint32(this.checked(gpa, 4), true);
  }

  readU64(gpa: number): bigint {
    return this.view.getBigUint64(this.checked(gpa, 8), true);
  }

  /** A u64 that is a guest address: Infinity when it cannot be a region address (see banner). */
  readAddress(gpa: number): number {
    const offset = this.checked(gpa, 8);
    return addressFromWords(this.view.getUint32(offset, true), this.view.getUint32(offset + 4, true));
  }

  writeU8(gpa: number, value: number): void {
    this.view.setUint8(this.checked(gpa, 1), value);
  }

  writeU16(gpa: number, value: number): void {
    this.view.setUint16(this.checked(gpa, 2), value, true);
  }

  writeU32(gpa: number, value: number): void {
    this.view.setUint32(this.checked(gpa, 4), value, true);
  }

  writeU64(gpa: number, value: bigint): void {
    this.view.setBigUint64(this.checked(gpa, 8), value, true);
  }

  private checked(gpa: number, len: number): number {
    const offset = this.offsetOf(gpa, len);
    if (offset < 0) {
      throw new GuestMemoryError(
        'GUEST_ADDRESS_OUT_OF_RANGE',
        `guest address ${gpa} (+${len}) is outside the shared region [${this.base}, ${this.base + this.size})`,
        gpa,
        len,
      );
    }
    return offset;
  }
}

/** Combine two u32 words into a GPA number; Infinity when the value is beyond 2^53. */
export function addressFromWords(low: number, high: number): number {
  if (high >= MAX_SAFE_HIGH_WORD) return Number.POSITIVE_INFINITY;
  return high * 0x1_0000_0000 + low;
}
