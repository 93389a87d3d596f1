// Fuzz target: virtio-blk request handling. A BlkDevice behind the virtio-mmio transport and a
// MockDriver, with a scripted engine: the input decides the device's setup (capacity, queues,
// read-only, discard, FLUSH, cache mode), the generic ring script of device-harness.ts, and
// blk's own steps: requests framed as Linux frames them but with decoded types, sectors,
// lengths, segment counts and discard segments; the engine completing its operations at once
// or later, in any order, with an error, or not before a reset. Besides the shared oracle:
//   * every view handed to the engine lies inside the region, and none overlaps the status
//     byte of its chain (the device never asks the backing to overwrite a status);
//   * every operation lies inside the capacity, on 512-byte sectors, its views adding up to its
//     length, and no write, discard or zeroing reaches a read-only disk;
//   * nothing of an activation the driver reset is published: once reset, a stale completion
//     adds no used element (the accounting's USED_NOT_TAKEN catches that) and the device's
//     reset promise settles once the engine has answered everything;
//   * once the engine has completed everything, every chain taken has been given back.
//
// Completions go through Promises (the QueueWorker), so this target is asynchronous: it awaits
// the microtasks after each completion step (scripts/fuzz.sh runs it without --sync).

import { BlkDevice, type BlkCacheMode } from '../../../lib/devices/blk/device.js';
import { QueueWorker } from '../../../lib/virtio/queue-worker.js';
import type { BlkEngine, IoDone } from '../../../lib/devices/blk/engine.js';
import type { MockBuffer, MockQueue } from '../../../lib/virtio/testing/mock-driver.js';
import { MockDriverError } from '../../../lib/virtio/testing/mock-driver.js';
import { DeviceHarness, ScriptedEventLoop } from '../device-harness.js';
import { FuzzInput } from '../decode.js';
import { beginInput, checkAllCompleted, checkViewIn, violated, watchedQueues } from '../oracle.js';

const SECTOR = 512;

// A handler that throws or rejects is a device bug (queue-worker.ts fails the device for it, as
// it must in production): here it is a finding, kept and thrown once the step is over (a throw
// from inside the device's promise executor would only reject that promise). The engine's
// checks land here too.
let finding: Error | undefined;
const workerProto = QueueWorker.prototype as unknown as { deviceError(err: unknown): void };
const originalDeviceError = workerProto.deviceError;
workerProto.deviceError = function deviceError(this: QueueWorker, err: unknown): void {
  finding ??= err instanceof Error ? err : new Error(String(err));
  originalDeviceError.call(this, err);
};

function raiseFinding(): void {
  const f = finding;
  finding = undefined;
  if (f !== undefined) throw f;
}

interface Op {
  readonly kind: 'read' | 'write' | 'flush' | 'discard' | 'writeZeroes';
  readonly views: readonly Uint8Array[];
  readonly done: IoDone;
}

class ScriptedEngine implements BlkEngine {
  readonly name = 'fuzz';
  readonly canDiscard = true;
  readonly pending: Op[] = [];
  /** Complete each operation inside the call (as a page-cache hit would, nearly). */
  synchronous = false;
  failNext = false;
  check: (kind: Op['kind'], views: readonly Uint8Array[], offset: number, length: number) => void = () => {};

  read(views: readonly Uint8Array[], offset: number, done: IoDone): void {
    this.start('read', views, offset, sum(views), done);
  }
  write(views: readonly Uint8Array[], offset: number, _durable: boolean, done: IoDone): void {
    this.start('write', views, offset, sum(views), done);
  }
  flush(done: IoDone): void {
    this.start('flush', [], 0, 0, done);
  }
  discard(offset: number, length: number, done: IoDone): void {
    this.start('discard', [], offset, length, done);
  }
  writeZeroes(offset: number, length: number, _unmap: boolean, done: IoDone): void {
    this.start('writeZeroes', [], offset, length, done);
  }
  async close(): Promise<void> {}

  /** Completes the pending operation at `index` (reads fill their views first). */
  complete(index: number, err: boolean): void {
    const [op] = this.pending.splice(index, 1);
    if (op === undefined) return;
    if (!err && op.kind === 'read') for (const v of op.views) v.fill(0x6b);
    op.done(err ? Object.assign(new Error('EIO: scripted'), { code: 'EIO', errno: -5 }) : null);
  }

  private start(kind: Op['kind'], views: readonly Uint8Array[], offset: number, length: number, done: IoDone): void {
    this.check(kind, views, offset, length);
    const op = { kind, views, done };
    if (this.synchronous) {
      this.pending.push(op);
      this.complete(this.pending.length - 1, this.failNext);
      this.failNext = false;
    } else this.pending.push(op);
  }
}

