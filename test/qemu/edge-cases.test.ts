// The edge cases of spec §9, one named test each (the test names are the §9 bullets), checked
// against bao-sim in the guest through the addon (and, where a single ATTACH's errno must be
// seen, qemu/tools/bao-attach-once: the addon's AttachLoop retries EFAULT by design).

import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';

import { Mapping } from '../../lib/dispatcher/mapping.js';
import { addon, PRIMARY, useDispatcher } from './support/backend.js';
import {
  attachOnce,
  dmStats,
  frontendAccess,
  frontendKick,
  guestSkipReason,
} from './support/bao-sim.js';

const base = (dm: number): number => 0xa000000 + dm * 0x200;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(guestSkipReason !== undefined)('spec §9 edge cases', () => {
  const fixture = useDispatcher({ ndms: 16, shmem_size: 0x10000 });
  const { open, eventfd } = fixture;

  it('Request FIFO per DM, delivered to at most one ATTACH caller; other sleepers get EFAULT.', async () => {
    const one = attachOnce(1, 20_000);
    const two = attachOnce(1, 20_000);
    await Promise.all([one.ready, two.ready]);
    await sleep(500); // both are now asleep in the ioctl
    frontendKick(1, 0x50, 4, 9);
    const results = await Promise.all([one.result, two.result]);
    const winners = results.filter((r) => r.ret === 0);
    const losers = results.filter((r) => r.ret !== 0);
    expect(winners).toHaveLength(1);
    expect(winners[0]?.request).toMatchObject({ dmId: 1, addr: base(1) + 0x50, op: 0, value: '9', accessWidth: 4 });
    expect(losers).toHaveLength(1);
    expect(losers[0]?.errno).toBe(14); // EFAULT
    expect(losers[0]?.ms ?? Infinity).toBeLessThan(15_000); // woken by the request, not by its alarm
  });

  it('ATTACH blocks indefinitely when nothing is pending; signals → EFAULT (v2).', async () => {
    const { ready, result } = attachOnce(2, 1500);
    await ready;
    const r = await result;
    expect(r.ret).toBe(-1);
    expect(r.errno).toBe(14); // EFAULT, not EINTR
    expect(r.ms).toBeGreaterThanOrEqual(1400);
  });

  it('COMPLETE with unknown request_id → negative status (−1) returned as ioctl result.', () => {
    const dm = open(3);
    expect(() => dm.completeRaw({ dmId: 3, addr: base(3), op: 1, requestId: 0xdeadbeef })).toThrow(
      expect.objectContaining({ code: 'BAO_COMPLETE_REJECTED', status: -1, errno: -1 }),
    );
  });

  it('ioeventfd ranges swallow reads (value 0) and non-matching writes.', async () => {
    const dm = open(4);
    const e = eventfd();
    addon().ioeventfd(dm.fd, PRIMARY, e.fd, 0x2, base(4) + 0x50, 4, 1);
    const before = dmStats(4);
    // No backend is attached: these complete in the kernel or they would hang.
    expect(await frontendAccess(4, 'read', 0x50, 4)).toBe(0n);
    expect(await frontendAccess(4, 'write', 0x50, 4, 7)).toBe(0n);
    expect(e.read()).toBeNull();
    await frontendAccess(4, 'write', 0x50, 4, 1);
    expect(e.read()).toBe(1n);
    const after = dmStats(4);
    expect(after.attached - before.attached).toBe(0);
    expect(after.ioeventfd_swallowed - before.ioeventfd_swallowed).toBe(2);
    expect(after.ioeventfd_signals - before.ioeventfd_signals).toBe(1);
  });

  it('DEASSIGN ioeventfd re-registers (bug-compatible behaviour).', async () => {
    const dm = open(5);
    const e = eventfd();
    addon().ioeventfd(dm.fd, PRIMARY, e.fd, 0x2, base(5) + 0x50, 4, 0);
    addon().ioeventfd(dm.fd, PRIMARY, e.fd, 0x2 | 0x4, base(5) + 0x50, 4, 0);
    expect(dmStats(5).ioeventfds).toBe(1);
    await frontendAccess(5, 'write', 0x50, 4, 0);
    expect(e.read()).toBe(1n);
  });

  it('irqfd: immediate notify if eventfd already signalled at assign time; EBUSY on duplicate.', () => {
    const dm = open(6);
    const e = eventfd(1);
    const before = dmStats(6).irqfd_notifications;
    addon().irqfd(dm.fd, PRIMARY, e.fd, 0);
    expect(dmStats(6).irqfd_notifications - before).toBe(1);
    expect(() => addon().irqfd(dm.fd, PRIMARY, e.fd, 0)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
  });

  it('DM_GET_INFO creates a new fd every call; ioctl returns 0 (OOT: 1).', () => {
    const a = addon().dmGetInfo(fixture.disp, 7);
    const b = addon().dmGetInfo(fixture.disp, 7);
    try {
      expect(a.fd).toBeGreaterThanOrEqual(0);
      expect(b.fd).toBeGreaterThanOrEqual(0);
      expect(b.fd).not.toBe(a.fd);
      expect(fs.readlinkSync(`/proc/self/fd/${b.fd}`)).toBe('anon_inode:bao-dm7');
    } finally {
      fs.closeSync(a.fd);
      fs.closeSync(b.fd);
    }
  });

  it('mmap: offset must be 0, length ≤ shmem_size (v2).', () => {
    const dm = open(8);
    const size = Number(dm.info.shmemSize);
    const whole = Mapping.map(dm.fd, size);
    expect(whole.length).toBe(size);
    whole.unmap();
    expect(() => Mapping.map(dm.fd, size, { offset: 4096 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => Mapping.map(dm.fd, size + 4096)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('WRITE value may contain bits above access_width; READ value is written unmasked.', async () => {
    const dm = open(9).attach();
    const w = frontendAccess(9, 'write', 0x100, 1, 0x1ff);
    const wr = await dm.next();
    expect(wr).toMatchObject({ op: 0, accessWidth: 1, value: 0x1ff });
    dm.complete(wr);
    await w;
    const r = frontendAccess(9, 'read', 0x100, 1);
    const rd = await dm.next();
    dm.complete(rd, 0x123456789abcdef0n);
    expect(await r).toBe(0x123456789abcdef0n);
  });

  it("Up to 16 DMs; DM id must match the hypervisor's remio_devs[] index.", async () => {
    const last = open(15).attach();
    expect(last.info.id).toBe(15);
    const answer = frontendAccess(15, 'read', 0x0, 4);
    const req = await last.next();
    expect(req.dmId).toBe(15);
    expect(req.addr).toBe(base(15));
    last.complete(req, 0x74726976);
    expect(await answer).toBe(0x74726976n);
    expect(() => addon().dmGetInfo(fixture.disp, 16)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
