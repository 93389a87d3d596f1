// The io_uring engine's submission pacing, against a ring double: requests queued in one turn go
// to the kernel about `submitBytes` per io_uring_enter, what the kernel finished inside the enter
// (a read served from the page cache) completes before the next enter, and the next enter waits
// for a later turn, so a driver gets large requests back one by one instead of as a batch. Behind
// the block device and the frontend-driver double: the first of four 1 MiB reads is in the used
// ring, with its interrupt, before the second is submitted.

import { describe, expect, it } from 'vitest';

import { BlkDevice } from '../../../../lib/devices/blk/device.js';
import { IoUringEngine, type UringRing } from '../../../../lib/devices/blk/engines/io-uring.js';
import { RING_EVENT_IDX } from '../../../../lib/virtio/features.js';
import { MockDriver, type MockQueue } from '../../../../lib/virtio/testing/mock-driver.js';
import { IoVector } from '../../../../lib/devices/blk/io-vector.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A read of `length` bytes at `sector` as virtio_blk frames it: header, data, status. */
function addRead(q: MockQueue, sector: number, length: number): number {
  const header = new Uint8Array(16);
  new DataView(header.buffer).setBigUint64(8, BigInt(sector), true); // type 0: IN
  return q.add([{ data: header }, { length, writable: true }, { length: 1, writable: true }]);
}

/** The status byte of a submitted chain (the last byte of its last buffer). */
function statusOf(q: MockQueue, head: number): number {
  const buffers = q.buffers(head);
  const last = buffers[buffers.length - 1]!;
  return last[last.length - 1]!;
}

/**
 * A ring whose kernel either finishes every request inside submit() (`inline`, as a cached
 * buffered read does) or leaves them to the test (`finishAll`). `log` records the enters.
 */
class FakeRing implements UringRing {
  readonly eventfd = 99;
  readonly entries: number;
  readonly log: string[] = [];
  /** The requests of each io_uring_enter, numbered in the order they were queued (1, 2, ...). */
  readonly enters: number[][] = [];
  /** The tags of each io_uring_enter (the engine reuses the tags of finished requests). */
  readonly enterTags: number[][] = [];
  private queued = 0;
  private prepared: { seq: number; tag: number; bytes: number; views: Uint8Array[] }[] = [];
  private running: { seq: number; tag: number; bytes: number; views: Uint8Array[] }[] = [];
  private cq: number[] = [];
  onReadable: (() => void) | undefined;

  constructor(
    private readonly inline: boolean,
    entries = 64,
  ) {
    this.entries = entries;
  }

  readv(_fd: number, region: Uint8Array, spans: Float64Array, count: number, _offset: number, tag: number): boolean {
    return this.prep(new IoVector(region, spans.slice(0, 2 * count), 0).views(), tag);
  }

  writev(_fd: number, region: Uint8Array, spans: Float64Array, count: number, _offset: number, _flags: number, tag: number): boolean {
    return this.prep(new IoVector(region, spans.slice(0, 2 * count), 0).views(), tag);
  }

  fsync(_fd: number, tag: number): boolean {
    return this.prep([], tag);
  }

  fallocate(_fd: number, _mode: number, _offset: number, _length: number, tag: number): boolean {
    return this.prep([], tag);
  }

  /** The next submit() fails (EBUSY) with its entries left in the ring for a later enter. */
  refuseNext = false;

  submit(): number {
    if (this.refuseNext) {
      this.refuseNext = false;
      throw Object.assign(new Error('EBUSY: io_uring_enter failed'), { code: 'EBUSY' });
    }
    const batch = this.prepared;
    this.prepared = [];
    this.enters.push(batch.map((p) => p.seq));
    this.enterTags.push(batch.map((p) => p.tag));
    this.log.push(`enter ${batch.map((p) => p.seq).join(',')}`);
    if (this.inline) {
      for (const p of batch) this.finish(p);
    } else {
      this.running.push(...batch);
    }
    return batch.length;
  }

  reap(out: Int32Array): number {
    const n = Math.min(out.length >>> 1, this.cq.length >>> 1);
    out.set(this.cq.slice(0, 2 * n));
    this.cq = this.cq.slice(2 * n);
    return n;
  }