function sum(views: readonly Uint8Array[]): number {
  let n = 0;
  for (const v of views) n += v.byteLength;
  return n;
}

/** Lets the device's promise callbacks and the worker's interrupt microtask run. */
async function microtasks(): Promise<void> {
  for (let i = 0; i < 6; i += 1) await null;
}

export async function fuzz(data: Uint8Array): Promise<void> {
  beginInput();
  finding = undefined;
  const input = new FuzzInput(data);
  const capacitySectors = input.pick([1, 2, 8, 64, 2048, 1 << 21]);
  const readOnly = input.u8() < 48;
  const discard = input.bool();
  const queues = input.pick([1, 1, 2, 3]);
  const queueSize = input.pick([2, 4, 16, 64, 256]);
  const cache = input.pick<BlkCacheMode>(['writeback', 'writeback', 'writethrough', 'unsafe']);
  const segMax = input.pick([1, 2, 4, queueSize]);
  const sizeMax = input.pick([512, 4096, 1 << 20]);
  const engine = new ScriptedEngine();
  const loop = new ScriptedEventLoop();
  const device = new BlkDevice({
    engine,
    capacityBytes: capacitySectors * SECTOR + input.below(SECTOR),
    serial: input.pick(['', 'fuzz-disk', 'x'.repeat(30)]),
    readOnly,
    discard,
    flush: input.u8() >= 32,
    cache,
    queues,
    queueSize,
    segMax,
    sizeMax,
    scheduler: loop,
  });
  const harness = new DeviceHarness(device, input, { maxQueueSize: 256, completesSynchronously: () => false }, loop);
  const region = harness.driver.memory;
  engine.check = (kind, views, offset, length) => {
    try {
      checkOp(kind, views, offset, length);
    } catch (err) {
      finding ??= err as Error;
      throw err;
    }
  };
  const checkOp = (kind: Op['kind'], views: readonly Uint8Array[], offset: number, length: number): void => {
    if (readOnly && kind !== 'read' && kind !== 'flush') violated('BLK_READ_ONLY', `${kind} reached the engine of a read-only disk`);
    if (offset % SECTOR !== 0 || length % SECTOR !== 0) violated('BLK_UNALIGNED', `${kind} at ${offset}, ${length} bytes`);
    if (offset < 0 || offset + length > capacitySectors * SECTOR) {
      violated('BLK_OUT_OF_RANGE', `${kind} [${offset}, +${length}) on a disk of ${capacitySectors} sectors`);
    }
    if (views.length > segMax) violated('BLK_SEG_MAX', `${views.length} segments; seg_max is ${segMax}`);
    const chain = currentStatus();
    for (const v of views) {
      checkViewIn(region, v, `${kind} view`);
      if (v.byteLength > sizeMax) violated('BLK_SIZE_MAX', `a segment of ${v.byteLength} bytes; size_max is ${sizeMax}`);
      if (chain !== undefined && overlaps(v, chain)) violated('BLK_STATUS_IN_DATA', `${kind} data overlaps the chain's status byte`);
    }
  };
  harness.init();

  for (let steps = 0; steps < 64 && !input.done; steps += 1) {
    const op = input.u8();
    // Half the steps are the generic ring script, half blk's own.
    if ((op & 1) === 1 && harness.step(op >>> 1)) {
      await microtasks();
      continue;
    }
    switch (input.u8() % 5) {
      case 0:
      case 1: {
        const q = harness.queues[input.below(harness.queues.length)];
        if (q) postRequest(q, input, capacitySectors);
        break;
      }
      case 2: {
        // The engine answers some of what it holds, in an order the input picks.
        const n = 1 + input.below(8);
        const err = input.u8() < 24;
        harness.deliver('engine completes', () => {
          for (let i = 0; i < n && engine.pending.length > 0; i += 1) engine.complete(input.below(engine.pending.length), err);
        });
        await microtasks();
        break;
      }
      case 3:
        engine.synchronous = input.bool();
        engine.failNext = input.u8() < 24;
        break;
      default: {
        // A reset while I/O may be in flight: it must hold until the engine answers.
        let settled = false;
        let pending: void | Promise<void> = undefined;
        harness.deliver('reset in flight', () => {
          pending = harness.driver.reset();
        });
        if (pending !== undefined) void (pending as Promise<void>).then(() => (settled = true));
        await microtasks();
        if (settled && engine.pending.length > 0) violated('BLK_RESET_EARLY', `reset settled with ${engine.pending.length} operations in flight`);
        harness.deliver('engine completes after reset', () => {
          while (engine.pending.length > 0) engine.complete(0, false);
        });
        await microtasks();
        if (pending !== undefined && !settled) violated('BLK_RESET_HUNG', 'reset did not settle once the engine answered everything');
        harness.init();
        await microtasks();
      }
    }
    raiseFinding();
  }
  // The engine finishes everything (serving may start more: a yield, more chains): every chain comes back.
  for (let rounds = 0; rounds < 64; rounds += 1) {
    harness.settle();
    if (engine.pending.length === 0 && loop.idle) break;
    harness.deliver('final completion', () => {
      while (engine.pending.length > 0) engine.complete(0, false);
    });
    await microtasks();
  }
  await microtasks();
  raiseFinding();
  checkAllCompleted('after the engine completed everything');
}

