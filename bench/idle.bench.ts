// What 16 idle device models cost the daemon process, in-process on the host (no Bao, no addon,
// no guest): 8 virtio-rng + 8 virtio-console DeviceModelServers on fake device-model handles
// (bench/fake-dm.ts), each brought to DRIVER_OK by a MockDriver through trapped accesses as a
// Linux frontend does at probe (one device every --stagger ms, as a guest's drivers bind one after
// the other), then left alone. Over each window: process CPU (user + system,
// process.cpuUsage), context switches of all the process's threads (/proc/self/task/*/status:
// every timer expiry that wakes the event loop is one voluntary switch), the kick watchdogs'
// timer expiries and looks, and RSS.
//
// Variants, measured in the same process, window after window:
//   floor     no device model (what this idle process costs by itself)
//   fixed     the watchdog as it was first: a look every 50 ms per device model, each its own
//             timer; the event-loop delay monitor (10 ms) always on, as ProcessSampler ran it
//   backoff   back-off from 50 ms to 2 s, each device model its own timer at its own instants
//             (now + period, UnalignedClock below); monitor always on: the tree before the
//             shared clock and the on-demand monitor
//   unaligned the same without the monitor: what the shared instants alone save
//   shared    back-off on one KickClock for all 16, looks at shared instants (what the daemon
//             does now); the monitor runs only while somebody samples (nobody does here)
//
// Run: node node_modules/vite-node/vite-node.mjs bench/idle.bench.ts [--seconds 60] [--warmup 5]
//      [--rounds 1] [--stagger 37] [--only "floor fixed backoff unaligned shared"]   (bench/README.md)

import * as fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { ConsoleDevice, type ConsoleBackend } from '../lib/devices/console/index.js';
import { RngDevice } from '../lib/devices/rng/index.js';
import { GuestMemory } from '../lib/virtio/guest-memory.js';
import { silentLogger } from '../lib/virtio/logger.js';
import type { VirtioDevice } from '../lib/virtio/device.js';
import { InterruptCounter, MockDriver } from '../lib/virtio/testing/mock-driver.js';
import { DeviceModelServer } from '../lib/vmm/device-model-server.js';
import { SharedDeadlines } from '../lib/vmm/kick-clock.js';
import { ProcessSampler } from '../lib/vmm/process-stats.js';
import { FakeHandle, trappedBus } from './fake-dm.js';
import { numberArg, stringArg } from './harness.js';

const seconds = numberArg('seconds', 60);
const warmup = numberArg('warmup', 5);
const rounds = numberArg('rounds', 1);
const stagger = numberArg('stagger', 37);
const only = (stringArg('only') ?? 'floor fixed backoff unaligned shared').split(/[\s,]+/).filter(Boolean);
const REGION = 1 << 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A console backend with nobody attached: takes output, never has input. */
class NullBackend implements ConsoleBackend {
  readonly kind = 'stdio' as const;
  readonly description = 'null';
  readonly stats = { discardedBytes: 0 };
  start(): void {}
  write(_chunk: Uint8Array, done: (err?: Error | null) => void): boolean {
    done(null);
    return true;
  }
  pauseInput(): void {}
  resumeInput(): void {}
  async close(): Promise<void> {}
}

/** The watchdog's timing before the shared clock: every look at now + period, on a timer of its own. */
class UnalignedClock extends SharedDeadlines {
  override aligned(period: number): number {
    return this.now() + period;
  }
}

type VariantName = 'floor' | 'fixed' | 'backoff' | 'unaligned' | 'shared';

interface Served {
  readonly clocks: readonly SharedDeadlines[];
  close(): Promise<void>;
}

async function serve(variant: VariantName): Promise<Served> {
  if (variant === 'floor') return { clocks: [], close: async () => {} };
  const shared = new SharedDeadlines();
  const clocks: SharedDeadlines[] = variant === 'shared' ? [shared] : [];
  const servers: DeviceModelServer[] = [];
  for (let id = 0; id < 16; id++) {
    const device: VirtioDevice = id < 8 ? new RngDevice() : new ConsoleDevice({ backend: new NullBackend(), log: silentLogger });
    const mmio = 0xa000000 + id * 0x200;
    const shmem = 0x4000_0000 + id * REGION;
    const handle = new FakeHandle(id, shmem, REGION);
    const own = new UnalignedClock();
    if (variant !== 'shared') clocks.push(own);
    servers.push(
      DeviceModelServer.start({
        handle: handle.asHandle,
        device,
        mmioAddr: mmio,
        log: silentLogger,
        hotRegisters: false,
        kickClock: variant === 'shared' ? shared : own,
        ...(variant === 'fixed' ? { kickWatchdog: { maxIdleMs: 50 } } : {}),
      }),
    );
    // The frontend's probe: reset, features, queues, DRIVER_OK, as Linux's virtio_mmio does it.
    new MockDriver(trappedBus(handle, mmio, device), new GuestMemory(shmem, handle.bytes), new InterruptCounter()).init();
    await sleep(stagger);
  }
  return { clocks, close: async () => void (await Promise.all(servers.map((s) => s.close()))) };
}

