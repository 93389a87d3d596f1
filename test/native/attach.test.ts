// The ATTACH loop on fds that are not Bao device models: the ioctl fails with ENOTTY at once,
// which must reach JS as an error event (code/errno/syscall), end the thread and leak nothing.
// The blocking and signal-interrupt paths need a real dispatcher: see bao-device.test.ts.

import * as fs from 'node:fs';

import { describe, expect, it } from 'vitest';

import { AttachLoop, EventFd, type IoRequest } from '../../lib/dispatcher/index.js';
import { loadAddon } from '../../lib/native.js';
import { REVISION_ID } from '../../lib/uapi/index.js';
import { eventually, fdCount, threadCount } from './leaks.js';

describe('an attach loop on a non-Bao fd', () => {
  it('delivers ENOTTY as an error event with code, errno and syscall, and ends', async () => {
    const fd = fs.openSync('/dev/null', 'r+');
    const errors: Error[] = [];
    const batches: IoRequest[][] = [];
    const loop = new AttachLoop(fd, REVISION_ID.primary, 0, (r) => batches.push(r), (e) => errors.push(e));
    const end = await loop.ended;
    expect(end.reason).toBe('error');
    expect(end.error).toMatchObject({ code: 'ENOTTY', errno: -25, syscall: 'ioctl(BAO_IOCTL_IO_CLIENT_ATTACH)' });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBe(end.error);
    expect(batches).toEqual([]);
    expect(loop.running).toBe(false);
    fs.closeSync(fd);
  });

  it('ends its thread and keeps the fd count, for every revision', async () => {
    const e = EventFd.create();
    const threads = threadCount();
    const fds = fdCount();
    for (const rev of [REVISION_ID.primary, REVISION_ID.revA, REVISION_ID.revB]) {
      const loop = new AttachLoop(e.fd, rev, 0, () => {}, () => {});
      const end = await loop.ended;
      expect(end.error).toMatchObject({ code: 'ENOTTY' });
    }
    expect(await eventually(() => threadCount() === threads)).toBe(true);
    expect(fdCount()).toBe(fds);
    e.close();
  });

  it('does not leak over many start/end cycles', async () => {
    const fd = fs.openSync('/dev/null', 'r');
    const threads = threadCount();
    const fds = fdCount();
    for (let i = 0; i < 50; i++) {
      const loop = new AttachLoop(fd, REVISION_ID.primary, 0, () => {}, () => {});
      await loop.ended;
    }
    expect(await eventually(() => threadCount() === threads)).toBe(true);
    expect(fdCount()).toBe(fds);
    fs.closeSync(fd);
  });

  it('resolves stop() whether called before or after the end, idempotently', async () => {
    const fd = fs.openSync('/dev/null', 'r');
    const a = new AttachLoop(fd, REVISION_ID.primary, 0, () => {}, () => {});
    const s1 = a.stop();
    expect(a.stop()).toBe(s1);
    await s1;
    const end = await a.ended;
    expect(['stopped', 'error']).toContain(end.reason);
    const b = new AttachLoop(fd, REVISION_ID.primary, 0, () => {}, () => {});
    await b.ended;
    await b.stop();
    await b.stop();
    fs.closeSync(fd);
  });

  it('settles `ended` even when onError throws (the throw surfaces as uncaught)', async () => {
    const fd = fs.openSync('/dev/null', 'r');
    const uncaught: unknown[] = [];
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', (e) => uncaught.push(e));
    try {
      const loop = new AttachLoop(fd, REVISION_ID.primary, 0, () => {}, () => {
        throw new Error('handler bug');
      });
      expect((await loop.ended).reason).toBe('error');
      await eventually(() => uncaught.length > 0, 500);
      expect(uncaught).toEqual([expect.objectContaining({ message: 'handler bug' })]);
    } finally {
      process.removeAllListeners('uncaughtException');
      for (const l of listeners) process.on('uncaughtException', l);
      fs.closeSync(fd);
    }
  });

  it('checks its arguments natively', () => {
    const addon = loadAddon();
    expect(() => new addon.AttachLoop(-1, 0, () => {})).toThrow(RangeError);
    expect(() => new addon.AttachLoop(0, 7 as 0, () => {})).toThrow(/revision/);
  });
});
