// WRITE_ZEROES fallbacks (zeroes.ts) with an engine whose answers the test picks: EOPNOTSUPP
// for ZERO_RANGE turns into zero writes (asked once, then straight to the fallback), a refused
// hole into zero writes too, any other error is the request's.

import { describe, expect, it } from 'vitest';

import { ZERO_CHUNK, ZeroWriter } from '../../../../lib/devices/blk/zeroes.js';
import { errno, ManualEngine } from './helpers.js';

function run(writer: ZeroWriter, offset: number, length: number, unmap: boolean): { result: () => NodeJS.ErrnoException | null | undefined } {
  let result: NodeJS.ErrnoException | null | undefined;
  writer.writeZeroes(offset, length, unmap, false, (err) => {
    result = err;
  });
  return { result: () => result };
}

describe('WRITE_ZEROES fallbacks', () => {
  it('writes zeros in chunks when ZERO_RANGE is unsupported, and asks for it only once', () => {
    const engine = new ManualEngine();
    const writer = new ZeroWriter(engine);
    const r = run(writer, 4096, ZERO_CHUNK + 8192, false);
    engine.ops[0]!.complete(errno('EOPNOTSUPP', -95));
    expect(engine.ops.slice(1).map((o) => [o.op, o.offset, o.views.reduce((n, v) => n + v.length, 0)])).toEqual([['write', 4096, ZERO_CHUNK]]);
    engine.ops[1]!.complete();
    expect(engine.ops[2]).toMatchObject({ op: 'write', offset: 4096 + ZERO_CHUNK });
    expect(engine.ops[2]!.views[0]!.length).toBe(8192);
    expect(engine.ops[2]!.views[0]!.every((b) => b === 0)).toBe(true);
    engine.ops[2]!.complete();
    expect(r.result()).toBeNull();
    const again = run(writer, 0, 512, false);
    expect(engine.ops[3]).toMatchObject({ op: 'write', offset: 0 });
    engine.ops[3]!.complete();
    expect(again.result()).toBeNull();
    expect(writer.fallbacks).toBe(2);
  });

  it('punches a hole for UNMAP; a refused hole falls back to zeros; other errors are the request’s', () => {
    const engine = new ManualEngine();
    const writer = new ZeroWriter(engine);
    const hole = run(writer, 0, 1024, true);
    expect(engine.ops[0]).toMatchObject({ op: 'writeZeroes', unmap: true });
    engine.ops[0]!.complete(errno('ENOTSUP', -95));
    expect(engine.ops[1]).toMatchObject({ op: 'write', offset: 0 });
    engine.ops[1]!.complete();
    expect(hole.result()).toBeNull();
    const failed = run(writer, 0, 512, false);
    engine.ops[2]!.complete(errno('EIO'));
    expect(failed.result()).toMatchObject({ code: 'EIO' });
    expect(engine.ops).toHaveLength(3);
  });
});
