// The io_uring engine on the real kernel: the addon's ring reads into and writes from ranges of
// an mmap'd region (as the guest's shared memory is), batches, completes through its eventfd,
// continues past a full submission queue, syncs, punches holes, and reports errno names; behind
// the block device it serves many requests in flight and drains them on close.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { BlkDevice } from '../../lib/devices/blk/device.js';
import { IoUringEngine } from '../../lib/devices/blk/engines/io-uring.js';
import { IoVector } from '../../lib/devices/blk/io-vector.js';
import { loadAddon } from '../../lib/native.js';
import { defaultBlockHost } from '../../lib/vmm/block-host.js';
import { MockDriver } from '../../lib/virtio/testing/mock-driver.js';
import { addRead, addWrite, pattern } from '../unit/devices/blk/helpers.js';

const addon = loadAddon();
let dir: string;
let image: string;
let fd: number;
let shmFd: number;
let region: ArrayBuffer;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-uring-'));
  image = path.join(dir, 'disk.img');
  fs.writeFileSync(image, Buffer.alloc(1 << 20, 0xee));
  fd = fs.openSync(image, 'r+');
  const shm = path.join(dir, 'shm');
  fs.writeFileSync(shm, Buffer.alloc(1 << 20));
  shmFd = fs.openSync(shm, 'r+');
  region = addon.mmap(shmFd, 1 << 20, 0, addon.constants.PROT_READ | addon.constants.PROT_WRITE);
});

