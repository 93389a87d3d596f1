// The block device's host syscalls through the addon, on real files: the OFD lock conflicts
// between two opens (even in one process, as between two daemons), read locks share, fallocate
// punches holes (the image's allocated blocks drop) and zeroes ranges, and a regular file is no
// block device (ENOTTY, by name).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { openBacking } from '../../lib/devices/blk/backing.js';
import { ThreadPoolEngine } from '../../lib/devices/blk/engines/thread-pool.js';
import { loadAddon } from '../../lib/native.js';
import { defaultBlockHost } from '../../lib/vmm/block-host.js';

let dir: string;
let image: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-blkhost-'));
  image = path.join(dir, 'disk.img');
  fs.writeFileSync(image, Buffer.alloc(1 << 20, 0xab));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const addon = loadAddon();

describe('block host syscalls', () => {
  it('an exclusive lock refuses a second one and a shared one; shared locks coexist', () => {
    const a = fs.openSync(image, 'r+');
    const b = fs.openSync(image, 'r+');
    try {
      addon.lockFile(a, true);
      expect(() => addon.lockFile(b, true)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^(EAGAIN|EACCES)$/), syscall: 'fcntl(F_OFD_SETLK)' }));
      expect(() => addon.lockFile(b, false)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^(EAGAIN|EACCES)$/) }));
      fs.closeSync(a);
      addon.lockFile(b, false);
      const c = fs.openSync(image, 'r');
      addon.lockFile(c, false);
      fs.closeSync(c);
    } finally {
      fs.closeSync(b);
      try {
        fs.closeSync(a);
      } catch {
        // already closed
      }
    }
  });

  it('openBacking refuses an image another open holds, with BLK_BACKING_LOCKED', async () => {
    const host = defaultBlockHost();
    const first = await openBacking({ path: image, readOnly: false, host });
    expect(first.locked).toBe(true);
    expect(first.sizeBytes).toBe(1 << 20);
    await expect(openBacking({ path: image, readOnly: true, host })).rejects.toMatchObject({ code: 'BLK_BACKING_LOCKED', field: 'file_path' });
    await first.close();
    const second = await openBacking({ path: image, readOnly: true, host });
    await second.close();
  });

  it('punches holes (the allocated size drops) and zeroes ranges through the thread-pool engine', async () => {
    const fd = fs.openSync(image, 'r+');
    fs.fsyncSync(fd);
    const before = fs.fstatSync(fd).blocks;
    const engine = new ThreadPoolEngine({ fd, fallocate: defaultBlockHost().fallocate });
    const run = (f: (done: (err: NodeJS.ErrnoException | null) => void) => void) =>
      new Promise<void>((resolve, reject) => f((err) => (err ? reject(err) : resolve())));
    await run((done) => engine.discard(0, 512 * 1024, done));
    const after = fs.fstatSync(fd).blocks;
    expect(after).toBeLessThan(before);
    await run((done) => engine.writeZeroes(600 * 1024, 4096, false, done));
    const bytes = fs.readFileSync(image);
    expect(bytes.subarray(0, 512 * 1024).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(600 * 1024, 600 * 1024 + 4096).every((b) => b === 0)).toBe(true);
    expect(bytes[600 * 1024 - 1]).toBe(0xab);
    expect(bytes[600 * 1024 + 4096]).toBe(0xab);
    expect(fs.fstatSync(fd).size).toBe(1 << 20);
    fs.closeSync(fd);
  });

  it('reports a regular file as no block device (ENOTTY) and bad fallocate arguments as TypeErrors', () => {
    const fd = fs.openSync(image, 'r');
    try {
      expect(() => addon.blockDeviceSize(fd)).toThrow(expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl(BLKGETSIZE64)' }));
      expect(() => addon.fallocate(fd, 'shred' as 'punch-hole', 0, 1, () => {})).toThrow(TypeError);
    } finally {
      fs.closeSync(fd);
    }
  });
});
