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
//   * once the engine has completed everything, every chain taken has been given back;
//   * a read's views lie in its chain's writable buffers and a write's in its readable ones;
//     DISCARD and WRITE_ZEROES reach the engine only when negotiated, and a write asks for
//     durability exactly when the disk is write-through (the cache mode and FLUSH);
//   * the engine refusing ZERO_RANGE or a hole (EOPNOTSUPP) makes the device write zeros from
//     its own buffer, never from or into guest memory, and never past the range;
//   * every answered chain that has a status byte gets a used length of at least 1 (a read's
//     whole writable length when it succeeded) and a status of OK, IOERR or UNSUPP in that byte
//     (the requests this target frames start with a sentinel there).
//
// Completions go through Promises (the QueueWorker), so this target is asynchronous: it awaits
// the microtasks after each completion step (scripts/fuzz.sh runs it without --sync).

import { VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_WRITE_ZEROES } from '../../../lib/devices/blk/config.js';
import { BlkDevice, type BlkCacheMode } from '../../../lib/devices/blk/device.js';
import { ZERO_CHUNK, ZeroWriter } from '../../../lib/devices/blk/zeroes.js';
import type { DescriptorChain } from '../../../lib/virtio/descriptor-chain.js';
import { SplitQueue } from '../../../lib/virtio/split-queue.js';
import { QueueWorker } from '../../../lib/virtio/queue-worker.js';
import type { BlkEngine, IoDone } from '../../../lib/devices/blk/engine.js';
import type { MockBuffer, MockQueue } from '../../../lib/virtio/testing/mock-driver.js';
import { MockDriverError } from '../../../lib/virtio/testing/mock-driver.js';
import { DeviceHarness, ScriptedEventLoop, microtasks } from '../device-harness.js';
import { FuzzInput } from '../decode.js';
import { beginInput, checkAllCompleted, checkViewIn, raiseSwallowed, setChainHooks, violated, watchedQueues } from '../oracle.js';
import type { IoVector } from '../../../lib/devices/blk/io-vector.js';

const SECTOR = 512;
/** What postRequest() leaves in a status byte: the device must overwrite it before answering. */
const STATUS_SENTINEL = 0xee;

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

// The ranges the device zeroes, whether it asks the engine first or (once the backing refused
// ZERO_RANGE) goes straight to writing zeros: the fallback's writes must stay inside one.
const zeroing: { offset: number; length: number }[] = [];
const writerProto = ZeroWriter.prototype as unknown as { writeZeroes(offset: number, length: number, ...rest: unknown[]): void };
const originalWriteZeroes = writerProto.writeZeroes;
writerProto.writeZeroes = function writeZeroes(this: ZeroWriter, offset: number, length: number, ...rest: unknown[]): void {
  zeroing.push({ offset, length });
  originalWriteZeroes.call(this, offset, length, ...rest);
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
  /** Fails whatever the script says (an engine that cannot do this at all). */
  readonly refuse?: string;
}

class ScriptedEngine implements BlkEngine {
  readonly name = 'fuzz';
  readonly canDiscard = true;
  readonly pending: Op[] = [];
  /** Complete each operation inside the call (as a page-cache hit would, nearly). */
  synchronous = false;
  /** The error the next synchronous operation fails with (undefined: it succeeds). */
  failNext: string | undefined;
  /** ZERO_RANGE and hole punching refused as by tmpfs (the device must fall back to writing zeros). */
  noZeroRange = false;
  check: (kind: Op['kind'], views: readonly Uint8Array[], offset: number, length: number, durable?: boolean) => void = () => {};

  read(data: IoVector, offset: number, done: IoDone): void {
    this.start('read', data.views(), offset, data.length, done);
  }
  write(data: IoVector, offset: number, durable: boolean, done: IoDone): void {
    this.start('write', data.views(), offset, data.length, done, durable);
  }
  flush(done: IoDone): void {
    this.start('flush', [], 0, 0, done);
  }
  discard(offset: number, length: number, done: IoDone): void {
    this.start('discard', [], offset, length, done);
  }
  writeZeroes(offset: number, length: number, _unmap: boolean, done: IoDone): void {
    if (this.noZeroRange) {
      this.check('writeZeroes', [], offset, length);
      this.pending.push({ kind: 'writeZeroes', views: [], done, refuse: 'EOPNOTSUPP' });
      if (this.synchronous) this.complete(this.pending.length - 1, undefined);
      return;
    }
    this.start('writeZeroes', [], offset, length, done);
  }
  async close(): Promise<void> {}

