// Flat memory under load, in-process (no Bao, no addon): 10^6 requests through the whole JS
// request path of one device model — DeviceModelServer (the batch ledger, completion), the
// MmioTransport, the virtqueue and RngDevice — and RSS / V8 heap reported at intervals, each after
// a full GC. A leak of even a few bytes per request shows as growth of megabytes between the
// first and the last interval.
//
// The requests are what a Linux frontend makes at queue depth 1: a buffer posted and kicked (the
// kick arrives through the queue's ioeventfd, as DeviceModelServer registers it), then the
// interrupt's two trapped accesses (InterruptStatus read, InterruptACK write), delivered to the
// server the way the ATTACH loop delivers them (one batch per access), every one through JS
// (the hot-register cells are native and need the addon). Counted: trapped accesses + queue requests.
//
// Run: node node_modules/vite-node/vite-node.mjs bench/memory.bench.ts [--requests 1000000]
//      [--every 100000]   (bench/README.md)

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { RngDevice } from '../lib/devices/rng/index.js';
import { VIRTQ_DESC_F_WRITE } from '../lib/virtio/descriptor-chain.js';
import { GuestMemory } from '../lib/virtio/guest-memory.js';
import { silentLogger } from '../lib/virtio/logger.js';
import { InterruptCounter, MockDriver } from '../lib/virtio/testing/mock-driver.js';
import { DeviceModelServer } from '../lib/vmm/device-model-server.js';
import { FakeHandle, trappedBus } from './fake-dm.js';
import { numberArg } from './harness.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const MMIO = 0xa000000;
const SHMEM = 0x4000_0000;
const REGION = 1 << 20;
const QUEUE_SIZE = 256;

const total = numberArg('requests', 1_000_000);
const every = numberArg('every', 100_000);

const handle = new FakeHandle(0, SHMEM, REGION);
const device = new RngDevice({ queueSize: QUEUE_SIZE, bytesPerSecond: Number.POSITIVE_INFINITY });
const server = DeviceModelServer.start({
  handle: handle.asHandle,
  device,
  mmioAddr: MMIO,
  log: silentLogger,
  hotRegisters: false,
});
const bus = trappedBus(handle, MMIO, device);
const memory = new GuestMemory(SHMEM, handle.bytes);
const driver = new MockDriver(bus, memory, new InterruptCounter());
driver.init({ queueSizes: [QUEUE_SIZE] });
const q = driver.queue(0);
const kick = handle.kicks[0];
if (kick === undefined) throw new Error('no ioeventfd registered at DRIVER_OK');
q.writeDescriptor(0, { addr: driver.allocator.alloc(64, 64), len: 64, flags: VIRTQ_DESC_F_WRITE });
const ring = q.availRing + 4;
const idxAddr = q.availRing + 2;
let availIdx = 0;
let queueRequests = 0;
let seenIrqs = handle.irqfd?.signals ?? 0;

/** One request at queue depth 1: post, kick, wait for nothing (served in the kick), take the interrupt. */
function one(): void {
  memory.writeU16(ring + 2 * (availIdx & (QUEUE_SIZE - 1)), 0);
  availIdx = (availIdx + 1) & 0xffff;
  memory.writeU16(idxAddr, availIdx);
  kick!.kick();
  queueRequests += 1;
  // virtqueue_enable_cb with EVENT_IDX (negotiated): interrupt me at the next used entry.
  q.setUsedEvent(q.usedIdx());
  const irqs = handle.irqfd?.signals ?? 0;
  if (irqs !== seenIrqs) {
    seenIrqs = irqs;
    driver.ackInterrupt();
  }
}

const requests = (): number => server.stats.requests + queueRequests;
const mb = (n: number): string => (n / (1 << 20)).toFixed(2);
interface Sample {
  readonly requests: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
}
const samples: Sample[] = [];
function sample(): void {
  gc();
  const m = process.memoryUsage();
  samples.push({ requests: requests(), rss: m.rss, heapUsed: m.heapUsed, external: m.external + m.arrayBuffers });
  const s = samples.at(-1)!;
  console.log(`${String(s.requests).padStart(9)} requests  rss ${mb(s.rss).padStart(7)} MB  heapUsed ${mb(s.heapUsed).padStart(6)} MB  external+arrayBuffers ${mb(s.external).padStart(6)} MB`);
}

console.log(`memory under load: ${total} requests (trapped accesses + queue requests) through DeviceModelServer, RSS and heap after a full GC every ${every}`);
const start = process.cpuUsage();
sample();
let next = every;
while (requests() < total) {
  one();
  if (requests() >= next) {
    sample();
    next += every;
  }
}
const cpu = process.cpuUsage(start);
if (handle.completions !== server.stats.requests) throw new Error(`completions ${handle.completions} != trapped accesses ${server.stats.requests}`);
if (device.metrics.invalidChains !== 0 || device.metrics.noWritableBuffer !== 0) throw new Error('guest faults during the run');
const first = samples[1] ?? samples[0]!;
const last = samples.at(-1)!;
console.log(
  `growth from ${first.requests} to ${last.requests} requests: rss ${mb(last.rss - first.rss)} MB, heapUsed ${mb(last.heapUsed - first.heapUsed)} MB, ` +
    `external ${mb(last.external - first.external)} MB; ${server.stats.requests} trapped accesses, ${queueRequests} queue requests, ` +
    `every access completed once; ${((cpu.user + cpu.system) / (last.requests - samples[0]!.requests)).toFixed(2)} us CPU per request`,
);
await server.close();
