// Conformance of the IPC shared-memory nodes (spec §7.2-7.4, v2): /dev/baoipc0 and /dev/baoipc1
// share one region with crossed channels; read/write at the file position, mmap bounds, and the
// peer notification of every write that starts inside the channel.

import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Mapping } from '../../lib/dispatcher/mapping.js';
import { guestSkipReason, ipcStats, loadBaoSim, unloadBaoSim } from './support/bao-sim.js';

describe.skipIf(guestSkipReason !== undefined)('IPC shared memory /dev/baoipc0 and /dev/baoipc1 (v2)', () => {
  let ipc0 = -1;
  let ipc1 = -1;
  let size = 0;
  let half = 0;

  beforeAll(() => {
    loadBaoSim({ ipc_size: 0x4000 });
    ipc0 = fs.openSync('/dev/baoipc0', fs.constants.O_RDWR);
    ipc1 = fs.openSync('/dev/baoipc1', fs.constants.O_RDWR);
    size = ipcStats().regionSize;
    half = size / 2;
  });
  afterAll(() => {
    for (const fd of [ipc0, ipc1]) if (fd >= 0) fs.closeSync(fd);
    unloadBaoSim();
  });

  it('are misc devices', () => {
    expect(fs.existsSync('/sys/class/misc/baoipc0')).toBe(true);
    expect(fs.existsSync('/sys/class/misc/baoipc1')).toBe(true);
    expect(size).toBe(0x4000);
  });

  it("what one side writes the other reads: baoipc0's write channel is baoipc1's read channel and vice versa", () => {
    expect(fs.writeSync(ipc0, Buffer.from('ping'), 0, 4, 0)).toBe(4);
    expect(fs.writeSync(ipc1, Buffer.from('pong'), 0, 4, 0)).toBe(4);
    const b = Buffer.alloc(4);
    expect(fs.readSync(ipc1, b, 0, 4, 0)).toBe(4);
    expect(b.toString()).toBe('ping');
    expect(fs.readSync(ipc0, b, 0, 4, 0)).toBe(4);
    expect(b.toString()).toBe('pong');
  });

  it('reads raw bytes up to the end of the read channel, then 0 (no string semantics)', () => {
    fs.writeSync(ipc0, Buffer.from([1, 0, 2]), 0, 3, 10);
    const b = Buffer.alloc(3);
    expect(fs.readSync(ipc1, b, 0, 3, 10)).toBe(3);
    expect([...b]).toEqual([1, 0, 2]);
    const big = Buffer.alloc(64);
    expect(fs.readSync(ipc1, big, 0, 64, half - 16)).toBe(16);
    expect(fs.readSync(ipc1, big, 0, 64, half)).toBe(0);
  });

  it('clamps writes to the write channel and returns 0 at or past its end', () => {
    const data = Buffer.alloc(64, 7);
    expect(fs.writeSync(ipc0, data, 0, 64, half - 8)).toBe(8);
    expect(fs.writeSync(ipc0, data, 0, 64, half)).toBe(0);
  });

  it('notifies the peer on every write that starts inside the channel, including empty ones, and not past its end', () => {
    const before = ipcStats();
    fs.writeSync(ipc0, Buffer.from('a'), 0, 1, 0);
    fs.writeSync(ipc0, Buffer.from('b'), 0, 1, 1);
    fs.writeSync(ipc1, Buffer.from('c'), 0, 1, 0);
    fs.writeSync(ipc0, Buffer.from('d'), 0, 1, half); // past the end: no notification
    const after = ipcStats();
    expect((after.notified[1] ?? 0) - (before.notified[1] ?? 0)).toBe(2);
    expect((after.notified[0] ?? 0) - (before.notified[0] ?? 0)).toBe(1);
  });

  it('advances the file position on sequential reads (pread/pwrite leave it alone)', () => {
    const fd = fs.openSync('/dev/baoipc1', fs.constants.O_RDWR);
    try {
      fs.writeSync(ipc0, Buffer.from('abcdef'), 0, 6, 0);
      const b = Buffer.alloc(3);
      fs.readSync(fd, b, 0, 3, null);
      expect(b.toString()).toBe('abc');
      fs.readSync(fd, b, 0, 3, null);
      expect(b.toString()).toBe('def');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('maps the whole region with offsets relative to its start, and refuses maps outside it (EINVAL)', () => {
    fs.writeSync(ipc0, Buffer.from('mapped'), 0, 6, 0);
    const whole = Mapping.map(ipc0, size);
    expect(Buffer.from(whole.view(half, 6)).toString()).toBe('mapped');
    whole.unmap();
    const tail = Mapping.map(ipc1, half, { offset: half });
    expect(Buffer.from(tail.view(0, 6)).toString()).toBe('mapped');
    tail.unmap();
    expect(() => Mapping.map(ipc0, 4096, { offset: size })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => Mapping.map(ipc0, size, { offset: 4096 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});
