// WRITE_ZEROES on tmpfs, which has no FALLOC_FL_ZERO_RANGE (EOPNOTSUPP): through the block
// device and each engine, a request without UNMAP is served by writing zeros (the blocks stay
// allocated), one with UNMAP by punching a hole (they are freed); both read back as zeros, the
// bytes around are untouched, the guest sees OK, and only the first request asks for ZERO_RANGE.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';

import { VIRTIO_BLK_S_OK } from '../../lib/devices/blk/config.js';
import { BlkDevice } from '../../lib/devices/blk/device.js';
import type { BlkEngine } from '../../lib/devices/blk/engine.js';
import { IoUringEngine } from '../../lib/devices/blk/engines/io-uring.js';
import { ThreadPoolEngine } from '../../lib/devices/blk/engines/thread-pool.js';
import { defaultBlockHost } from '../../lib/vmm/block-host.js';
import { MockDriver, type MockQueue } from '../../lib/virtio/testing/mock-driver.js';
import { header, statusOf } from '../unit/devices/blk/helpers.js';
import { skipBecause } from './skip.js';

const TMPFS_MAGIC = 0x01021994;
const SHM = '/dev/shm';
const SIZE = 4 << 20;
let dir: string | undefined;
let image: string;
let fd: number;

function tmpfsHere(): string | undefined {
  try {
    return fs.statfsSync(SHM).type === TMPFS_MAGIC ? undefined : `${SHM} is not tmpfs`;
  } catch (err) {
    return `${SHM}: ${(err as Error).message}`;
  }
}

beforeEach(() => {
  if (tmpfsHere() !== undefined) return;
  dir = fs.mkdtempSync(path.join(SHM, 'nb-blk-zeroes-'));
  image = path.join(dir, 'disk.img');
  fs.writeFileSync(image, Buffer.alloc(SIZE, 0xcd));
  fd = fs.openSync(image, 'r+');
});

afterEach(() => {
  if (dir === undefined) return;
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function segment(sector: number, sectors: number, flags: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, sectors, true);
  v.setUint32(12, flags, true);
  return b;
}

async function waitUsed(q: MockQueue, count: number): Promise<{ id: number; len: number }[]> {
  const out: { id: number; len: number }[] = [];
  for (let i = 0; i < 3000 && out.length < count; i += 1) {
    out.push(...q.used());
    if (out.length < count) await new Promise((r) => setTimeout(r, 5));
  }
  return out;
}

const engines: [string, () => BlkEngine | string][] = [
  ['thread-pool', () => new ThreadPoolEngine({ fd, fallocate: defaultBlockHost().fallocate })],
  [
    'io_uring',
    () => {
      try {
        const { ring, watch } = defaultBlockHost().openUring!(64);
        return new IoUringEngine({ ring, watch, fd, canFallocate: true });
      } catch (err) {
        return `io_uring unavailable: ${(err as Error).message}`;
      }
    },
  ],
];

describe('WRITE_ZEROES on tmpfs (no ZERO_RANGE)', () => {
  for (const [name, make] of engines) {
    it(`${name}: zeros written without UNMAP, a hole punched with it; both read as zeros`, async (ctx: TestContext) => {
      const why = tmpfsHere();
      if (why !== undefined) skipBecause(ctx, why);
      const engine = make();
      if (typeof engine === 'string') skipBecause(ctx, engine);
      const device = new BlkDevice({ engine, capacityBytes: SIZE, serial: 'z', queueSize: 64, discard: true });
      const driver = MockDriver.create(device, { size: 2 << 20 }).init();
      const q = driver.queue(0);
      const blocksBefore = fs.fstatSync(fd).blocks;
      // 1.5 MiB without UNMAP (more than one zero chunk), then 8 KiB more, then 1 MiB with UNMAP.
      const a = q.add([{ data: header(13) }, { data: segment(2048, 3072, 0) }, { length: 1, writable: true }]);
      driver.kick(0);
      expect(await waitUsed(q, 1)).toEqual([{ id: a, len: 1 }]);
      const b = q.add([{ data: header(13) }, { data: segment(6144, 16, 0) }, { length: 1, writable: true }]);
      driver.kick(0);
      expect(await waitUsed(q, 1)).toEqual([{ id: b, len: 1 }]);
      expect(fs.fstatSync(fd).blocks).toBe(blocksBefore); // written, not deallocated
      const c = q.add([{ data: header(13) }, { data: segment(0, 2048, 1) }, { length: 1, writable: true }]);
      driver.kick(0);
      expect(await waitUsed(q, 1)).toEqual([{ id: c, len: 1 }]);
      expect([a, b, c].map((h) => statusOf(q, h))).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
      expect(fs.fstatSync(fd).blocks).toBeLessThan(blocksBefore); // the hole
      // Two ranges fell back to writing zeros (ZERO_RANGE asked only once); the hole needed none.
      expect(device.metrics.writeZeroesFallbacks).toBe(2);
      expect(device.metrics.ioErrors).toBe(0);
      const bytes = fs.readFileSync(image);
      expect(bytes.subarray(0, 1 << 20).every((x) => x === 0)).toBe(true);
      expect(bytes.subarray(1 << 20, 2560 * 1024).every((x) => x === 0)).toBe(true);
      expect(bytes.subarray(2560 * 1024, 3 << 20).every((x) => x === 0xcd)).toBe(true);
      expect(bytes.subarray(3 << 20, (3 << 20) + 8192).every((x) => x === 0)).toBe(true);
      expect(bytes[(3 << 20) + 8192]).toBe(0xcd);
      expect(fs.fstatSync(fd).size).toBe(SIZE);
      await device.close();
    });
  }
});
