// Conformance of /dev/bao-io-dispatcher and the DM fds (spec §2.1, §3.4 DM_GET_INFO, §3.5 mmap),
// driven through the addon against the bao-sim module in the guest.

import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Mapping } from '../../lib/dispatcher/mapping.js';
import { addon, openDispatcher, PRIMARY } from './support/backend.js';
import { dmInfo, guestSkipReason, loadBaoSim, unloadBaoSim } from './support/bao-sim.js';

describe.skipIf(guestSkipReason !== undefined)('the I/O dispatcher node and device-model fds (v2)', () => {
  let disp = -1;
  const opened: number[] = [];
  const getInfo = (id: number) => {
    const got = addon().dmGetInfo(disp, id);
    if (got.fd >= 0) opened.push(got.fd);
    return got;
  };

  beforeAll(() => {
    loadBaoSim({ ndms: 8, shmem_size: 0x10000 });
    disp = openDispatcher();
  });
  afterAll(() => {
    for (const fd of opened) fs.closeSync(fd);
    if (disp >= 0) fs.closeSync(disp);
    unloadBaoSim();
  });

  it('exists as a misc device named bao-io-dispatcher, root-only', () => {
    expect(fs.existsSync('/sys/class/misc/bao-io-dispatcher')).toBe(true);
    expect(fs.statSync('/dev/bao-io-dispatcher').mode & 0o777).toBe(0o600);
  });

  it('DM_GET_INFO reports the shared region and interrupt of the device model', () => {
    const got = getInfo(2);
    const info = dmInfo(2);
    expect(got.id).toBe(2);
    expect(got.shmemAddr).toBe(BigInt(info.shmem_addr ?? 'x'));
    expect(got.shmemSize).toBe(0x10000n);
    expect(got.irq).toBe(Number(info.irq));
  });

  it('DM_GET_INFO installs an anonymous-inode fd named bao-dm<N>, read-write and close-on-exec', () => {
    const got = getInfo(5);
    expect(fs.readlinkSync(`/proc/self/fd/${got.fd}`)).toBe('anon_inode:bao-dm5');
    const flags = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${got.fd}`, 'utf8'))?.[1];
    const f = parseInt(flags ?? '0', 8);
    expect(f & 0o2000000).toBe(0o2000000); // O_CLOEXEC
    expect(f & 3).toBe(2); // O_RDWR
  });

  it('DM_GET_INFO on an unknown id fails with ENOENT', () => {
    expect(() => getInfo(8)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => getInfo(1000)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('DM ioctls on the dispatcher node fail with ENOTTY', () => {
    const a = addon();
    expect(() => a.complete(disp, PRIMARY, 0, 0, 0, 0, 4, 1)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    expect(() => a.irqfd(disp, PRIMARY, 0, 0)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    expect(() => a.ioeventfd(disp, PRIMARY, 0, 0, 0, 4, 0)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
  });

  it('DM_GET_INFO on a DM fd, and ioctls of another type (revB 0xA7), fail with ENOTTY', () => {
    const got = getInfo(1);
    expect(() => addon().dmGetInfo(got.fd, 1)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    expect(() => addon().createDm(disp, 1, 0, 0x1000, 5)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    expect(() => addon().dmGetInfoRevB(got.fd)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
  });

  it('a DM fd maps the whole shared region at offset 0, and every fd of a DM sees the same bytes', () => {
    const a = getInfo(3);
    const b = getInfo(3);
    const m1 = Mapping.map(a.fd, a.shmemSize);
    const m2 = Mapping.map(b.fd, b.shmemSize);
    m1.bytes[0] = 0x5a;
    m1.bytes[m1.length - 1] = 0xa5;
    expect(m2.bytes[0]).toBe(0x5a);
    expect(m2.bytes[m2.length - 1]).toBe(0xa5);
    m1.unmap();
    m2.unmap();
  });

  it('mmap accepts any length up to the region size and refuses longer ones and non-zero offsets (EINVAL)', () => {
    const got = getInfo(4);
    const small = Mapping.map(got.fd, 4096);
    expect(small.length).toBe(4096);
    small.unmap();
    expect(() => Mapping.map(got.fd, Number(got.shmemSize) + 4096)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => Mapping.map(got.fd, 4096, { offset: 4096 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('the DM fd is not readable or writable (no read/write file operations)', () => {
    const got = getInfo(6);
    expect(() => fs.readSync(got.fd, Buffer.alloc(8))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('closing a DM fd does not destroy the device model (v2: a reference drop)', () => {
    const first = addon().dmGetInfo(disp, 7);
    fs.closeSync(first.fd);
    const again = getInfo(7);
    expect(again.fd).toBeGreaterThanOrEqual(0);
    expect(again.shmemSize).toBe(first.shmemSize);
  });
});
