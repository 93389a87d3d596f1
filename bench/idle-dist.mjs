// The idle daemon's RSS and CPU as plain node runs it (no vite-node and its transformer): the
// built modules (dist/, `npm run build`) with everything `baoctl run` loads, serving the 16 device
// models of idle.bench.ts (8 rng + 8 console at DRIVER_OK, fake handles, one kick clock), idle.
// `--metrics`: render /metrics once first, as the first scrape does (loads prom-client).
//
// Run: node bench/idle-dist.mjs [--metrics]   (bench/README.md, section 9)

const D = new URL('../dist', import.meta.url).pathname;
await import(`${D}/cli/cmds/run/handler.js`);
const { DeviceModelServer } = await import(`${D}/vmm/device-model-server.js`);
const { SharedDeadlines } = await import(`${D}/vmm/kick-clock.js`);
const { RngDevice } = await import(`${D}/devices/rng/index.js`);
const { ConsoleDevice } = await import(`${D}/devices/console/index.js`);
const { silentLogger } = await import(`${D}/virtio/logger.js`);
const { GuestMemory } = await import(`${D}/virtio/guest-memory.js`);
const { MockDriver, InterruptCounter } = await import(`${D}/virtio/testing/mock-driver.js`);
const { IoOp } = await import(`${D}/uapi/constants.js`);
const REGION = 1 << 20;
let nfd = 1000;
const efd = () => { let p = 0n, cb; return { fd: nfd++, signal() {}, read() { const v = p; p = 0n; return v === 0n ? null : v; }, poll(c) { cb = c; return { stop() {} }; }, close() {} }; };
const clock = new SharedDeadlines();
for (let id = 0; id < 16; id++) {
  const shmem = 0x4000_0000 + id * REGION, mmio = 0xa000000 + id * 0x200;
  const bytes = new Uint8Array(REGION);
  let deliver, last = 0, rid = 0;
  const handle = { info: { id, shmemAddr: BigInt(shmem), shmemSize: BigInt(REGION), irq: 48 }, fd: 7, map: () => ({ bytes, address: 0n }), createEventFd: efd, assignIrqfd() {}, deassignIrqfd() {}, assignIoeventfd() {}, attach(f) { deliver = f; return { stop: async () => {} }; }, complete(_r, v = 0) { last = v; }, async close() {} };
  const device = id < 8 ? new RngDevice() : new ConsoleDevice({ backend: { kind: 'stdio', description: 'null', stats: { discardedBytes: 0 }, start() {}, write(_c, d) { d(null); return true; }, pauseInput() {}, resumeInput() {}, async close() {} }, log: silentLogger });
  DeviceModelServer.start({ handle, device, mmioAddr: mmio, log: silentLogger, hotRegisters: false, kickClock: clock });
  const bus = { device, read: (o, w) => (deliver([{ dmId: id, addr: mmio + o, op: IoOp.Read, value: 0n, accessWidth: w, requestId: rid++ }]), Number(last)), write: (o, w, v) => deliver([{ dmId: id, addr: mmio + o, op: IoOp.Write, value: BigInt(v), accessWidth: w, requestId: rid++ }]) };
  new MockDriver(bus, new GuestMemory(shmem, bytes), new InterruptCounter()).init();
}
if (process.argv.includes('--metrics')) {
  const { DaemonMetrics } = await import(`${D}/vmm/metrics.js`);
  const { ProcessSampler } = await import(`${D}/vmm/process-stats.js`);
  const sampler = new ProcessSampler();
  await new DaemonMetrics(() => ({ pid: process.pid, state: 'serving', config: 'bench', startedAt: '', uptimeMs: 0, devices: [], process: sampler.sample() })).render();
}
await new Promise((r) => setTimeout(r, 20_000));
const c = process.cpuUsage();
await new Promise((r) => setTimeout(r, 30_000));
const u = process.cpuUsage(c);
console.log(`${process.argv.includes('--metrics') ? 'after one /metrics render: ' : ''}rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(1)} MB, heapUsed ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1)} MB, cpu in 30 s ${((u.user + u.system) / 1e6).toFixed(3)} s, watchdog expiries ${clock.wakeups}`);
