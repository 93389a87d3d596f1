// Every failed syscall reaches JS as an Error shaped like Node's fs errors: code (libuv errno
// name), errno (Node's negative number), syscall (naming the ioctl), path when there is one.

import * as fs from 'node:fs';

import { describe, expect, it } from 'vitest';

import { EventFd } from '../../lib/dispatcher/index.js';
import { IpcDevice } from '../../lib/ipc/index.js';
import { isErrnoError, loadAddon } from '../../lib/native.js';
import { REVISION_ID } from '../../lib/uapi/index.js';

const addon = loadAddon();

function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('ioctls on a fd that is not a Bao device', () => {
  const fd = fs.openSync('/dev/null', 'r+');
  const cases: [string, () => unknown][] = [
    ['ioctl(BAO_IOCTL_DM_GET_INFO)', () => addon.dmGetInfo(fd, 0)],
    ['ioctl(BAO_IOCTL_DM_GET_INFO)', () => addon.dmGetInfoRevA(fd, 0)],
    ['ioctl(BAO_IOCTL_DM_GET_INFO)', () => addon.dmGetInfoRevB(fd)],
    ['ioctl(BAO_IOCTL_CREATE_DM)', () => addon.createDm(fd, 0, 0x1000n, 0x1000n, 40)],
    ['ioctl(BAO_IOCTL_IO_REQUEST_COMPLETE)', () => addon.complete(fd, REVISION_ID.primary, 0, 0, 1, 0n, 4, 0)],
    ['ioctl(BAO_IOCTL_IOEVENTFD)', () => addon.ioeventfd(fd, REVISION_ID.revB, 0, 2, 0x50, 4, 1)],
    ['ioctl(BAO_IOCTL_IRQFD)', () => addon.irqfd(fd, REVISION_ID.primary, 0, 0)],
  ];
  for (const [syscall, call] of cases) {
    it(`raise ENOTTY from ${syscall}`, () => {
      const e = caught(call);
      expect(e).toBeInstanceOf(Error);
      expect(e).toMatchObject({ code: 'ENOTTY', errno: -25, syscall });
      expect(e.message).toBe(`ENOTTY: inappropriate ioctl for device, ${syscall}`);
      expect(isErrnoError(e)).toBe(true);
    });
  }
});

describe('errno names match what Node fs reports', () => {
  it('a closed fd is EBADF, as fs.fstatSync says', () => {
    const fd = fs.openSync('/dev/null', 'r');
    fs.closeSync(fd);
    const ours = caught(() => addon.irqfd(fd, REVISION_ID.primary, 0, 0));
    const theirs = caught(() => fs.fstatSync(fd));
    expect(ours).toMatchObject({ code: 'EBADF', errno: (theirs as NodeJS.ErrnoException).errno });
  });

  it('an invalid eventfd flag is EINVAL with syscall eventfd', () => {
    expect(caught(() => addon.eventfd(0, 0x7fffffff))).toMatchObject({ code: 'EINVAL', errno: -22, syscall: 'eventfd' });
  });

  it('a missing IPC node is IPC_NOT_FOUND with the fs ENOENT (path included) as cause', () => {
    const e = caught(() => IpcDevice.open(7, { devRoot: '/nonexistent-dev' }));
    expect(e).toMatchObject({ code: 'IPC_NOT_FOUND', path: '/nonexistent-dev/baoipc7' });
    expect(e.cause).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'open', path: '/nonexistent-dev/baoipc7' });
  });

  it('reading an eventfd through fs after close is a typed HANDLE_CLOSED, not EBADF on a reused fd', () => {
    const e = EventFd.create();
    e.close();
    expect(caught(() => e.read())).toMatchObject({ code: 'HANDLE_CLOSED' });
  });
});

describe('argument checks at the native entry', () => {
  it('refuse non-numbers, negative fds, out-of-range u32 and u64 values', () => {
    expect(() => addon.dmGetInfo('3' as unknown as number, 0)).toThrow(TypeError);
    expect(() => addon.dmGetInfo(-1, 0)).toThrow(RangeError);
    expect(() => addon.dmGetInfo(0, 2 ** 32)).toThrow(RangeError);
    expect(() => addon.createDm(0, 0, -1, 1, 1)).toThrow(RangeError);
    expect(() => addon.createDm(0, 0, 2n ** 64n, 1, 1)).toThrow(RangeError);
    expect(() => addon.complete(0, 3 as 0, 0, 0, 0, 0, 4, 0)).toThrow(/revision/);
  });
});