  close(): void {}

  /** The kernel finishes everything running (asynchronously: the eventfd fires). */
  finishAll(): void {
    const batch = this.running;
    this.running = [];
    for (const p of batch) this.finish(p);
    this.onReadable?.();
  }

  private prep(views: Uint8Array[], tag: number): boolean {
    if (this.prepared.length >= this.entries) return false;
    this.queued += 1;
    this.prepared.push({ seq: this.queued, tag, bytes: views.reduce((n, v) => n + v.length, 0), views });
    return true;
  }

  private finish(p: { tag: number; bytes: number; views: Uint8Array[] }): void {
    for (const v of p.views) v.fill(0x3c);
    this.cq.push(p.tag, p.bytes);
  }
}

/** A deferral the test runs by hand (the engine's setImmediate). */
class ManualDefer {
  private queued: (() => void)[] = [];
  readonly defer = (fn: () => void): void => {
    this.queued.push(fn);
  };

  get pending(): number {
    return this.queued.length;
  }

  run(): void {
    const fns = this.queued;
    this.queued = [];
    for (const fn of fns) fn();
  }
}

function engine(ring: FakeRing, defer: ManualDefer, submitBytes?: number): IoUringEngine {
  return new IoUringEngine({
    ring,
    watch: (_fd, onReadable) => {
      ring.onReadable = onReadable;
      return { close: () => (ring.onReadable = undefined) };
    },
    fd: 3,
    canFallocate: true,
    defer: defer.defer,
    ...(submitBytes !== undefined ? { submitBytes } : {}),
  });
}

const microtasks = async (): Promise<void> => {
  for (let i = 0; i < 10; i += 1) await Promise.resolve();
};

describe('IoUringEngine tags', () => {
  it('reuses a completed request\'s tag, but never one whose submission was refused until the kernel answers it', async () => {
    const ring = new FakeRing(false);
    const defer = new ManualDefer();
    const e = engine(ring, defer);
    const mem = new Uint8Array(3 * 4096);
    const results: string[] = [];
    const read = (i: number) => e.read(IoVector.ofViews([mem.subarray(i * 4096, (i + 1) * 4096)]), 0, (err) => results.push(`${i} ${err ? err.code : 'ok'}`));
    read(0);
    await microtasks();
    ring.finishAll();
    expect(results).toEqual(['0 ok']);
    read(1); // tag 1 again: its first op was reaped
    ring.refuseNext = true;
    await microtasks();
    expect(ring.enterTags).toEqual([[1]]);
    expect(results).toEqual(['0 ok', '1 EBUSY']); // the refused op failed at once
    read(2); // gets another tag: the kernel may still take the refused entry, with tag 1
    await microtasks();
    expect(ring.enterTags).toEqual([[1], [1, 2]]); // the stuck entry went in with the next enter
    ring.finishAll();
    expect(results).toEqual(['0 ok', '1 EBUSY', '2 ok']); // tag 1's late answer completes nothing
    await e.close(); // nothing left waiting: the abandoned slot is not in flight
  });
});

