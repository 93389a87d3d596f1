// In-process benchmark of the virtio layer, with no Bao and no addon: a lean frontend driver
// loop (the part of Linux's virtio core that posts buffers, decides kicks and reaps used
// entries) in front of MmioTransport + SplitQueue + RngDevice. Three sections, each one run of
// interleaved variants (bench/harness.ts), printing ops/s and ratios against a baseline:
//   (a) virtio-rng request throughput: direct vs indirect chains, EVENT_IDX off/on, 1 or 32
//       requests per kick; plus the shipped CSPRNG fill for scale;
//   (b) zero-copy (entropy generated straight into the guest's buffer views, as RngDevice does)
//       against generating into a Node Buffer and copying it in, at 64 B, 4 KiB and 64 KiB;
//   (c) the register-access path: MmioTransport.read/write for the sequences a driver makes.
// Kicks go through transport.queueNotify(), the call DeviceModelServer makes when a queue's
// ioeventfd fires (ARCHITECTURE.md "The hot path"), not through a trapped QueueNotify write.
//
// Run: node node_modules/vite-node/vite-node.mjs bench/virtqueue.bench.ts [--rounds 30]
//      [--slice-ms 12] [--warmup-ms 150] [--only a|b|c] [--json out.json]   (bench/README.md)

import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../lib/virtio/descriptor-chain.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC, VERSION_1 } from '../lib/virtio/features.js';
import * as R from '../lib/virtio/mmio-registers.js';
import { MockDriver, type RawDescriptor } from '../lib/virtio/testing/mock-driver.js';
import { RngDevice } from '../lib/devices/rng/index.js';
import { formatTable, numberArg, runInterleaved, stringArg, type Row, type Variant } from './harness.js';

const QUEUE_SIZE = 256;
const REGION = 8 << 20;

type Fill = (view: Uint8Array) => void;

const memsetFill: Fill = (view) => {
  view.fill(0x5a);
};
const cryptoFill: Fill = (view) => {
  randomFillSync(view);
};

/** Generate into a fresh Buffer, then copy it into the guest buffer (what zero-copy avoids). */
function copyThroughFreshBuffer(source: Fill): Fill {
  return (view) => {
    const staging = Buffer.allocUnsafe(view.length);
    source(staging);
    view.set(staging);
  };
}

/** Generate into one reused staging Buffer, then copy (the copy alone, no allocation). */
function copyThroughScratch(source: Fill, max: number): Fill {
  const scratch = Buffer.allocUnsafe(max);
  return (view) => {
    const staging = view.length === max ? scratch : scratch.subarray(0, view.length);
    source(staging);
    view.set(staging);
  };
}

interface RingOptions {
  /** Writable buffer sizes of one chain. */
  readonly buffers: readonly number[];
  readonly indirect?: boolean;
  readonly eventIdx?: boolean;
  /** Requests made available per kick. */
  readonly batch?: number;
  readonly fill?: Fill;
}

/** vring_need_event (virtio 1.2 §2.7.10), as the driver evaluates it before kicking. */
function needEvent(event: number, next: number, old: number): boolean {
  return ((next - event - 1) & 0xffff) < ((next - old) & 0xffff);
}

/** Measures the path, not the fairness policy (which the unit tests specify). */
const UNBOUNDED = { bytesPerSecond: Number.POSITIVE_INFINITY, budget: { chains: 1 << 15, descriptors: Number.POSITIVE_INFINITY, bytes: Number.POSITIVE_INFINITY } };

/**
 * One call = `batch` entropy requests: post them, publish the avail idx, kick unless the device
 * suppressed it, reap the used entries, acknowledge the interrupt if one came (vm_interrupt's
 * InterruptStatus read + InterruptACK write). The chains are written once and re-posted.
 */
