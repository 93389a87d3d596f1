// InFlightRequests: the ledger DeviceModelServer keeps of the accesses it was handed and has not
// completed. Whatever the order of completions, each request is completed at most once, and
// drain() returns exactly those still waiting, in arrival order (the last resort completes them).

import { describe, expect, it } from 'vitest';

import type { IoRequest } from '../../../lib/dispatcher/index.js';
import { IoOp } from '../../../lib/uapi/constants.js';
import { InFlightRequests } from '../../../lib/vmm/in-flight-requests.js';

let nextId = 0;
const req = (): IoRequest => ({ dmId: 0, addr: 0x1000, op: IoOp.Read, value: 0n, accessWidth: 4, requestId: nextId++ });
const batch = (n: number): IoRequest[] => Array.from({ length: n }, req);

describe('InFlightRequests', () => {
  it('takes requests completed in arrival order across batches, once each', () => {
    const f = new InFlightRequests();
    const a = batch(3);
    const b = batch(2);
    f.add(a);
    f.add(b);
    expect(f.size).toBe(5);
    for (const r of [...a, ...b]) expect(f.take(r)).toBe(true);
    expect(f.size).toBe(0);
    expect(f.take(a[0]!)).toBe(false);
    expect(f.drain()).toEqual([]);
  });

  it('honours a completion out of arrival order and skips it later', () => {
    const f = new InFlightRequests();
    const a = batch(3);
    const b = batch(2);
    f.add(a);
    f.add(b);
    expect(f.take(b[1]!)).toBe(true);
    expect(f.take(a[2]!)).toBe(true);
    expect(f.take(b[1]!)).toBe(false);
    expect(f.size).toBe(3);
    expect(f.take(a[0]!)).toBe(true);
    expect(f.take(a[1]!)).toBe(true);
    expect(f.size).toBe(1);
    expect(f.drain()).toEqual([b[0]]);
  });

  it('drains what is left in arrival order, without the ones completed out of order, and then holds nothing', () => {
    const f = new InFlightRequests();
    const a = batch(4);
    const b = batch(3);
    f.add(a);
    f.add(b);
    f.take(a[0]!);
    f.take(b[0]!);
    expect(f.drain()).toEqual([a[1], a[2], a[3], b[1], b[2]]);
    expect(f.size).toBe(0);
    for (const r of [...a, ...b]) expect(f.take(r)).toBe(false);
  });

  it('refuses requests it was never handed, and ignores empty batches', () => {
    const f = new InFlightRequests();
    f.add([]);
    expect(f.take(req())).toBe(false);
    const a = batch(1);
    f.add(a);
    expect(f.take(req())).toBe(false);
    expect(f.take(a[0]!)).toBe(true);
  });
});