/**
 * The status byte of the chain being handled (the engine is called from handle(), right after
 * the chain was taken): the last writable byte of the live queue's last chain. Only known for
 * certain with one queue; with more, undefined (no check).
 */
function currentStatus(): Uint8Array | undefined {
  const live = watchedQueues().filter((w) => !w.queue.closed);
  if (live.length !== 1) return undefined;
  const writable = live[0]!.lastChain?.writable.filter((b) => b.byteLength > 0);
  const tail = writable?.[writable.length - 1];
  return tail?.subarray(tail.byteLength - 1);
}

function overlaps(a: Uint8Array, b: Uint8Array): boolean {
  if (a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

const TYPES = [0, 0, 0, 1, 1, 1, 4, 8, 11, 13, 2, 0x77, 0xffff_ffff];

/** A request framed as a driver frames one: header, data or segments, status; values decoded. */
function postRequest(q: MockQueue, input: FuzzInput, capacitySectors: number): void {
  const type = input.pick(TYPES);
  const sectorShape = input.u8() & 7;
  const sector =
    sectorShape === 0
      ? BigInt(input.u32()) | (BigInt(input.u32()) << 32n)
      : sectorShape === 1
        ? BigInt(capacitySectors - input.below(4))
        : BigInt(input.below(Math.min(capacitySectors + 2, 1 << 16)));
  const header = new Uint8Array(16);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, type, true);
  hv.setBigUint64(8, sector & 0xffff_ffff_ffff_ffffn, true);
  const buffers: MockBuffer[] = [];
  // The header whole, split in two, short, or (rarely) device-writable.
  const split = input.u8() & 7;
  if (split === 0) buffers.push({ data: header.subarray(0, 8) }, { data: header.subarray(8) });
  else if (split === 1) buffers.push({ data: header.subarray(0, input.below(16)) });
  else if (split === 2) buffers.push({ data: header, writable: true });
  else buffers.push({ data: header });
  const writableData = type === 0 || type === 8 ? true : type === 1 || type === 11 || type === 13 ? false : input.bool();
  const segments = input.below(4);
  for (let i = 0; i < segments; i += 1) {
    if (type === 11 || type === 13) {
      const seg = new Uint8Array(16 * (1 + input.below(2)));
      const sv = new DataView(seg.buffer);
      for (let at = 0; at < seg.length; at += 16) {
        sv.setBigUint64(at, BigInt(input.below(capacitySectors + 4)), true);
        sv.setUint32(at + 8, input.pick([0, 1, 8, capacitySectors, 0xffff_ffff]), true);
        sv.setUint32(at + 12, input.pick([0, 0, 1, 2]), true);
      }
      buffers.push({ data: input.u8() < 16 ? seg.subarray(0, 10) : seg });
    } else {
      const length = input.u8() < 32 ? input.below(1100) : SECTOR * input.pick([1, 1, 2, 8, 16]);
      buffers.push(writableData ? { length, writable: true } : { data: new Uint8Array(length).fill(0x33) });
    }
  }
  const status = input.u8() & 7;
  if (status === 0) {
    // no status byte at all
  } else if (status === 1) buffers.push({ length: 0, writable: true });
  else buffers.push({ length: 1, writable: true });
  // Readable before writable, as a well-formed chain is; a writable header makes all writable.
  let seenWritable = false;
  const ordered = buffers.map((b) => {
    seenWritable ||= b.writable === true;
    return seenWritable && b.writable !== true ? { length: b.length ?? b.data?.length ?? 0, writable: true } : b;
  });
  try {
    q.add(ordered, { indirect: input.bool(), publish: true });
  } catch (err) {
    if (!(err instanceof MockDriverError)) throw err;
  }
}
