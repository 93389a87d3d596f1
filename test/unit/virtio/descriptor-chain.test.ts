import { describe, expect, it } from 'vitest';
import { bufferCount, bufferView, chainFromSpans, copyFromReadable, copyToWritable, type DescriptorChain } from '../../../lib/virtio/descriptor-chain.js';

/** A chain over a fresh region: readable buffers with these bytes, then writable ones of these sizes. */
function chain(readable: number[][], writable: number[]): DescriptorChain {
  const region = new Uint8Array(256);
  const spans: number[] = [];
  let at = 0;
  for (const bytes of readable) {
    region.set(bytes, at);
    spans.push(at, bytes.length);
    at += bytes.length + 3; // gaps between buffers, so a copy that runs over shows
  }
  for (const n of writable) {
    spans.push(at, n);
    at += n + 3;
  }
  return chainFromSpans(0, region, spans, readable.length);
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

describe('a chain as spans of the region', () => {
  it('names each buffer by its region offset and length, readable ones first, and its views are those bytes', () => {
    const c = chain([[1, 2], [3]], [4]);
    expect(bufferCount(c)).toBe(3);
    expect(c.readableCount).toBe(2);
    expect(c.spans).toEqual([0, 2, 5, 1, 9, 4]);
    expect([c.readableLength, c.writableLength]).toEqual([3, 4]);
    // A view and the span are the same memory: what one writes the other reads.
    bufferView(c, 2)[1] = 0xee;
    expect(c.region[10]).toBe(0xee);
    expect(c.writable[0]![1]).toBe(0xee);
    expect(c.readable.map((b) => Array.from(b))).toEqual([[1, 2], [3]]);
  });

  it('makes its views once, on first use', () => {
    const c = chain([[1]], [2]);
    expect(c.readable).toBe(c.readable);
    expect(c.writable).toBe(c.writable);
  });

  it('refuses spans outside the region', () => {
    expect(() => chainFromSpans(0, new Uint8Array(8), [4, 5], 1)).toThrow(RangeError);
    expect(() => chainFromSpans(0, new Uint8Array(8), [-1, 1], 1)).toThrow(RangeError);
  });
});