  /**
   * Completes the pending operation at `index` with error `code` (undefined: success; reads
   * fill their views first, with a valid status value, so a read aliasing another chain's
   * status byte cannot pass for a device that wrote a bad status).
   */
  complete(index: number, code: string | undefined): void {
    const [op] = this.pending.splice(index, 1);
    if (op === undefined) return;
    const err = op.refuse ?? code;
    if (err === undefined && op.kind === 'read') for (const v of op.views) v.fill(0);
    op.done(err !== undefined ? Object.assign(new Error(`${err}: scripted`), { code: err, errno: err === 'EIO' ? -5 : -95 }) : null);
  }

  private start(kind: Op['kind'], views: readonly Uint8Array[], offset: number, length: number, done: IoDone, durable?: boolean): void {
    this.check(kind, views, offset, length, durable);
    const op = { kind, views, done };
    if (this.synchronous) {
      this.pending.push(op);
      const code = this.failNext;
      this.failNext = undefined;
      this.complete(this.pending.length - 1, code);
    } else this.pending.push(op);
  }
}

export async function fuzz(data: Uint8Array): Promise<void> {
  beginInput();
  finding = undefined;
  zeroing.length = 0;
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
  /** Byte offsets (in the region's buffer) of the status bytes postRequest() set to the sentinel. */
  const sentinels = new Set<number>();
  const harness = new DeviceHarness(device, input, { maxQueueSize: 256, completesSynchronously: () => false }, loop);
  const region = harness.driver.memory;
  engine.noZeroRange = input.u8() < 64;
  engine.check = (kind, views, offset, length, durable) => {
    try {
      checkOp(kind, views, offset, length, durable);
    } catch (err) {
      finding ??= err as Error;
      throw err;
    }
  };
  const checkOp = (kind: Op['kind'], views: readonly Uint8Array[], offset: number, length: number, durable?: boolean): void => {
    if (readOnly && kind !== 'read' && kind !== 'flush') violated('BLK_READ_ONLY', `${kind} reached the engine of a read-only disk`);
    if (offset % SECTOR !== 0 || length % SECTOR !== 0) violated('BLK_UNALIGNED', `${kind} at ${offset}, ${length} bytes`);
    if (offset < 0 || offset + length > capacitySectors * SECTOR) {
      violated('BLK_OUT_OF_RANGE', `${kind} [${offset}, +${length}) on a disk of ${capacitySectors} sectors`);
    }
    // A zero write of the WRITE_ZEROES fallback: the device's own buffer, inside the range it zeroes.
    if (kind === 'write' && views.length === 1 && views[0]!.buffer !== region.bytes.buffer) {
      const v = views[0]!;
      if (zeroing.length === 0) violated('BLK_FOREIGN_WRITE', `a write of ${v.byteLength} bytes from outside guest memory, with no WRITE_ZEROES in progress`);
      if (v.byteLength > ZERO_CHUNK || v[0] !== 0 || v[v.byteLength - 1] !== 0) violated('BLK_ZERO_FALLBACK', `a fallback write of ${v.byteLength} bytes that are not zeros`);
      if (!zeroing.some((z) => offset >= z.offset && offset + length <= z.offset + z.length)) {
        violated('BLK_ZERO_FALLBACK', `a fallback write [${offset}, +${length}) outside every range the device was asked to zero`);
      }
      return;
    }
    const features = harness.driver.transport.features;
    if (kind === 'discard' && (features & VIRTIO_BLK_F_DISCARD) === 0n) violated('BLK_NOT_NEGOTIATED', 'a discard reached the engine without VIRTIO_BLK_F_DISCARD');
    if (kind === 'writeZeroes') {
      if ((features & VIRTIO_BLK_F_WRITE_ZEROES) === 0n) violated('BLK_NOT_NEGOTIATED', 'a write-zeroes reached the engine without VIRTIO_BLK_F_WRITE_ZEROES');
    }
    if (kind === 'write') {
      const writeThrough = cache === 'writethrough' || (cache === 'writeback' && (features & VIRTIO_BLK_F_FLUSH) === 0n);
      if (durable !== writeThrough) violated('BLK_DURABILITY', `a write with durable=${durable} on a ${cache} disk, FLUSH ${writeThrough ? 'not ' : ''}negotiated`);
    }
    if (views.length > segMax) violated('BLK_SEG_MAX', `${views.length} segments; seg_max is ${segMax}`);
    const chain = currentChain();
    const status = chain === undefined ? undefined : statusByte(chain);
    const own = chain === undefined ? undefined : kind === 'read' ? chain.writable : chain.readable;
    for (const v of views) {
      checkViewIn(region, v, `${kind} view`);
      if (v.byteLength > sizeMax) violated('BLK_SIZE_MAX', `a segment of ${v.byteLength} bytes; size_max is ${sizeMax}`);
      if (status !== undefined && overlaps(v, status)) violated('BLK_STATUS_IN_DATA', `${kind} data overlaps the chain's status byte`);
      if (own !== undefined && !own.some((b) => within(v, b))) {
        violated('BLK_WRONG_BUFFER', `${kind} data outside the chain's ${kind === 'read' ? 'writable' : 'readable'} buffers`);
      }
    }
  };
  harness.init();
  // Every writable byte of a chain taken in this input: a status byte one of them overlaps can
  // be overwritten by another request (aliased buffers), so only the others are checked.
  const writableTaken: Uint8Array[] = [];
  setChainHooks({
    popped: (_queue: SplitQueue, chain: DescriptorChain) => {
      for (const b of chain.writable) if (b.byteLength > 0) writableTaken.push(b);
    },
    used: (_queue, head, written, chain) => {
      // Refused by pop() (answered 0 or NEEDS_RESET), or a head taken again as other buffers
      // while outstanding: which of its chains this element answers is not known.
      if (chain === undefined) return;
      const status = statusByte(chain);
      if (status === undefined) return;
      if (written === 0) violated('BLK_UNANSWERED', `head ${head}: a request with a status byte given back with nothing written`);
      if (written > 1 + 20 && written !== chain.writableLength) {
        violated('BLK_USED_LENGTH', `head ${head}: used length ${written}; 1, a serial's, or a read's ${chain.writableLength}`);
      }
      let shared = 0;
      for (const b of writableTaken) if (overlaps(b, status)) shared += 1;
      if (shared > 1) return;
      const value = status[0]!;
      if (!sentinels.has(status.byteOffset)) return;
      if (value === STATUS_SENTINEL) violated('BLK_STATUS_NOT_WRITTEN', `head ${head} answered without writing its status byte`);
      if (value > 2) violated('BLK_STATUS_VALUE', `head ${head} answered with status ${value}`);
    },
  });

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
        if (q) postRequest(q, input, capacitySectors, sentinels);
        break;
      }
      case 2: {
        // The engine answers some of what it holds, in an order the input picks.
        const n = 1 + input.below(8);
        const err = engineError(input);
        harness.deliver('engine completes', () => {
          for (let i = 0; i < n && engine.pending.length > 0; i += 1) engine.complete(input.below(engine.pending.length), err);
        });
        await microtasks();
        break;
      }
      case 3:
        engine.synchronous = input.bool();
        engine.failNext = engineError(input);
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
          while (engine.pending.length > 0) engine.complete(0, undefined);
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
      while (engine.pending.length > 0) engine.complete(0, undefined);
    });
    await microtasks();
  }
  await microtasks();
  raiseFinding();
  raiseSwallowed();
  checkAllCompleted('after the engine completed everything');
}

