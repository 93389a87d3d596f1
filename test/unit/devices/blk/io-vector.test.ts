// IoVector: a block request's data as spans of the shared region, turned into views only for
// engines that need them, advanced past a short transfer, and zero-filled past the backing's end.

import { describe, expect, it } from 'vitest';

import { IoVector } from '../../../../lib/devices/blk/io-vector.js';

describe('IoVector', () => {
  const buffer = new ArrayBuffer(64);
  // The region starts 8 bytes into its buffer: span offsets are relative to the region.
  const region = new Uint8Array(buffer, 8, 48);
  const vector = () => new IoVector(region, new Float64Array([0, 4, 10, 6, 20, 8]), 18);

  it('gives views of the same bytes, at the region-relative offsets', () => {
    const views = vector().views();
    expect(views.map((v) => [v.byteOffset, v.length])).toEqual([
      [8, 4],
      [18, 6],
      [28, 8],
    ]);
    expect(views.every((v) => v.buffer === buffer)).toBe(true);
    expect(vector().count).toBe(3);
  });

  it('advances past a short transfer, inside a span or at its end, and to nothing', () => {
    const spansAfter = (n: number) => Array.from(vector().advance(n).spans);
    expect(spansAfter(0)).toEqual([0, 4, 10, 6, 20, 8]);
    expect(spansAfter(3)).toEqual([3, 1, 10, 6, 20, 8]);
    expect(spansAfter(4)).toEqual([10, 6, 20, 8]);
    expect(spansAfter(12)).toEqual([22, 6]);
    expect(spansAfter(18)).toEqual([]);
    expect(vector().advance(12).length).toBe(6);
    expect(vector().advance(18).length).toBe(0);
    // The vector advanced is a new one: the request's own spans stay as they were.
    const v = vector();
    v.advance(5);
    expect(Array.from(v.spans)).toEqual([0, 4, 10, 6, 20, 8]);
  });

  it('fills its ranges and nothing between them', () => {
    region.fill(1);
    vector().fill(0);
    expect(Array.from(region.subarray(0, 30))).toEqual([
      0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
    ]);
  });

  it('is made from views of one buffer, and refuses views of two', () => {
    const mem = new Uint8Array(32);
    const v = IoVector.ofViews([mem.subarray(4, 8), mem.subarray(16, 32)]);
    expect(Array.from(v.spans)).toEqual([4, 4, 16, 16]);
    expect(v.length).toBe(20);
    expect(() => IoVector.ofViews([mem.subarray(0, 4), new Uint8Array(4)])).toThrow(RangeError);
  });
});
