// DeviceModelHandle's ownership rules with real syscalls, over a plain file standing in for a
// DM fd (mmap works on it; every Bao ioctl answers ENOTTY): one owner, idempotent close
// cascading to the mapping, the attach loops and the eventfds it created; fd closed or kept
// open by policy. READ values are zero-extended to the access width before COMPLETE.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { DeviceModelHandle, takeKeptOpenDmFd, type IoRequest } from '../../lib/dispatcher/index.js';
import { loadAddon, type NativeAddon } from '../../lib/native.js';
import { IoOp, REVISION_ID } from '../../lib/uapi/index.js';
import { eventually, fdCount, threadCount } from './leaks.js';

let dir: string;
let file: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-dm-'));
  file = path.join(dir, 'dm');
  fs.writeFileSync(file, Buffer.alloc(8192));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function handle(addon: NativeAddon = loadAddon(), closePolicy: 'close' | 'keep-open' = 'close', keepKey = 'test:dm'): DeviceModelHandle {
  return new DeviceModelHandle({
    addon,
    revision: 'primary',
    revisionId: REVISION_ID.primary,
    fd: fs.openSync(file, 'r+'),
    info: { id: 3, shmemAddr: 0xd000_0000n, shmemSize: 8192n, irq: 52 },
    closePolicy,
    keepKey,
  });
}

describe('DeviceModelHandle', () => {
  it('maps the whole shared region once', async () => {
    const h = handle();
    const m = h.map();
    expect(m.length).toBe(8192);
    expect(h.map()).toBe(m);
    await h.close();
  });

  it('reports ENOTTY from the Bao ioctls of a non-Bao fd with the ioctl named', async () => {
    const h = handle();
    const e = h.createEventFd();
    expect(() => h.assignIrqfd(e)).toThrow(expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl(BAO_IOCTL_IRQFD)' }));
    expect(() => h.assignIoeventfd({ eventfd: e, addr: 0xa003e50, len: 4, datamatch: 0 })).toThrow(
      expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl(BAO_IOCTL_IOEVENTFD)' }),
    );
    expect(() => h.assignIoeventfd({ eventfd: e, addr: 0xa003e50, len: 3 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    await h.close();
  });

  it('closes idempotently, cascading to mapping, loops and owned eventfds, then the fd', async () => {
    const fds = fdCount();
    const threads = threadCount();
    const h = handle();
    const m = h.map();
    const e = h.createEventFd();
    const errors: Error[] = [];
    const loop = h.attach(() => {}, (err) => errors.push(err));
    const closing = h.close();
    expect(h.close()).toBe(closing);
    await closing;
    expect(m.closed).toBe(true);
    expect(e.closed).toBe(true);
    expect(loop.running).toBe(false);
    expect(h.closed).toBe(true);
    expect(() => h.fd).toThrow(expect.objectContaining({ code: 'HANDLE_CLOSED' }));
    expect(() => h.map()).toThrow(expect.objectContaining({ code: 'HANDLE_CLOSED' }));
    expect(fdCount()).toBe(fds);
    expect(await eventually(() => threadCount() === threads)).toBe(true);
  });

  it("keeps the DM fd open past close() when closing it would be fatal (OOT/v1), for reuse", async () => {
    const fds = fdCount();
    const h = handle(loadAddon(), 'keep-open', `test:${dir}`);
    await h.close();
    expect(fdCount()).toBe(fds + 1);
    const kept = takeKeptOpenDmFd(`test:${dir}`);
    expect(kept?.info.id).toBe(3);
    expect(takeKeptOpenDmFd(`test:${dir}`)).toBeUndefined();
    if (kept !== undefined) fs.closeSync(kept.fd); // test cleanup only: a plain file
  });

  describe('complete()', () => {
    const calls: unknown[][] = [];
    const recording = { ...loadAddon(), complete: (...args: unknown[]) => void calls.push(args) } as NativeAddon;
    const req = (op: number, accessWidth: number, value = 0n): IoRequest => ({
      dmId: 3,
      addr: 0xa003e70,
      op,
      value,
      accessWidth,
      requestId: 5,
    });

    it('echoes dm_id, addr, op and request_id and returns READ values zero-extended to the width', async () => {
      const h = handle(recording);
      calls.length = 0;
      h.complete(req(IoOp.Read, 1), 0x1ff);
      h.complete(req(IoOp.Read, 2), -1);
      h.complete(req(IoOp.Read, 4), 0x1_2345_6789);
      h.complete(req(IoOp.Read, 8), -1n);
      h.complete(req(IoOp.Read, 4), 0xffff_ffff_0000_0001n);
      expect(calls.map((c) => c[5])).toEqual([0xff, 0xffff, 0x2345_6789, 0xffff_ffff_ffff_ffffn, 1n]);
      expect(calls[0]?.slice(0, 5)).toEqual([h.fd, REVISION_ID.primary, 3, 0xa003e70, IoOp.Read]);
      expect(calls[0]?.slice(6)).toEqual([1, 5]);
      await h.close();
    });

    it('echoes a WRITE value unchanged, whatever value is given', async () => {
      const h = handle(recording);
      calls.length = 0;
      h.complete(req(IoOp.Write, 4, 0xdead_beef_cafen), 7);
      expect(calls[0]?.[5]).toBe(0xdead_beef_cafen);
      await h.close();
    });
  });
});
