// bench/blk/inprocess.mjs: the block device's own cost per request, on the host, without a guest.
// A BlkDevice over a 64 MiB image (in --dir, default the system's temporary directory; the
// image is made and removed by the run) is driven by lib/virtio's MockDriver, which keeps
// `--qd` requests of `--segs` 4 KiB buffers each in flight (a header, the data buffers, the
// status byte: Linux's layout) and posts the next as soon as one is used. Both engines run in
// the same process, in alternating rounds, so host noise falls on both; printed per engine: the
// median of the rounds' requests per second and CPU time per request (user and system; the
// thread pool's copies run on its threads and count too), then io_uring / thread pool. What it measures is the device model's request path (chain walk, parsing, the engine,
// completions) and the kernel's page-cache copy; not the guest, not Bao. Mind the filesystem:
// io_uring hands a buffered read on a file without non-blocking read support (tmpfs, on the
// kernels measured so far) to a kernel worker thread, about 4x dearer per request than reading
// it inline, so /dev/shm measures that punt rather than the device model.
//
// Usage: node bench/blk/inprocess.mjs [--requests 100000] [--qd 32] [--segs 1] [--rounds 3] [--write] [--dir <path>]
// Needs `npm run build` (it loads dist/).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, '../../dist');
if (!fs.existsSync(path.join(dist, 'devices/blk/device.js'))) {
  console.error('bench/blk/inprocess: dist/ is missing; run `npm run build` first');
  process.exit(2);
}
const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '100000' },
    qd: { type: 'string', default: '32' },
    segs: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    write: { type: 'boolean', default: false },
    dir: { type: 'string', default: os.tmpdir() },
  },
});
const N = Number(values.requests);
const QD = Number(values.qd);
const SEGS = Number(values.segs);
const ROUNDS = Number(values.rounds);
for (const [name, v, max] of [['requests', N, 1e9], ['qd', QD, 128], ['segs', SEGS, 254], ['rounds', ROUNDS, 100]]) {
  if (!Number.isInteger(v) || v < 1 || v > max) {
    console.error(`bench/blk/inprocess: --${name} must be a whole number in 1..${max}, not '${values[name]}'`);
    process.exit(2);
  }
}
const WRITE = values.write;

const { BlkDevice } = await import(`${dist}/devices/blk/device.js`);
const { IoUringEngine } = await import(`${dist}/devices/blk/engines/io-uring.js`);
const { ThreadPoolEngine } = await import(`${dist}/devices/blk/engines/thread-pool.js`);
const { defaultBlockHost } = await import(`${dist}/vmm/block-host.js`);
const { MockDriver } = await import(`${dist}/virtio/testing/mock-driver.js`);

const CAPACITY = 64 << 20;
if (!fs.statSync(values.dir, { throwIfNoEntry: false })?.isDirectory()) {
  console.error(`bench/blk/inprocess: --dir '${values.dir}' is not a directory`);
  process.exit(2);
}
const image = path.join(values.dir, `node-bao-bench-blk-${process.pid}.img`);
fs.writeFileSync(image, Buffer.alloc(CAPACITY, 1));
const fd = fs.openSync(image, 'r+');
process.on('exit', () => fs.rmSync(image, { force: true }));

/** One run of N requests on a fresh device and driver; what it cost. */
async function run(engineName) {
  const host = defaultBlockHost();
  let engine;
  if (engineName === 'io_uring') {
    const { ring, watch } = host.openUring(256);
    engine = new IoUringEngine({ ring, watch, fd, canFallocate: true });
  } else {
    engine = new ThreadPoolEngine({ fd });
  }
  const perRequest = SEGS + 2;
  const device = new BlkDevice({ capacityBytes: CAPACITY, serial: 'bench', queueSize: 1024, engine });
  const driver = MockDriver.create(device, { size: 32 << 20 }).init({});
  const q = driver.queue(0);
  const mem = q.memory;
  const headers = [];
  for (let s = 0; s < QD; s += 1) {
    const base = perRequest * s;
    const header = q.allocator.alloc(16, 16);
    headers.push(header);
    q.writeDescriptor(base, { addr: header, len: 16, flags: 1, next: base + 1 });
    for (let k = 0; k < SEGS; k += 1) {
      q.writeDescriptor(base + 1 + k, { addr: q.allocator.alloc(4096, 4096), len: 4096, flags: WRITE ? 1 : 3, next: base + 2 + k });
    }
    q.writeDescriptor(base + perRequest - 1, { addr: q.allocator.alloc(1, 8), len: 1, flags: 2, next: 0 });
  }
  const span = 4096 * SEGS;
  let availIdx = 0;
  let lastUsed = 0;
  let done = 0;
  let issued = 0;
  const post = (slot) => {
    const at = mem.offsetOf(headers[slot], 16);
    mem.view.setUint32(at, WRITE ? 1 : 0, true);
    mem.view.setUint32(at + 4, 0, true);
    mem.view.setUint32(at + 8, Math.floor(Math.random() * (CAPACITY / span)) * (span / 512), true);
    mem.view.setUint32(at + 12, 0, true);
    mem.writeU16(q.availRing + 4 + 2 * (availIdx % q.size), perRequest * slot);
    availIdx = (availIdx + 1) & 0xffff;
    issued += 1;
  };
  const publish = () => {
    mem.writeU16(q.availRing + 2, availIdx);
    driver.kick(0);
  };
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const poll = () => {
    const idx = mem.readU16(q.usedRing + 2);
    let posted = false;
    while (lastUsed !== idx) {
      const id = mem.readU32(q.usedRing + 4 + 8 * (lastUsed % q.size));
      lastUsed = (lastUsed + 1) & 0xffff;
      done += 1;
      if (issued < N) {
        post(id / perRequest);
        posted = true;
      }
    }
    if (posted) publish();
    if (done >= N) finish();
    else setImmediate(poll);
  };
  for (let s = 0; s < QD; s += 1) post(s);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  publish();
  setImmediate(poll);
  await finished;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  await device.close();
  return { rate: N / seconds, userUs: cpu.user / N, systemUs: cpu.system / N };
}

const results = { io_uring: [], 'thread pool': [] };
for (let r = 0; r < ROUNDS; r += 1) {
  const order = r % 2 === 0 ? ['io_uring', 'thread pool'] : ['thread pool', 'io_uring'];
  for (const name of order) results[name].push(await run(name));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >>> 1];
console.log(`bench/blk/inprocess: ${WRITE ? 'writes' : 'reads'} of ${SEGS} x 4 KiB, QD${QD}, ${N} requests x ${ROUNDS} rounds per engine, node ${process.version}`);
console.log('engine         requests/s   user us/req   system us/req');
for (const [name, rs] of Object.entries(results)) {
  console.log(
    `${name.padEnd(14)} ${median(rs.map((x) => x.rate)).toFixed(0).padStart(10)} ${median(rs.map((x) => x.userUs)).toFixed(1).padStart(13)} ${median(rs.map((x) => x.systemUs)).toFixed(1).padStart(15)}`,
  );
}
console.log(`io_uring / thread pool, requests/s: ${(median(results.io_uring.map((x) => x.rate)) / median(results['thread pool'].map((x) => x.rate))).toFixed(2)}x`);
fs.closeSync(fd);
process.exit(0);
