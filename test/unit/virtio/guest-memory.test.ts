import { describe, expect, it } from 'vitest';
import { GuestMemoryError } from '../../../lib/virtio/errors.js';
import { addressFromWords, GuestMemory } from '../../../lib/virtio/guest-memory.js';

const BASE = 0x4000_0000;

function region(size = 256): GuestMemory {
  return new GuestMemory(BASE, new Uint8Array(size));
}

describe('GuestMemory', () => {
  it('translates a frontend GPA to an offset by subtracting the region base (bao-abi §3.6)', () => {
    const mem = region();
    expect(mem.offsetOf(BASE, 1)).toBe(0);
    expect(mem.offsetOf(BASE + 255, 1)).toBe(255);
    expect(mem.offsetOf(BASE, 256)).toBe(0);
    expect(mem.offsetOf(BASE + 256, 0)).toBe(256);
  });

  it('rejects any range with a byte outside the region', () => {
    const mem = region();
    expect(mem.offsetOf(BASE - 1, 1)).toBe(-1);
    expect(mem.offsetOf(BASE + 255, 2)).toBe(-1);
    expect(mem.offsetOf(BASE, 257)).toBe(-1);
    expect(mem.offsetOf(BASE + 257, 0)).toBe(-1);
    expect(mem.offsetOf(0, 1)).toBe(-1);
    expect(mem.contains(BASE + 10, 10)).toBe(true);
    expect(mem.contains(BASE + 250, 10)).toBe(false);
  });

  it('cannot be fooled by lengths that would overflow', () => {
    const mem = region();
    expect(mem.offsetOf(BASE + 1, 0xffff_ffff)).toBe(-1);
    expect(mem.offsetOf(BASE + 1, Number.MAX_SAFE_INTEGER)).toBe(-1);
    expect(mem.offsetOf(Number.MAX_SAFE_INTEGER, 1)).toBe(-1);
    expect(mem.offsetOf(Number.POSITIVE_INFINITY, 0)).toBe(-1);
    expect(mem.offsetOf(BASE, -1)).toBe(-1);
    expect(mem.offsetOf(BASE + 0.5, 1)).toBe(-1);
    expect(mem.offsetOf(Number.NaN, 1)).toBe(-1);
  });

  it('treats a u64 GPA whose high word is >= 2^21 as out of range', () => {
    expect(addressFromWords(0x1234, 0x1f_ffff)).toBe(0x1f_ffff * 2 ** 32 + 0x1234);
    expect(addressFromWords(0, 0x20_0000)).toBe(Number.POSITIVE_INFINITY);
    expect(addressFromWords(0, 0xffff_ffff)).toBe(Number.POSITIVE_INFINITY);
    const mem = region();
    mem.writeU64(BASE + 8, 0xffff_ffff_0000_0000n);
    expect(mem.readAddress(BASE + 8)).toBe(Number.POSITIVE_INFINITY);
    mem.writeU64(BASE + 8, BigInt(BASE + 16));
    expect(mem.readAddress(BASE + 8)).toBe(BASE + 16);
  });

  it('gives zero-copy views: writes through a slice land in the region', () => {
    const bytes = new Uint8Array(64);
    const mem = new GuestMemory(BASE, bytes);
    const view = mem.slice(BASE + 8, 4);
    view.set([1, 2, 3, 4]);
    expect(Array.from(bytes.subarray(8, 12))).toEqual([1, 2, 3, 4]);
    expect(view.buffer).toBe(bytes.buffer);
  });

  it('reads and writes little-endian scalars', () => {
    const bytes = new Uint8Array(64);
    const mem = new GuestMemory(BASE, bytes);
    mem.writeU32(BASE, 0x11223344);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(mem.readU16(BASE)).toBe(0x3344);
    expect(mem.readU8(BASE + 3)).toBe(0x11);
    mem.writeU16(BASE + 4, 0xbeef);
    expect(mem.readU32(BASE + 4)).toBe(0xbeef);
    mem.writeU64(BASE + 8, 0x0102030405060708n);
    expect(mem.readU64(BASE + 8)).toBe(0x0102030405060708n);
    mem.writeU8(BASE + 16, 0xff);
    expect(bytes[16]).toBe(0xff);
  });

  it('throws GuestMemoryError GUEST_ADDRESS_OUT_OF_RANGE for out-of-range slices and reads', () => {
    const mem = region(16);
    const attempts = [
      () => mem.slice(BASE + 8, 9),
      () => mem.readU16(BASE + 15),
      () => mem.readU32(BASE - 4),
      () => mem.readU64(BASE + 9),
      () => mem.writeU32(BASE + 16, 0),
    ];
    for (const attempt of attempts) {
      expect(attempt).toThrow(GuestMemoryError);
      try {
        attempt();
      } catch (err) {
        expect((err as GuestMemoryError).code).toBe('GUEST_ADDRESS_OUT_OF_RANGE');
      }
    }
  });

  it('works on a region embedded in a larger buffer without reaching the bytes around it', () => {
    const backing = new Uint8Array(64).fill(0xaa);
    const mem = new GuestMemory(BASE, backing.subarray(16, 48));
    mem.slice(BASE, 32).fill(0);
    expect(mem.size).toBe(32);
    expect(backing.subarray(0, 16).every((b) => b === 0xaa)).toBe(true);
    expect(backing.subarray(48).every((b) => b === 0xaa)).toBe(true);
    expect(() => mem.slice(BASE + 16, 17)).toThrow(GuestMemoryError);
  });

  it('refuses regions its ring atomics cannot serve (unaligned base or view)', () => {
    expect(() => new GuestMemory(BASE + 2, new Uint8Array(16))).toThrow(GuestMemoryError);
    expect(() => new GuestMemory(BASE, new Uint8Array(32).subarray(2))).toThrow(GuestMemoryError);
    expect(() => new GuestMemory(-8, new Uint8Array(16))).toThrow(GuestMemoryError);
  });
});