function contextSwitches(): { voluntary: number; involuntary: number } {
  let voluntary = 0;
  let involuntary = 0;
  for (const t of fs.readdirSync('/proc/self/task')) {
    const status = fs.readFileSync(`/proc/self/task/${t}/status`, 'latin1');
    voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  }
  return { voluntary, involuntary };
}

interface Window {
  readonly variant: VariantName;
  readonly cpuS: number;
  readonly voluntary: number;
  readonly involuntary: number;
  readonly wakeups: number;
  readonly looks: number;
  readonly rssMB: number;
}

async function measure(variant: VariantName): Promise<Window> {
  const served = await serve(variant);
  // ProcessSampler as the daemon makes it (never sampled here), or the always-on monitor it was.
  const sampler = new ProcessSampler();
  const eager = variant === 'fixed' || variant === 'backoff' ? monitorEventLoopDelay({ resolution: 10 }) : undefined;
  eager?.enable();
  // An unref'd timer keeps nothing alive: this one holds the process while the window runs.
  await sleep(warmup * 1000);
  const sum = (f: (c: SharedDeadlines) => number): number => served.clocks.reduce((n, c) => n + f(c), 0);
  const [cpu0, cs0, w0, l0] = [process.cpuUsage(), contextSwitches(), sum((c) => c.wakeups), sum((c) => c.calls)];
  await sleep(seconds * 1000);
  const [cpu, cs] = [process.cpuUsage(cpu0), contextSwitches()];
  const w: Window = {
    variant,
    cpuS: (cpu.user + cpu.system) / 1e6,
    voluntary: cs.voluntary - cs0.voluntary,
    involuntary: cs.involuntary - cs0.involuntary,
    wakeups: sum((c) => c.wakeups) - w0,
    looks: sum((c) => c.calls) - l0,
    rssMB: process.memoryUsage().rss / 2 ** 20,
  };
  eager?.disable();
  sampler.close();
  await served.close();
  return w;
}

const variants = (['floor', 'fixed', 'backoff', 'unaligned', 'shared'] as const).filter((v) => only.includes(v));
console.log(`idle: 8 rng + 8 console device models at DRIVER_OK, nothing else happening; probes ${stagger} ms apart, ${seconds} s windows after ${warmup} s, ${rounds} round(s), Node ${process.version}`);
const windows: Window[] = [];
for (let r = 0; r < rounds; r++) {
  // Each round in another order, so that a drift of the host's load is not one variant's.
  const order = r % 2 === 0 ? variants : [...variants].reverse();
  for (const v of order) {
    const w = await measure(v);
    windows.push(w);
    console.log(`  round ${r + 1} ${v.padEnd(9)} cpu ${w.cpuS.toFixed(3)} s  voluntary switches ${w.voluntary}  involuntary ${w.involuntary}  watchdog timer expiries ${w.wakeups}  looks ${w.looks}  rss ${w.rssMB.toFixed(0)} MB`);
  }
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const per = 60 / seconds;
console.log(`\n| variant | CPU s per minute | vs floor | voluntary switches per minute | watchdog timer expiries per minute | looks per minute |`);
console.log(`|---|---|---|---|---|---|`);
const floorCpu = median(windows.filter((w) => w.variant === 'floor').map((w) => w.cpuS)) * per;
for (const v of variants) {
  const ws = windows.filter((w) => w.variant === v);
  const cpu = median(ws.map((w) => w.cpuS)) * per;
  const extra = windows.some((w) => w.variant === 'floor') && v !== 'floor' ? `+${(cpu - floorCpu).toFixed(3)} s` : '';
  console.log(`| ${v} | ${cpu.toFixed(3)} | ${extra} | ${Math.round(median(ws.map((w) => w.voluntary)) * per)} | ${Math.round(median(ws.map((w) => w.wakeups)) * per)} | ${Math.round(median(ws.map((w) => w.looks)) * per)} |`);
}