afterEach(() => {
  addon.munmap(region);
  fs.closeSync(shmFd);
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

function engine(entries = 64, target = fd): IoUringEngine {
  const { ring, watch } = defaultBlockHost().openUring!(entries);
  return new IoUringEngine({ ring, watch, fd: target, canFallocate: true });
}

const run = (f: (done: (err: NodeJS.ErrnoException | null) => void) => void): Promise<void> =>
  new Promise((resolve, reject) => f((err) => (err ? reject(err) : resolve())));

// Durable writes go to the host's own disk (fdatasync per write): on a busy machine a test took
// longer than vitest's 5 s default once, with nothing wrong.
describe('IoUringEngine', { timeout: 30_000 }, () => {
  it('writes from and reads into ranges of a mapping, scatter-gather, at byte offsets', async () => {
    const e = engine();
    const mem = new Uint8Array(region);
    mem.set(pattern(4096, 1), 0);
    mem.set(pattern(512, 2), 8192);
    await run((done) => e.write(IoVector.ofViews([mem.subarray(0, 4096), mem.subarray(8192, 8704)]), 4608, false, done));
    const file = fs.readFileSync(image);
    expect(file.subarray(4608, 8704).equals(pattern(4096, 1))).toBe(true);
    expect(file.subarray(8704, 9216).equals(pattern(512, 2))).toBe(true);
    await run((done) => e.read(IoVector.ofViews([mem.subarray(65536, 65536 + 4608)]), 4096, done));
    expect(mem.subarray(65536, 65536 + 512).every((b) => b === 0xee)).toBe(true);
    expect(Buffer.from(mem.subarray(65536 + 512, 65536 + 4608)).equals(pattern(4096, 1))).toBe(true);
    await run((done) => e.flush(done));
    await e.close();
  });

  it('queues (offset, length) spans of a Uint8Array region, 1 to IOV_MAX of them, each inside it, and queues nothing when refused', async () => {
    const { ring } = defaultBlockHost().openUring!(8);
    try {
      const mem = new Uint8Array(region);
      const spans = (...pairs: number[]) => new Float64Array(pairs);
      expect(() => ring.readv(fd, new Uint16Array(4) as never, spans(0, 512), 1, 0, 1)).toThrow(TypeError);
      expect(() => ring.readv(fd, mem, [0, 512] as never, 1, 0, 2)).toThrow(TypeError);
      expect(() => ring.writev(fd, mem, new Int32Array(2) as never, 1, 0, 0, 3)).toThrow(TypeError);
      expect(() => ring.readv(fd, mem, spans(), 0, 0, 4)).toThrow(RangeError);
      expect(() => ring.readv(fd, mem, new Float64Array(2 * 1025), 1025, 0, 5)).toThrow(RangeError);
      expect(() => ring.readv(fd, mem, spans(0, 512), 2, 0, 5)).toThrow(RangeError); // count past the spans
      // A span past the region's end, one that wraps, and ones that are not whole numbers.
      expect(() => ring.readv(fd, mem, spans((1 << 20) - 256, 512), 1, 0, 5)).toThrow(/outside the region/);
      expect(() => ring.readv(fd, mem, spans(512, 2 ** 64), 1, 0, 5)).toThrow(/outside the region/);
      expect(() => ring.readv(fd, mem, spans(0.5, 512), 1, 0, 5)).toThrow(/outside the region/);
      expect(() => ring.readv(fd, mem, spans(-512, 512), 1, 0, 5)).toThrow(/outside the region/);
      expect(() => ring.readv(fd, mem, spans(Number.NaN, 512), 1, 0, 5)).toThrow(/outside the region/);
      // The spans are relative to the region view given, and bounded by it, not by its buffer.
      expect(() => ring.readv(fd, mem.subarray(0, 1024), spans(1000, 512), 1, 0, 5)).toThrow(/outside the region/);
      expect(ring.submit()).toBe(0);
      // A span at an offset into the region is read into at that offset (a Uint32Array works too).
      expect(ring.readv(fd, mem.subarray(50), new Uint32Array([50, 512]) as never, 1, 0, 6)).toBe(true);
      expect(ring.submit()).toBe(1);
      const out = new Int32Array(2);
      let n = 0;
      for (let i = 0; i < 200 && n === 0; i += 1) {
        n = ring.reap(out);
        if (n === 0) await new Promise((r) => setTimeout(r, 5));
      }
      expect([n, ...out]).toEqual([1, 6, 512]);
      expect(mem[99]).toBe(0);
      expect(mem.subarray(100, 612).every((b) => b === 0xee)).toBe(true);
      expect(mem[612]).toBe(0);
    } finally {
      ring.close();
    }
  });

  it('takes tags 1..2^31-1 and reaps into the caller\'s Int32Array, as many completions as it holds, the rest at the next call', async () => {
    const { ring } = defaultBlockHost().openUring!(8);
    try {
      const mem = new Uint8Array(region);
      const first = new Float64Array([0, 512]);
      expect(() => ring.readv(fd, mem, first, 1, 0, 0)).toThrow(RangeError);
      expect(() => ring.fsync(fd, 2 ** 31)).toThrow(RangeError);
      expect(() => ring.reap(new Int32Array(1))).toThrow(RangeError);
      expect(() => ring.reap([0, 0] as never)).toThrow(TypeError);
      expect(() => ring.reap(new Uint32Array(2) as never)).toThrow(TypeError);
      for (const tag of [7, 8, 2 ** 31 - 1]) expect(ring.readv(fd, mem, first, 1, 0, tag)).toBe(true);
      expect(ring.submit()).toBe(3);
      const out = new Int32Array(4);
      const seen: number[] = [];
      for (let i = 0; i < 200 && seen.length < 6; i += 1) {
        const n = ring.reap(out);
        expect(n).toBeLessThanOrEqual(2);
        seen.push(...out.subarray(0, 2 * n));
        if (n < 2) await new Promise((r) => setTimeout(r, 5));
      }
      const pairs = [0, 2, 4].map((i) => [seen[i], seen[i + 1]]).sort((a, b) => a[0]! - b[0]!);
      expect(pairs).toEqual([[7, 512], [8, 512], [2 ** 31 - 1, 512]]);
      // A reaped tag is free again.
      expect(ring.readv(fd, mem, first, 1, 0, 7)).toBe(true);
    } finally {
      ring.close();
    }
  });

  it('keeps going when more requests arrive than the submission queue holds', async () => {
    const e = engine(4);
    const mem = new Uint8Array(region);
    const writes = Array.from({ length: 40 }, (_, i) => {
      mem.set(pattern(512, i), i * 512);
      return run((done) => e.write(IoVector.ofViews([mem.subarray(i * 512, (i + 1) * 512)]), i * 512, i % 2 === 0, done));
    });
    await Promise.all(writes);
    const file = fs.readFileSync(image);
    for (let i = 0; i < 40; i += 1) expect(file.subarray(i * 512, (i + 1) * 512).equals(pattern(512, i))).toBe(true);
    await e.close();
  });

  it('reads past the end as zeros, punches holes, and names errors by errno', async () => {
    const e = engine();
    const mem = new Uint8Array(region);
    mem.fill(7, 0, 1024);
    await run((done) => e.read(IoVector.ofViews([mem.subarray(0, 1024)]), (1 << 20) - 512, done));
    expect(mem.subarray(0, 512).every((b) => b === 0xee)).toBe(true);
    expect(mem.subarray(512, 1024).every((b) => b === 0)).toBe(true);
    fs.fsyncSync(fd);
    const before = fs.fstatSync(fd).blocks;
    await run((done) => e.discard(0, 512 * 1024, done));
    expect(fs.fstatSync(fd).blocks).toBeLessThan(before);
    await run((done) => e.writeZeroes(600 * 1024, 4096, false, done));
    expect(fs.readFileSync(image).subarray(600 * 1024, 600 * 1024 + 4096).every((b) => b === 0)).toBe(true);
    await e.close();

    const ro = fs.openSync(image, 'r');
    const roEngine = engine(8, ro);
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => roEngine.write(IoVector.ofViews([mem.subarray(0, 512)]), 0, false, resolve));
    expect(err?.code).toBe('EBADF');
    await roEngine.close();
    fs.closeSync(ro);
  });

  it('serves the block device: many requests in flight, data round trip, drained on close', async () => {
    const e = engine(128);
    // No time budget: the 16 chains of one kick are one run however slowly a busy machine runs them.
    const device = new BlkDevice({ engine: e, capacityBytes: 1 << 20, serial: 's', queueSize: 64, budget: { timeMs: Infinity } });
    expect(device.metrics.engineIoUring).toBe(1);
    const driver = MockDriver.create(device, { size: 2 << 20 }).init();
    const q = driver.queue(0);
    const writes = Array.from({ length: 16 }, (_, i) => addWrite(q, i * 8, pattern(4096, i + 7)));
    driver.kick(0);
    expect(device.metrics.maxInFlight).toBe(16);
    const used: number[] = [];
    for (let i = 0; i < 500 && used.length < 16; i += 1) {
      used.push(...q.used().map((u) => u.id));
      if (used.length < 16) await new Promise((r) => setTimeout(r, 2));
    }
    expect(used.sort()).toEqual([...writes].sort());
    const read = addRead(q, 5 * 8, 4096);
    driver.kick(0);
    await device.close(); // waits for the read; its completion is not written into the ring
    expect(device.metrics.completionsAfterReset).toBe(1);
    expect(Buffer.from(q.buffers(read)[1]!).equals(pattern(4096, 12))).toBe(true);
  });
});
