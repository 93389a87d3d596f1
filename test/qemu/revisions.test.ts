// The other ABI revisions bao-sim can offer (module parameter abi=, spec §2.1, §3.2, §8):
// revA (/dev/bao-dm<N>, the node is the DM) and revB (/dev/bao, CREATE_DM, ioctl type 0xA7),
// exercised through the addon's revision-aware calls.

import * as fs from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { AttachLoop } from '../../lib/dispatcher/attach-loop.js';
import { Mapping } from '../../lib/dispatcher/mapping.js';
import type { IoRequest } from '../../lib/dispatcher/request.js';
import { addon } from './support/backend.js';
import { frontendAccess, guestSkipReason, loadBaoSim, unloadBaoSim } from './support/bao-sim.js';

const REV_A = 1;
const REV_B = 2;
const base = (dm: number): number => 0xa000000 + dm * 0x200;

/** Serve one READ from the frontend with `value` over an AttachLoop of `revision`. */
async function roundTrip(fd: number, revision: 0 | 1 | 2, dm: number, value: number): Promise<IoRequest> {
  let got: IoRequest | undefined;
  const loop = new AttachLoop(
    fd,
    revision,
    dm,
    (reqs) => {
      for (const r of reqs) {
        got = r;
        addon().complete(fd, revision, r.dmId, r.addr, r.op, value, r.accessWidth, r.requestId);
      }
    },
    () => {},
  );
  try {
    expect(await frontendAccess(dm, 'read', 0x4, 4)).toBe(BigInt(value));
  } finally {
    await loop.stop();
  }
  if (got === undefined) throw new Error('no request seen');
  return got;
}

describe.skipIf(guestSkipReason !== undefined)('ABI revisions revA and revB (abi= parameter)', () => {
  const fds: number[] = [];
  afterEach(() => {
    while (fds.length > 0) fs.closeSync(fds.pop() ?? -1);
  });
  afterAll(() => unloadBaoSim());

  it('revA: one /dev/bao-dm<N> node per DM and no dispatcher; the node answers GET_INFO and serves requests', async () => {
    loadBaoSim({ abi: 'revA', ndms: 4, shmem_size: 0x10000 });
    expect(fs.existsSync('/dev/bao-io-dispatcher')).toBe(false);
    expect([0, 1, 2, 3].every((i) => fs.existsSync(`/dev/bao-dm${i}`))).toBe(true);
    expect(fs.existsSync('/dev/bao-dm4')).toBe(false);
    const fd = fs.openSync('/dev/bao-dm2', fs.constants.O_RDWR);
    fds.push(fd);
    const info = addon().dmGetInfoRevA(fd, 2);
    expect(info.shmemSize).toBe(0x10000n);
    const req = await roundTrip(fd, REV_A, 2, 2);
    expect(req).toMatchObject({ dmId: 2, addr: base(2) + 4, op: 1, accessWidth: 4 });
    const m = Mapping.map(fd, info.shmemSize);
    m.unmap();
  });

  it('revB: /dev/bao creates a DM fd per id (EEXIST while open), type 0xA7 ioctls only', async () => {
    loadBaoSim({ abi: 'revB', ndms: 4, shmem_size: 0x10000 });
    expect(fs.existsSync('/dev/bao')).toBe(true);
    expect(fs.existsSync('/dev/bao-io-dispatcher')).toBe(false);
    const ctl = fs.openSync('/dev/bao', fs.constants.O_RDWR);
    fds.push(ctl);
    const dm = addon().createDm(ctl, 1, 0, 0x10000, 49);
    fds.push(dm);
    expect(fs.readlinkSync(`/proc/self/fd/${dm}`)).toBe('anon_inode:bao-dm1');
    expect(() => addon().createDm(ctl, 1, 0, 0x10000, 49)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    const info = addon().dmGetInfoRevB(dm);
    expect(info).toMatchObject({ id: 1, shmemSize: 0x10000n });
    const req = await roundTrip(dm, REV_B, 1, 7);
    expect(req).toMatchObject({ dmId: 1, addr: base(1) + 4, op: 1 });
    expect(() => addon().complete(dm, 0, 1, 0, 1, 0, 4, 1)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    fs.closeSync(dm);
    fds.splice(fds.indexOf(dm), 1);
    const again = addon().createDm(ctl, 1, 0, 0x10000, 49);
    fds.push(again);
    expect(again).toBeGreaterThanOrEqual(0);
  });
});