function rngRequests(options: RingOptions): () => void {
  const batch = options.batch ?? 1;
  const eventIdx = options.eventIdx ?? false;
  const indirect = options.indirect ?? false;
  // The request path itself: no rate limit, and a per-kick budget that fits the largest batch.
  const device = new RngDevice({ queueSize: QUEUE_SIZE, ...UNBOUNDED, ...(options.fill ? { fill: options.fill } : {}) });
  const driver = MockDriver.create(device, { size: REGION, guardBytes: 0 });
  const wanted = VERSION_1 | (eventIdx ? RING_EVENT_IDX : 0n) | (indirect ? RING_INDIRECT_DESC : 0n);
  driver.init({ features: (offered) => offered & wanted, queueSizes: [QUEUE_SIZE] });
  const q = driver.queue(0);
  const memory = driver.memory;
  const transport = driver.transport;
  const perChain = options.buffers.length;
  if (batch * (indirect ? 1 : perChain) > QUEUE_SIZE) throw new Error('batch does not fit the queue');

  const heads: number[] = [];
  for (let b = 0; b < batch; b += 1) {
    const raws: RawDescriptor[] = options.buffers.map((len, i) => ({
      addr: driver.allocator.alloc(len, 64),
      len,
      flags: VIRTQ_DESC_F_WRITE | (i < perChain - 1 ? VIRTQ_DESC_F_NEXT : 0),
      next: i + 1,
    }));
    if (indirect) {
      const table = q.writeIndirectTable(raws);
      q.writeDescriptor(b, { addr: table, len: 16 * perChain, flags: VIRTQ_DESC_F_INDIRECT });
      heads.push(b);
    } else {
      const first = b * perChain;
      raws.forEach((raw, i) => q.writeDescriptor(first + i, { ...raw, next: first + i + 1 }));
      heads.push(first);
    }
  }
  const expectedLen = Math.min(
    options.buffers.reduce((a, n) => a + n, 0),
    64 * 1024,
  );
  const ring = q.availRing + 4;
  const idxAddr = q.availRing + 2;
  let availIdx = 0;
  let seenInterrupts = driver.interrupts.count;

  const op = (): void => {
    const old = availIdx;
    for (let b = 0; b < batch; b += 1) memory.writeU16(ring + 2 * ((old + b) & (QUEUE_SIZE - 1)), heads[b] as number);
    availIdx = (old + batch) & 0xffff;
    memory.writeU16(idxAddr, availIdx);
    const kick = eventIdx ? needEvent(q.availEvent(), availIdx, old) : (q.usedFlags() & 1) === 0;
    if (kick) transport.queueNotify(0);
    // virtqueue_enable_cb: interrupt me at the next used entry.
    if (eventIdx) q.setUsedEvent(q.usedIdx());
    if (driver.interrupts.count !== seenInterrupts) {
      seenInterrupts = driver.interrupts.count;
      driver.ackInterrupt();
    }
  };

  // Check the path once: every request came back whole, with an interrupt, and no fault.
  const before = driver.interrupts.count;
  op();
  const used = q.used();
  if (used.length !== batch || used.some((u) => u.len !== expectedLen) || driver.interrupts.count === before) {
    throw new Error(`rng self-check failed: ${JSON.stringify(used.slice(0, 3))}, interrupts ${driver.interrupts.count - before}`);
  }
  if (device.metrics.invalidChains !== 0 || device.metrics.noWritableBuffer !== 0) throw new Error('rng self-check: guest faults');
  return op;
}

function sectionA(): Variant[] {
  const out: Variant[] = [];
  for (const batch of [1, 32]) {
    const group = `(a) virtio-rng requests, 64 B each, ${batch} per kick, memset fill`;
    const add = (name: string, o: RingOptions, baseline = false): void => {
      out.push({ group, name, baseline, opsPerCall: batch, prepare: () => rngRequests({ batch, fill: memsetFill, ...o }) });
    };
    add('direct 1x64 B', { buffers: [64] }, true);
    add('direct 1x64 B, EVENT_IDX', { buffers: [64], eventIdx: true });
    add('direct 2x32 B', { buffers: [32, 32] });
    add('indirect 2x32 B', { buffers: [32, 32], indirect: true });
    add('indirect 2x32 B, EVENT_IDX', { buffers: [32, 32], indirect: true, eventIdx: true });
    if (batch === 1) {
      out.push({
        group,
        name: 'direct 1x64 B, CSPRNG fill (shipped RngDevice)',
        opsPerCall: 1,
        prepare: () => rngRequests({ buffers: [64] }),
      });
    }
  }
  return out;
}

