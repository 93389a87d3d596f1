// The thread-pool engine on a real file: what the guest writes lands in the image at the right
// offset, what it reads comes from there, straight through views of guest memory.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { BlkDevice } from '../../../../lib/devices/blk/device.js';
import { ThreadPoolEngine } from '../../../../lib/devices/blk/engines/thread-pool.js';
import { MockDriver, type MockQueue } from '../../../../lib/virtio/testing/mock-driver.js';
import { addRead, addWrite, header, pattern, statusOf } from './helpers.js';
import { IoVector } from '../../../../lib/devices/blk/io-vector.js';

let dir: string;
let image: string;
let fd: number;
let dsyncFd: number;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-blk-'));
  image = path.join(dir, 'disk.img');
  fs.writeFileSync(image, Buffer.alloc(1 << 20));
  fd = fs.openSync(image, 'r+');
  dsyncFd = fs.openSync(image, fs.constants.O_RDWR | fs.constants.O_DSYNC);
});

afterEach(() => {
  fs.closeSync(fd);
  fs.closeSync(dsyncFd);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function waitUsed(q: MockQueue, count: number): Promise<{ id: number; len: number }[]> {
  const out: { id: number; len: number }[] = [];
  for (let i = 0; i < 500 && out.length < count; i += 1) {
    out.push(...q.used());
    if (out.length < count) await new Promise((r) => setTimeout(r, 2));
  }
  return out;
}

describe('ThreadPoolEngine behind the device', () => {
  it('writes guest data into the image and reads it back, many requests in flight', async () => {
    const engine = new ThreadPoolEngine({ fd, dsyncFd });
    const device = new BlkDevice({ engine, capacityBytes: 1 << 20, serial: 's', queueSize: 64 });
    const driver = MockDriver.create(device, { size: 2 << 20 }).init();
    const q = driver.queue(0);
    const writes = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => addWrite(q, i * 16, [pattern(4096, i), pattern(4096, i + 100)]));
    driver.kick(0);
    expect(device.metrics.maxInFlight).toBe(8);
    const done = await waitUsed(q, 8);
    expect(done.map((u) => u.id).sort()).toEqual([...writes].sort());
    const file = fs.readFileSync(image);
    for (let i = 0; i < 8; i += 1) {
      expect(file.subarray(i * 8192, i * 8192 + 4096).equals(pattern(4096, i))).toBe(true);
      expect(file.subarray(i * 8192 + 4096, i * 8192 + 8192).equals(pattern(4096, i + 100))).toBe(true);
    }
    const reads = [3, 5].map((i) => addRead(q, i * 16, 8192));
    driver.kick(0);
    const got = await waitUsed(q, 2);
    expect(got.every((u) => u.len === 8193)).toBe(true);
    expect(Buffer.from(q.buffers(reads[0]!)[1]!.subarray(0, 4096)).equals(pattern(4096, 3))).toBe(true);
    expect(Buffer.from(q.buffers(reads[1]!)[1]!.subarray(4096)).equals(pattern(4096, 105))).toBe(true);
    expect(statusOf(q, reads[1]!)).toBe(0);
    await device.close();
  });

  it('flushes with fdatasync and answers OK', async () => {
    const engine = new ThreadPoolEngine({ fd, dsyncFd });
    const device = new BlkDevice({ engine, capacityBytes: 1 << 20, serial: 's', queueSize: 16 });
    const driver = MockDriver.create(device).init();
    const q = driver.queue(0);
    addWrite(q, 0, pattern(512, 9));
    const flush = q.add([{ data: header(4) }, { length: 1, writable: true }]);
    driver.kick(0);
    await waitUsed(q, 2);
    expect(statusOf(q, flush)).toBe(0);
    expect(device.metrics.flushes).toBe(1);
  });

  it('reads past the end of a file that shrank as zeros, and reports a failed write as its errno', async () => {
    const engine = new ThreadPoolEngine({ fd });
    const mem = new Uint8Array(1024).fill(7);
    const views = [mem.subarray(0, 512), mem.subarray(512)];
    fs.ftruncateSync(fd, 700);
    fs.writeSync(fd, Buffer.alloc(700, 1), 0, 700, 0);
    await new Promise<void>((resolve, reject) => engine.read(IoVector.ofViews(views), 0, (err) => (err ? reject(err) : resolve())));
    expect(views[0]!.every((b) => b === 1)).toBe(true);
    expect(views[1]!.subarray(0, 188).every((b) => b === 1)).toBe(true);
    expect(views[1]!.subarray(188).every((b) => b === 0)).toBe(true);

    const ro = fs.openSync(image, 'r');
    const roEngine = new ThreadPoolEngine({ fd: ro });
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => roEngine.write(IoVector.ofViews([new Uint8Array(512)]), 0, false, resolve));
    fs.closeSync(ro);
    expect(err?.code).toBe('EBADF');
    expect(engine.canDiscard).toBe(false);
  });
});
