import { describe, expect, it } from 'vitest';
import { copyFromReadable, copyToWritable, type DescriptorChain } from '../../../lib/virtio/descriptor-chain.js';

function chain(readable: number[][], writable: number[]): DescriptorChain {
  const r = readable.map((b) => Uint8Array.from(b));
  const w = writable.map((n) => new Uint8Array(n));
  return {
    head: 0,
    readable: r,
    writable: w,
    readableLength: r.reduce((s, b) => s + b.length, 0),
    writableLength: w.reduce((s, b) => s + b.length, 0),
  };
}

describe('copying across the buffers of a chain', () => {
  it('scatters data over the writable buffers in order', () => {
    const c = chain([], [2, 0, 3]);
    expect(copyToWritable(c, Uint8Array.from([1, 2, 3, 4]))).toBe(4);
    expect(c.writable.map((b) => Array.from(b))).toEqual([[1, 2], [], [3, 4, 0]]);
  });

  it('stops at the end of the buffers and reports how much fitted', () => {
    const c = chain([], [2, 1]);
    expect(copyToWritable(c, Uint8Array.from([1, 2, 3, 4, 5]))).toBe(3);
  });

  it('starts at an offset into the buffers', () => {
    const c = chain([], [2, 3]);
    expect(copyToWritable(c, Uint8Array.from([7, 8]), 3)).toBe(2);
    expect(c.writable.map((b) => Array.from(b))).toEqual([
      [0, 0],
      [0, 7, 8],
    ]);
    expect(copyToWritable(c, Uint8Array.from([9]), 5)).toBe(0);
  });

  it('gathers the readable buffers, from an offset', () => {
    const c = chain([[1, 2], [3], [4, 5, 6]], []);
    const all = new Uint8Array(8);
    expect(copyFromReadable(c, all)).toBe(6);
    expect(Array.from(all)).toEqual([1, 2, 3, 4, 5, 6, 0, 0]);
    const part = new Uint8Array(2);
    expect(copyFromReadable(c, part, 2)).toBe(2);
    expect(Array.from(part)).toEqual([3, 4]);
  });
});
