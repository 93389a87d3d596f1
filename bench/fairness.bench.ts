// Fairness in one process: how long a canary device model's register access waits for the event
// loop while another device model in the same process is abused by its frontend. The canary's
// accesses arrive as macrotasks (setImmediate), as trapped accesses arrive from the ATTACH
// thread; the latency is from arrival to the transport's answer. The abusing frontend is played
// in-process by a cheap loop that re-posts pre-written chains and kicks (in production it is
// another VM and costs us nothing). Each abuse is measured in rounds interleaved with a baseline
// round (no abuse), and the table gives the canary's p50/p99/max and its p99 against the
// baseline's p99 of the same rounds. Report only: nothing is asserted (bench/README.md).
//
//   node node_modules/vite-node/vite-node.mjs bench/fairness.bench.ts [--rounds 5] [--round-ms 300]

import { performance } from 'node:perf_hooks';
import { ConsoleDevice, type ConsoleBackend } from '../lib/devices/console/index.js';
import { RngDevice } from '../lib/devices/rng/index.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../lib/virtio/descriptor-chain.js';
import * as R from '../lib/virtio/mmio-registers.js';
import { MockDriver } from '../lib/virtio/testing/mock-driver.js';
import { numberArg } from './harness.js';

const ROUNDS = numberArg('rounds', 5);
const ROUND_MS = numberArg('round-ms', 300);
const BASE = 0x4000_0000;

interface Abuse {
  readonly name: string;
  /** Starts abusing; returns a stop function. */
  start(): () => void;
}

/** A frontend loop: `step` once per event-loop turn until stopped. */
function frontendLoop(step: () => void): () => void {
  let on = true;
  const tick = (): void => {
    if (!on) return;
    step();
    setImmediate(tick);
  };
  setImmediate(tick);
  return () => {
    on = false;
  };
}

/** Pre-writes `count` chains built by `write(head)` and re-posts them all every turn. */
function reposting(driver: MockDriver, queueIndex: number, count: number, write: (head: number) => void): () => void {
  const q = driver.queue(queueIndex);
  for (let h = 0; h < count; h += 1) write(h);
  let avail = 0;
  return frontendLoop(() => {
    const free = count - ((avail - q.usedIdx()) & 0xffff);
    for (let i = 0; i < free; i += 1) driver.memory.writeU16(q.availRing + 4 + 2 * ((avail + i) % q.size), (avail + i) % count);
    avail = (avail + free) & 0xffff;
    driver.memory.writeU16(q.availRing + 2, avail);
    driver.transport.queueNotify(queueIndex);
  });
}

const nullBackend: ConsoleBackend = {
  kind: 'stdio',
  description: 'null',
  stats: { discardedBytes: 0 },
  start: () => {},
  write: (_chunk, done) => {
    done(null);
    return true;
  },
  pauseInput: () => {},
  resumeInput: () => {},
  close: async () => {},
};

const abuses: Abuse[] = [
  {
    name: 'rng flood, 256 x 4 KiB re-posted (default 1 MiB/s limit)',
    start() {
      const driver = MockDriver.create(new RngDevice(), { size: 4 << 20 }).init({ queueSizes: [256] });
      const q = driver.queue(0);
      return reposting(driver, 0, 256, (h) => q.writeDescriptor(h, { addr: driver.allocator.alloc(4096, 64), len: 4096, flags: VIRTQ_DESC_F_WRITE }));
    },
  },
  {
    name: 'rng flood, 256 x 4 KiB re-posted (no rate limit: budgets only)',
    start() {
      const driver = MockDriver.create(new RngDevice({ bytesPerSecond: Number.POSITIVE_INFINITY }), { size: 4 << 20 }).init({ queueSizes: [256] });
      const q = driver.queue(0);
      return reposting(driver, 0, 256, (h) => q.writeDescriptor(h, { addr: driver.allocator.alloc(4096, 64), len: 4096, flags: VIRTQ_DESC_F_WRITE }));
    },
  },
  {
    name: 'console TX, 1024-descriptor indirect chains aliasing 1 MiB each (no rate limit)',
    start() {
      const device = new ConsoleDevice({ backend: nullBackend, queueSize: 1024, txBytesPerSecond: Number.POSITIVE_INFINITY });
      const driver = MockDriver.create(device, { size: 4 << 20 }).init({ queueSizes: [1024, 1024] });
      const q = driver.queue(1);
      const raws = Array.from({ length: 1024 }, (_, i) => ({ addr: BASE, len: 1 << 20, flags: i < 1023 ? VIRTQ_DESC_F_NEXT : 0, next: i + 1 }));
      const table = q.writeIndirectTable(raws);
      return reposting(driver, 1, 256, (h) => q.writeDescriptor(h, { addr: table, len: 16 * 1024, flags: VIRTQ_DESC_F_INDIRECT }));
    },
  },
];

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

/** The canary: accesses arriving back to back as macrotasks; latencies in microseconds. */
async function canary(ms: number): Promise<number[]> {
  const driver = MockDriver.create(new RngDevice()).init({ queueSizes: [16] });
  const latencies: number[] = [];
  const end = performance.now() + ms;
  await new Promise<void>((resolve) => {
    const arrive = (): void => {
      const at = performance.now();
      setImmediate(() => {
        driver.transport.read(R.MMIO_STATUS, 4);
        const now = performance.now();
        latencies.push((now - at) * 1000);
        if (now < end) setTimeout(arrive, 0);
        else resolve();
      });
    };
    arrive();
  });
  return latencies.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const abuse of abuses) {
    const base: number[] = [];
    const under: number[] = [];
    for (let r = 0; r < ROUNDS; r += 1) {
      base.push(...(await canary(ROUND_MS)));
      const stop = abuse.start();
      under.push(...(await canary(ROUND_MS)));
      stop();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    base.sort((a, b) => a - b);
    under.sort((a, b) => a - b);
    const fmt = (v: number): string => `${v.toFixed(0)} us`.padStart(9);
    rows.push(
      `${abuse.name.padEnd(82)} ${fmt(percentile(base, 0.5))} ${fmt(percentile(base, 0.99))} ${fmt(percentile(under, 0.5))} ${fmt(percentile(under, 0.9))} ${fmt(percentile(under, 0.99))} ${(percentile(under, 0.99) / percentile(base, 0.99)).toFixed(2).padStart(6)}x`,
    );
    process.stdout.write(`  ${abuse.name}: done\n`);
  }
  process.stdout.write(`\n${'abuse'.padEnd(82)} ${'base p50'.padStart(9)} ${'base p99'.padStart(9)} ${'p50'.padStart(9)} ${'p90'.padStart(9)} ${'p99'.padStart(9)}  p99/base\n`);
  for (const row of rows) process.stdout.write(`${row}\n`);
}

await main();