function sectionB(): Variant[] {
  const out: Variant[] = [];
  for (const [sourceName, source] of [
    ['memset', memsetFill],
    ['CSPRNG', cryptoFill],
  ] as const) {
    for (const size of [64, 4096, 65536]) {
      const group = `(b) ${size >= 1024 ? `${size / 1024} KiB` : `${size} B`} per request, ${sourceName} source`;
      out.push(
        { group, name: 'zero-copy: fill the guest view', baseline: true, prepare: () => rngRequests({ buffers: [size], fill: source }) },
        { group, name: 'copy via a fresh Buffer per request', prepare: () => rngRequests({ buffers: [size], fill: copyThroughFreshBuffer(source) }) },
        { group, name: 'copy via one reused Buffer', prepare: () => rngRequests({ buffers: [size], fill: copyThroughScratch(source, size) }) },
      );
    }
  }
  return out;
}

/** A driver over a fresh RngDevice, initialised (queue set up, DRIVER_OK) unless told not to. */
function freshDriver(init = true): MockDriver {
  const driver = MockDriver.create(new RngDevice({ fill: memsetFill, ...UNBOUNDED }), { size: 1 << 20, guardBytes: 0 });
  if (init) driver.init();
  return driver;
}

/** Register accesses one call of `sequence` makes, counted on a throw-away driver. */
function countAccesses(sequence: (d: MockDriver) => void, init: boolean): number {
  const driver = freshDriver(init);
  const t = driver.transport;
  let n = 0;
  const read = t.read.bind(t);
  const write = t.write.bind(t);
  Object.assign(t, {
    read: (o: number, w: number) => ((n += 1), read(o, w)),
    write: (o: number, w: number, v: number) => ((n += 1), write(o, w, v)),
  });
  sequence(driver);
  return n;
}

function sectionC(): Variant[] {
  const group = '(c) MmioTransport register path (ops = register accesses)';
  const seq = (name: string, sequence: (d: MockDriver) => void, init = true, baseline = false): Variant => ({
    group,
    name,
    baseline,
    opsPerCall: countAccesses(sequence, init),
    prepare: () => {
      const driver = freshDriver(init);
      sequence(driver);
      return () => sequence(driver);
    },
  });
  const t = (d: MockDriver): MockDriver['transport'] => d.transport;
  return [
    seq('read MagicValue', (d) => void t(d).read(R.MMIO_MAGIC_VALUE, 4), true, true),
    seq('probe: Magic, Version, DeviceID, VendorID', (d) => void d.probe()),
    seq('interrupt: InterruptStatus read + InterruptACK write', (d) => void d.ackInterrupt()),
    seq('QueueNotify write, empty queue (no ioeventfd)', (d) => d.kick(0)),
    seq('feature negotiation (reset .. FEATURES_OK read back)', (d) => void d.negotiate(), false),
    seq('full init (probe, negotiate, queue setup, DRIVER_OK)', (d) => void d.init(), false),
  ];
}

function main(): void {
  const options = {
    rounds: numberArg('rounds', 30),
    sliceMs: numberArg('slice-ms', 12),
    warmupMs: numberArg('warmup-ms', 150),
  };
  const only = stringArg('only');
  const json = stringArg('json');
  const sections: [string, string, () => Variant[]][] = [
    ['a', 'request', sectionA],
    ['b', 'request', sectionB],
    ['c', 'access', sectionC],
  ];
  console.log(
    `node-bao virtqueue bench: node ${process.version}, ${options.rounds} interleaved rounds x ${options.sliceMs} ms per variant ` +
      `(ops per second of process CPU time; ratio = median of per-round ratios to the group's baseline; IQR = their quartiles)`,
  );
  const all: Row[] = [];
  for (const [key, unit, make] of sections) {
    if (only !== undefined && !only.includes(key)) continue;
    const rows = runInterleaved(make(), options, (line) => process.stderr.write(`  (${key}) ${line}\r`));
    process.stderr.write('\n');
    console.log(formatTable(rows, unit));
    all.push(...rows);
  }
  if (json !== undefined) writeFileSync(json, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, options, rows: all }, null, 2)}\n`);
}

main();