/** Mostly success; sometimes EIO, sometimes EOPNOTSUPP (answered UNSUPP). */
function engineError(input: FuzzInput): string | undefined {
  const b = input.u8();
  return b < 24 ? 'EIO' : b < 32 ? 'EOPNOTSUPP' : undefined;
}

/**
 * The chain being handled (the engine is called from handle(), right after the chain was
 * taken): the live queue's last chain. Only known for certain with one queue; with more,
 * undefined (no check).
 */
function currentChain(): DescriptorChain | undefined {
  const live = watchedQueues().filter((w) => !w.queue.closed);
  if (live.length !== 1) return undefined;
  return live[0]!.lastChain ?? undefined;
}

/** A chain's status byte: the last byte of its last non-empty writable buffer. */
function statusByte(chain: DescriptorChain): Uint8Array | undefined {
  for (let i = chain.writable.length - 1; i >= 0; i -= 1) {
    const b = chain.writable[i]!;
    if (b.byteLength > 0) return b.subarray(b.byteLength - 1);
  }
  return undefined;
}

function overlaps(a: Uint8Array, b: Uint8Array): boolean {
  if (a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/** Whether `inner` lies wholly inside `outer`. */
function within(inner: Uint8Array, outer: Uint8Array): boolean {
  return inner.buffer === outer.buffer && inner.byteOffset >= outer.byteOffset && inner.byteOffset + inner.byteLength <= outer.byteOffset + outer.byteLength;
}

const TYPES = [0, 0, 0, 1, 1, 1, 4, 8, 11, 13, 11, 13, 2, 0x77, 0xffff_ffff];

/**
 * A first sector as a driver (or an attacker) writes one: small, at the capacity's edge (for a
 * request of `sectors`), at the edges of what a double holds exactly (2^53) and of the high
 * word the device accepts, or any 64-bit value.
 */
function decodeSector(input: FuzzInput, capacitySectors: number, sectors: number): bigint {
  switch (input.u8() & 7) {
    case 0:
      return BigInt(input.u32()) | (BigInt(input.u32()) << 32n);
    case 1:
      return BigInt(capacitySectors - input.below(4));
    case 2:
      return BigInt(Math.max(0, capacitySectors - sectors)) + BigInt(input.below(3)) - 1n;
    case 3:
      return input.pick([2n ** 53n - 1n, 2n ** 53n, 0x1f_ffffn << 32n, 0x20_0000n << 32n, 2n ** 64n - 1n, 2n ** 63n, 0xffff_ffffn, 2n ** 64n - BigInt(sectors)]);
    default:
      return BigInt(input.below(Math.min(capacitySectors + 2, 1 << 16)));
  }
}

/** DISCARD / WRITE_ZEROES segments: mostly one (the device's max_discard_seg), sometimes more. */
function segments(input: FuzzInput, capacitySectors: number): Uint8Array {
  const count = input.pick([1, 1, 1, 2, 3]);
  const seg = new Uint8Array(16 * count);
  const sv = new DataView(seg.buffer);
  for (let at = 0; at < seg.length; at += 16) {
    const sectors = input.pick([0, 1, 8, 2048, capacitySectors, capacitySectors + 1, 0xffff_ffff, input.u32()]) >>> 0;
    const sector = decodeSector(input, capacitySectors, sectors) & 0xffff_ffff_ffff_ffffn;
    sv.setBigUint64(at, sector < 0n ? 0n : sector, true);
    sv.setUint32(at + 8, sectors, true);
    sv.setUint32(at + 12, input.pick([0, 0, 1, 2, 3, 0x8000_0000, 0xffff_fffe]), true);
  }
  return seg;
}

/**
 * A request framed as a driver frames one, with decoded values: the header whole, split, short
 * or device-writable, or (writes) sharing a descriptor with the data; data segments of decoded
 * lengths, now and then in the wrong direction; DISCARD / WRITE_ZEROES segments whole, split
 * across descriptors or short; the status byte in a descriptor of its own, at the end of the
 * last data buffer, behind a zero-length descriptor, or missing. The status byte starts as
 * STATUS_SENTINEL (its offset goes into `sentinels`).
 */
function postRequest(q: MockQueue, input: FuzzInput, capacitySectors: number, sentinels: Set<number>): void {
  const type = input.pick(TYPES);
  const isSegments = type === 11 || type === 13;
  const sectors = input.pick([1, 1, 2, 8, 16]);
  const sector = decodeSector(input, capacitySectors, sectors);
  const header = new Uint8Array(16);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, type, true);
  hv.setUint32(4, input.u8() < 16 ? input.u32() : 0, true); // reserved: must be ignored
  hv.setBigUint64(8, (sector < 0n ? 0n : sector) & 0xffff_ffff_ffff_ffffn, true);
  const buffers: MockBuffer[] = [];
  // Data direction as the type wants it; now and then the other way (the device must refuse).
  const flip = input.u8() < 16;
  const natural = type === 0 || type === 8 ? true : type === 1 || isSegments ? false : input.bool();
  const writableData = flip ? !natural : natural;
  const data: MockBuffer[] = [];
  if (isSegments && !writableData) {
    const seg = segments(input, capacitySectors);
    const shape = input.u8() & 7;
    if (shape === 0) data.push({ data: seg.subarray(0, 10) });
    else if (shape === 1 && seg.length > 1) {
      const cut = 1 + input.below(seg.length - 1);
      data.push({ data: seg.subarray(0, cut) }, { data: seg.subarray(cut) });
    } else if (shape !== 2) data.push({ data: seg }); // shape 2: no segment at all
  } else {
    const count = input.below(4);
    for (let i = 0; i < count; i += 1) {
      const b = input.u8();
      const length = b < 32 ? input.below(1100) : b < 40 ? input.pick([19, 20, 21]) : SECTOR * (i === 0 ? sectors : input.pick([1, 1, 2, 8, 16]));
      data.push(writableData ? { length, writable: true } : { data: new Uint8Array(length).fill(0x33) });
    }
  }
  const split = input.u8() & 7;
  if (split === 0) buffers.push({ data: header.subarray(0, 8) }, { data: header.subarray(8) });
  else if (split === 1) buffers.push({ data: header.subarray(0, input.below(16)) });
  else if (split === 2) buffers.push({ data: header, writable: true });
  else if (split === 3 && data.length > 0 && data[0]!.writable !== true) {
    // Header and the first data (or segment) bytes in one descriptor.
    const first = data.shift()!;
    const bytes = first.data as Uint8Array;
    const joined = new Uint8Array(16 + bytes.length);
    joined.set(header);
    joined.set(bytes, 16);
    buffers.push({ data: joined });
  } else buffers.push({ data: header });
  buffers.push(...data);
  const placement = input.u8() & 7;
  const last = buffers[buffers.length - 1]!;
  let statusAt: MockBuffer | undefined;
  if (placement === 0) {
    // no status byte at all (unless the data is writable)
  } else if (placement === 1) buffers.push({ length: 0, writable: true });
  else if (placement === 2 && last.writable === true && last.data === undefined && buffers.length > 1) {
    // The status is the last byte of the last data buffer (one descriptor for both).
    buffers[buffers.length - 1] = { length: (last.length ?? 0) + 1, writable: true };
  } else if (placement === 3) {
    statusAt = { data: [STATUS_SENTINEL], writable: true };
    buffers.push(statusAt, { length: 0, writable: true });
  } else {
    statusAt = { data: [STATUS_SENTINEL], writable: true };
    buffers.push(statusAt);
  }
  // Readable before writable, as a well-formed chain is; a writable header makes all writable.
  let seenWritable = false;
  const ordered = buffers.map((b) => {
    seenWritable ||= b.writable === true;
    return seenWritable && b.writable !== true ? { length: b.length ?? b.data?.length ?? 0, writable: true } : b;
  });
  try {
    const head = q.add(ordered, { indirect: input.bool(), publish: true });
    if (statusAt !== undefined) {
      const views = q.buffers(head);
      const view = views[ordered.indexOf(statusAt)];
      if (view !== undefined && view.byteLength === 1) sentinels.add(view.byteOffset);
    }
  } catch (err) {
    if (!(err instanceof MockDriverError)) throw err;
  }
}