describe('IoUringEngine submission pacing', () => {
  it('sends large requests one io_uring_enter each, completing each before the next enter, which waits for a later turn', async () => {
    const ring = new FakeRing(true);
    const defer = new ManualDefer();
    const e = engine(ring, defer);
    const mem = new Uint8Array(4 * MiB);
    for (let i = 0; i < 4; i += 1) {
      e.read(IoVector.ofViews([mem.subarray(i * MiB, (i + 1) * MiB)]), i * MiB, (err) => {
        ring.log.push(`done ${i + 1}${err ? ' error' : ''}`);
        // What the device does with a completion (used entry, interrupt) runs in microtasks.
        queueMicrotask(() => ring.log.push(`published ${i + 1}`));
      });
    }
    expect(ring.enters).toEqual([]); // nothing before the turn's microtasks
    await microtasks();
    expect(ring.log).toEqual(['enter 1', 'done 1', 'published 1']);
    for (let i = 2; i <= 4; i += 1) {
      expect(defer.pending).toBe(1);
      defer.run();
      await microtasks();
    }
    expect(defer.pending).toBe(0);
    expect(ring.log).toEqual(['enter 1', 'done 1', 'published 1', 'enter 2', 'done 2', 'published 2', 'enter 3', 'done 3', 'published 3', 'enter 4', 'done 4', 'published 4']);
    expect(mem.every((b) => b === 0x3c)).toBe(true);
    await e.close();
  });

  it('still puts many small requests in one io_uring_enter (32 of 4 KiB, a flush, in one turn)', async () => {
    const ring = new FakeRing(true);
    const defer = new ManualDefer();
    const e = engine(ring, defer);
    const mem = new Uint8Array(128 * KiB);
    let done = 0;
    for (let i = 0; i < 32; i += 1) e.read(IoVector.ofViews([mem.subarray(i * 4 * KiB, (i + 1) * 4 * KiB)]), i * 4 * KiB, () => (done += 1));
    e.flush(() => (done += 1));
    await microtasks();
    expect(ring.enters.map((t) => t.length)).toEqual([33]);
    expect(done).toBe(33);
    expect(defer.pending).toBe(0);
  });

  it('fills each enter up to the byte budget: 64 KiB requests go two to an enter of 128 KiB, a larger one alone', async () => {
    const ring = new FakeRing(true);
    const defer = new ManualDefer();
    const e = engine(ring, defer);
    const mem = new Uint8Array(2 * MiB);
    const sizes = [64 * KiB, 64 * KiB, 64 * KiB, 512 * KiB, 32 * KiB, 32 * KiB];
    let at = 0;
    for (const size of sizes) {
      e.read(IoVector.ofViews([mem.subarray(at, at + size)]), at, () => {});
      at += size;
    }
    await microtasks();
    while (defer.pending > 0) {
      defer.run();
      await microtasks();
    }
    expect(ring.enters).toEqual([[1, 2], [3], [4], [5, 6]]);
  });

  it('submits everything without waiting for completions when the kernel runs the requests asynchronously, and close() waits for them', async () => {
    const ring = new FakeRing(false);
    const defer = new ManualDefer();
    const e = engine(ring, defer);
    const mem = new Uint8Array(4 * MiB);
    const done: number[] = [];
    for (let i = 0; i < 4; i += 1) e.write(IoVector.ofViews([mem.subarray(i * MiB, (i + 1) * MiB)]), i * MiB, false, () => done.push(i + 1));
    await microtasks();
    while (defer.pending > 0) {
      defer.run();
      await microtasks();
    }
    expect(ring.enters).toEqual([[1], [2], [3], [4]]);
    expect(done).toEqual([]);
    let closed = false;
    const closing = e.close().then(() => (closed = true));
    await microtasks();
    expect(closed).toBe(false);
    ring.finishAll();
    await closing;
    expect(done).toEqual([1, 2, 3, 4]);
  });

  it('behind the block device: the first of four 1 MiB reads is in the used ring, with an interrupt, before the second is submitted', async () => {
    const ring = new FakeRing(true);
    const defer = new ManualDefer();
    const device = new BlkDevice({ engine: engine(ring, defer), capacityBytes: 16 * MiB, serial: 's', queueSize: 64 });
    // Without EVENT_IDX every publication interrupts (with it, this driver, which never moves
    // used_event, would be interrupted once).
    const driver = MockDriver.create(device, { size: 8 * MiB }).init({ features: (offered) => offered & ~RING_EVENT_IDX });
    const q = driver.queue(0);
    const heads = [0, 1, 2, 3].map((i) => addRead(q, i * 2048, MiB));
    driver.kick(0);
    await microtasks();
    expect(ring.enters).toEqual([[1]]);
    expect(q.used().map((u) => u.id)).toEqual([heads[0]]);
    expect(driver.interrupts.count).toBe(1);
    for (let i = 1; i < 4; i += 1) {
      defer.run();
      await microtasks();
      expect(ring.enters.length).toBe(i + 1);
      expect(q.used().map((u) => u.id)).toEqual([heads[i]]);
      expect(driver.interrupts.count).toBe(i + 1);
    }
    for (const h of heads) expect(statusOf(q, h)).toBe(0);
  });
});
