import { performance } from 'node:perf_hooks';
import { ConsoleDevice } from '../lib/devices/console/index.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT } from '../lib/virtio/descriptor-chain.js';
import { MockDriver } from '../lib/virtio/testing/mock-driver.js';
import { ManualScheduler } from '../lib/virtio/testing/manual-scheduler.js';
const s = new ManualScheduler();
const nullBackend: any = { kind: 'stdio', description: 'null', stats: { discardedBytes: 0 }, start: () => {}, write: (_c: any, done: any) => { done(null); return true; }, pauseInput() {}, resumeInput() {}, close: async () => {} };
const device = new ConsoleDevice({ backend: nullBackend, queueSize: 1024, txBytesPerSecond: Infinity, scheduler: s });
const driver = MockDriver.create(device, { size: 4 << 20 }).init({ queueSizes: [1024, 1024] });
const q = driver.queue(1);
const raws = Array.from({ length: 1024 }, (_, i) => ({ addr: 0x4000_0000, len: 1 << 20, flags: i < 1023 ? VIRTQ_DESC_F_NEXT : 0, next: i + 1 }));
const table = q.writeIndirectTable(raws);
for (let h = 0; h < 256; h++) q.writeDescriptor(h, { addr: table, len: 16 * 1024, flags: VIRTQ_DESC_F_INDIRECT });
let avail = 0;
const times: number[] = [];
for (let i = 0; i < 300; i++) {
  driver.memory.writeU16(q.availRing + 4 + 2 * (avail % 1024), avail % 256); avail = (avail + 1) & 0xffff;
  driver.memory.writeU16(q.availRing + 2, avail);
  const t = performance.now();
  driver.transport.queueNotify(1);
  times.push((performance.now() - t) * 1000);
}
times.sort((a, b) => a - b);
console.log('one aliased chain: p50', times[150]!.toFixed(0), 'us p90', times[270]!.toFixed(0), 'p99', times[297]!.toFixed(0), device.metrics.txDroppedBytes, driver.transport.status);
