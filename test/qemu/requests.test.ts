// Conformance of the request path (spec §3.4 ATTACH/COMPLETE, §3.9, §3.10): frontend accesses
// injected through bao-sim's debugfs reach the addon's ATTACH loop and are completed through it.

import { describe, expect, it } from 'vitest';

import { useDispatcher } from './support/backend.js';
import { dmStats, frontendAccess, frontendKick, guestSkipReason, waitFor } from './support/bao-sim.js';

const MMIO_BASE = 0xa000000;
const base = (dm: number): number => MMIO_BASE + dm * 0x200;

describe.skipIf(guestSkipReason !== undefined)('frontend requests, ATTACH and COMPLETE (v2)', () => {
  const fixture = useDispatcher({ ndms: 8, shmem_size: 0x10000 });
  const { open } = fixture;

  it('delivers a frontend READ as {dm_id, absolute address, op 1, width, request id} and returns the completed value to it', async () => {
    const dm = open(1).attach();
    const answer = frontendAccess(1, 'read', 0x70, 4);
    const req = await dm.next();
    expect(req).toMatchObject({ dmId: 1, addr: base(1) + 0x70, op: 1, value: 0, accessWidth: 4 });
    expect(req.requestId).toBeGreaterThan(0);
    dm.complete(req, 0x0f);
    expect(await answer).toBe(0x0fn);
  });

  it('delivers a frontend WRITE with its value and resumes the frontend on COMPLETE', async () => {
    const dm = open(2).attach();
    const done = frontendAccess(2, 'write', 0x70, 4, 0x3);
    const req = await dm.next();
    expect(req).toMatchObject({ dmId: 2, addr: base(2) + 0x70, op: 0, value: 3, accessWidth: 4 });
    dm.complete(req);
    await done;
    expect(dmStats(2).completions).toBe(1);
  });

  it('keeps requests queued until a backend attaches, then delivers them oldest first', async () => {
    for (const v of [1, 2, 3]) frontendKick(3, 0x50, 4, v);
    expect(dmStats(3).queued).toBe(3);
    const dm = open(3).attach();
    const got = [await dm.next(), await dm.next(), await dm.next()].map((r) => r.value);
    expect(got).toEqual([1, 2, 3]);
    expect(dmStats(3).inflight).toBe(3);
  });

  it('rejects a second COMPLETE of the same request with the hypervisor status -1 (EPERM)', async () => {
    const dm = open(4).attach();
    const done = frontendAccess(4, 'read', 0x0, 4);
    const req = await dm.next();
    dm.complete(req, 1);
    await done;
    expect(() => dm.complete(req, 1)).toThrow(expect.objectContaining({ code: 'BAO_COMPLETE_REJECTED', status: -1 }));
  });

  it('rejects COMPLETE for a dm_id the hypervisor does not know with status -3 (ESRCH)', () => {
    const dm = open(0);
    expect(() => dm.completeRaw({ dmId: 99, op: 1, requestId: 1 })).toThrow(
      expect.objectContaining({ code: 'BAO_COMPLETE_REJECTED', status: -3 }),
    );
    expect(() => dm.completeRaw({ dmId: 0, op: 7, requestId: 1 })).toThrow(
      expect.objectContaining({ code: 'BAO_COMPLETE_REJECTED', status: -3 }),
    );
  });

  it('completes a request of another DM when the COMPLETE names its dm_id (forwarded unchecked)', async () => {
    const five = open(5).attach();
    const other = open(6);
    const answer = frontendAccess(5, 'read', 0x8, 4);
    const req = await five.next();
    other.complete(req, 42);
    expect(await answer).toBe(42n);
  });

  it('hands each request to exactly one of several competing ATTACH threads', async () => {
    const a = open(7).attach();
    const b = open(7).attach();
    for (let i = 0; i < 10; i++) frontendKick(7, 0x50, 4, i);
    await waitFor(() => a.queued + b.queued === 10, 15_000, '10 requests delivered');
    expect(dmStats(7).attached).toBe(10);
    expect(dmStats(7).queued).toBe(0);
    const ids: number[] = [];
    while (a.queued > 0) ids.push((await a.next()).requestId);
    while (b.queued > 0) ids.push((await b.next()).requestId);
    expect(new Set(ids).size).toBe(10);
  });

  it('serves several device models at once, each request on its own DM fd', async () => {
    const ids = [1, 4, 6];
    const dmsNow = ids.map((id) => open(id).attach());
    const answers = ids.map((id) => frontendAccess(id, 'read', 0x100, 4));
    for (const [i, id] of ids.entries()) {
      const dm = dmsNow[i];
      if (dm === undefined) throw new Error('missing dm');
      const req = await dm.next();
      expect(req.dmId).toBe(id);
      expect(req.addr).toBe(base(id) + 0x100);
      dm.complete(req, id * 10);
    }
    expect(await Promise.all(answers)).toEqual(ids.map((id) => BigInt(id * 10)));
  });
});
