// LISTEN_FDS / LISTEN_FDNAMES / LISTEN_PID as sd_listen_fds_with_names(3) reads them.
import { describe, expect, it } from 'vitest';

import { listenFds } from '../../../lib/vmm/restart/listen-fds.js';

describe('descriptors handed over at exec (LISTEN_FDS)', () => {
  it('start at fd 3, named in order, when LISTEN_PID is this process', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '42', LISTEN_FDS: '3', LISTEN_FDNAMES: 'dm0-irq:dm0-kick0:dm0-kick1' };
    expect(listenFds({ env, pid: 42 }).fds).toEqual([
      { fd: 3, name: 'dm0-irq' },
      { fd: 4, name: 'dm0-kick0' },
      { fd: 5, name: 'dm0-kick1' },
    ]);
  });

  it('are removed from the environment, so that a child does not take them for its own', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '42', LISTEN_FDS: '1', LISTEN_FDNAMES: 'dm0-irq', OTHER: 'x' };
    listenFds({ env, pid: 42 });
    expect(env).toEqual({ OTHER: 'x' });
  });

  it('are made close-on-exec', () => {
    const made: number[] = [];
    listenFds({ env: { LISTEN_PID: '7', LISTEN_FDS: '2' }, pid: 7, setCloexec: (fd) => made.push(fd) });
    expect(made).toEqual([3, 4]);
  });

  it("are named 'unknown' where LISTEN_FDNAMES gives no name", () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '7', LISTEN_FDS: '2', LISTEN_FDNAMES: 'dm0-irq' };
    expect(listenFds({ env, pid: 7 }).fds.map((f) => f.name)).toEqual(['dm0-irq', 'unknown']);
  });

  it('belong to another process when LISTEN_PID is not ours: none are used, and it is said why', () => {
    const r = listenFds({ env: { LISTEN_PID: '8', LISTEN_FDS: '2' }, pid: 7 });
    expect(r.fds).toEqual([]);
    expect(r.ignored).toMatch(/LISTEN_PID=8 is another process/);
  });

  it('are none without LISTEN_FDS, and none with a LISTEN_FDS that is not a count', () => {
    expect(listenFds({ env: {}, pid: 7 })).toEqual({ fds: [] });
    expect(listenFds({ env: { LISTEN_PID: '7', LISTEN_FDS: '-1' }, pid: 7 }).ignored).toMatch(/not a count/);
    expect(listenFds({ env: { LISTEN_FDS: '1' }, pid: 7 }).ignored).toMatch(/LISTEN_PID/);
  });

  it('are kept when one is not open (the fd store checks each by its name later)', () => {
    const r = listenFds({
      env: { LISTEN_PID: '7', LISTEN_FDS: '1' },
      pid: 7,
      setCloexec: () => {
        throw Object.assign(new Error('EBADF'), { code: 'EBADF' });
      },
    });
    expect(r.fds).toEqual([{ fd: 3, name: 'unknown' }]);
  });
});
