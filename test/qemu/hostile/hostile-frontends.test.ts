// Hostile frontends against one `baoctl run` serving several device models (issue: hostile
// frontends, item 5). Two device models are played by this test through bao-sim's debugfs
// injection, with rings and buffers it owns in their private regions: an rng, a console, two
// virtio-blk disks (one read-only) and a virtio-net over a tap the daemon creates (malformed
// frames and headers, receive chains without room, control commands, a transmit flood); the
// sixth is the canary, served to the guest's own virtio_rng driver. After every case:
// the daemon is alive; every access was completed; the canary kept answering register reads
// (one the daemon's native thread answers, one its JavaScript does) within CANARY_FACTOR times
// their baseline p99 (or CANARY_FLOOR_US), with no sample longer than CANARY_MAX_US (below); RSS stayed bounded; the abused device model logged about 10 lines
// a second at most; nothing was written outside the writable buffers the case offered (the
// rest of the region is canary bytes); and the abused device works again after a reset, with
// nothing from before the reset written afterwards.
//
// Widths other than 1/2/4/8 and ops other than read and write cannot be injected through
// debugfs: test/unit/vmm/device-model-server.test.ts covers them in-process.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { dmInfo, dmStats, guestSkipReason, loadBaoSim, unloadBaoSim, waitFor } from '../support/bao-sim.js';
import { LatencySampler, measure, type Canary } from './support/canary.js';
import { RunningDaemon, type GcFigures, type SchedFigures } from './support/daemon.js';
import { longTasks, type CpuProfile } from './support/long-tasks.js';
import { offerUsedAgain } from './support/endless-producer.js';
import { F, InjectedFrontend, post, read, REG, S, write, type Desc, type Op, type RingLayout } from './support/frontend.js';

const CANARY = 0;
const RNG = 1;
const CONSOLE = 2;
const BLK = 3;
const BLK_RO = 4;
const BLK_IMAGE = '/tmp/node-bao-hostile-blk.img';
const BLK_RO_IMAGE = '/tmp/node-bao-hostile-blk-ro.img';
const BLK_BYTES = 1 << 20;
const BLK_SECTORS = BLK_BYTES / 512;
const NET = 5;
const NET_TAP = 'nbhost0';
const NET_MAC = '52:54:00:77:00:02';
/** The control: a device model the C floor serves (support/canary.ts), no guest driver on it. */
const CONTROL = 6;
const RESPONDER = '/usr/bin/bao-bench-responder';
const IP = '/usr/local/bin/ip';
const REGION = 0x400000; // private regions of 4 MiB: room for 65,535-descriptor tables
const CONFIG = '/tmp/node-bao-hostile.yaml';
const STATUS_SOCKET = '/tmp/node-bao-hostile-status.sock';
const CONSOLE_SOCKET = '/tmp/node-bao-hostile-console.sock';
const QS = 16;
const FILL = 0xcc;

/** The rings a case abuses (set A) and the ones recovery uses (set B), per queue. */
const ringA = (queue: number): RingLayout => ({ size: QS, desc: 0x3000 * queue, avail: 0x3000 * queue + 0x1000, used: 0x3000 * queue + 0x2000 });
const ringB = (queue: number): RingLayout => ({ size: QS, desc: 0x380000 + 0x3000 * queue, avail: 0x381000 + 0x3000 * queue, used: 0x382000 + 0x3000 * queue });
const BUF = 0x10000; // buffers of set A: BUF + i * 0x1000
const TABLE = 0x100000; // indirect tables
const BIG = 0x200000; // 1 MiB to alias
const BUF_B = 0x3a0000;

const skip =
  guestSkipReason ??
  (os.cpus().length < 2 ? 'the hostile suite needs 2 CPUs (the frontend’s and the backend’s)' : undefined) ??
  (fs.existsSync(IP) ? undefined : `${IP} is not in the image (qemu/build-image.sh copies iproute2's ip): the net device's tap cannot be set up`);
if (guestSkipReason === undefined && skip !== undefined) console.warn(`skipped: ${skip}`);

interface Target {
  readonly dm: number;
  readonly queues: number;
  /** The queue a case abuses: the rng's requestq, the console's transmitq. */
  readonly queue: number;
  /** Whether chains on that queue are device-writable (rng) or device-readable (console TX). */
  readonly writable: boolean;
  /** A well-formed request for the recovery check (blk: header, data, status); default one buffer of 64 bytes. */
  readonly good?: (fe: InjectedFrontend, at: number) => { readonly descs: Desc[]; readonly served: () => boolean };
  /** Writes the one-buffer good request recovery sends (default: 0x5a bytes). */
  readonly goodRequest?: (mem: Uint8Array, at: number, len: number) => void;
  /** Checks, after recovery's good request was returned, that it had its effect. */
  readonly served?: (before: Readonly<Record<string, number>>) => Promise<void>;
}
type TargetName = 'rng' | 'console' | 'blk' | 'blkro' | 'net';

/** A virtio-blk read of sector 0 into `at + 0x200`, status at `at + 0x10`: served when the status is OK. */
function blkGood(fe: InjectedFrontend, at: number): { descs: Desc[]; served: () => boolean } {
  blkHeader(fe, at, BT.IN, 0n);
  fe.mem[at + 0x10] = 0xff;
  return {
    descs: [
      { addr: fe.gpa(at), len: 16, flags: F.NEXT, next: 1 },
      { addr: fe.gpa(at + 0x200), len: 512, flags: F.WRITE | F.NEXT, next: 2 },
      { addr: fe.gpa(at + 0x10), len: 1, flags: F.WRITE },
    ],
    served: () => fe.mem[at + 0x10] === 0,
  };
}
const TARGETS: Record<TargetName, Target> = {
  rng: { dm: RNG, queues: 1, queue: 0, writable: true },
  console: { dm: CONSOLE, queues: 2, queue: 1, writable: false },
  blk: { dm: BLK, queues: 1, queue: 0, writable: true, good: blkGood },
  blkro: { dm: BLK_RO, queues: 1, queue: 0, writable: true, good: blkGood },
  // receiveq 0, transmitq 1, controlq 2 (one queue pair, no MQ); recovery sends one good frame.
  net: {
    dm: NET,
    queues: 3,
    queue: 1,
    writable: false,
    goodRequest: (mem, at, len) => writeFrame(mem, at, len),
    served: async (before) => {
      await waitForAsync(async () => ((await netMetrics()).txFrames ?? 0) > (before.txFrames ?? 0), 10_000, 'the good frame to reach the tap');
    },
  },
};

interface Ctx {
  readonly fe: InjectedFrontend;
  readonly t: Target;
  /** The abused queue's rings (set A, live after the standard bring-up). */
  readonly q: RingLayout;
  /** Ranges the device may write (writable buffers) or the test writes after arm(). */
  allow(off: number, len: number): void;
  /** Takes the reference copy of the region: call after writing the case's rings. */
  arm(): void;
  /** Writes a chain's descriptors at q.desc (from index 0), offers its head and kicks. */
  chain(descs: readonly Desc[]): void;
  /** Clears ring set A and brings the device up on it again (after a case left it in NEEDS_RESET). */
  restart(): Promise<void>;
}

interface Case {
  readonly name: string;
  readonly target: TargetName;
  /** Bring the device up on ring set A first (default true). */
  readonly live?: boolean;
  run(ctx: Ctx): Promise<void>;
}

interface Figures {
  name: string;
  canary: Canary;
  /** The daemon's garbage collections while the canary was sampled. */
  gc: GcFigures;
  /** Its JavaScript thread's waits for the CPU meanwhile (where the kernel keeps scheduler statistics). */
  sched?: SchedFigures;
  /** The daemon's threads over the same window, ms: the JavaScript thread's CPU and wait, and the others'. */
  threads: ThreadDeltas;
  /** The backend CPU's time over the same window, ms, by kind (/proc/stat). */
  cpu1: Record<string, number>;
  rssMB: number;
  logLines: number;
  logPerS: number;
  ms: number;
  /** Where the case's wall time went: bring-up, the abuse, the checks, the recovery, the canary's driver. */
  phasesMs: Record<string, number>;
}

interface ThreadDeltas {
  jsRunMs: number;
  jsWaitMs: number;
  othersRunMs: number;
  /** The busiest other thread's CPU time. */
  topOtherRunMs: number;
  /** The others' CPU time by thread name (bao-attach: the ATTACH threads; node: V8's and libuv's). */
  othersByName: Record<string, number>;
}

function threadDeltas(before: Map<number, { run: number; wait: number }>, after: Map<number, { name: string; run: number; wait: number }>, mainTid: number): ThreadDeltas {
  const ms = (ns: number): number => Math.round(ns / 1e5) / 10;
  let othersRun = 0;
  let topOther = 0;
  let js = { run: 0, wait: 0 };
  const byName: Record<string, number> = {};
  for (const [tid, a] of after) {
    const b = before.get(tid) ?? { run: 0, wait: 0 };
    const d = { run: a.run - b.run, wait: a.wait - b.wait };
    if (tid === mainTid) js = d;
    else {
      othersRun += d.run;
      topOther = Math.max(topOther, d.run);
      byName[a.name] = (byName[a.name] ?? 0) + d.run;
    }
  }
  const othersByName = Object.fromEntries(Object.entries(byName).map(([n, ns]) => [n, ms(ns)]));
  return { jsRunMs: ms(js.run), jsWaitMs: ms(js.wait), othersRunMs: ms(othersRun), topOtherRunMs: ms(topOther), othersByName };
}

const CPU_FIELDS = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;

/** CPU `n`'s times from /proc/stat, in clock ticks (USER_HZ, 100 a second). */
function cpuTimes(n: number): number[] {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${n} `)) ?? '';
  return line.trim().split(/\s+/).slice(1, 1 + CPU_FIELDS.length).map(Number);
}

function cpuDeltas(before: number[], after: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  CPU_FIELDS.forEach((f, i) => {
    const d = ((after[i] ?? 0) - (before[i] ?? 0)) * 10;
    if (d > 0) out[f] = d;
  });
  return out;
}

const figures: Figures[] = [];

/**
 * HOSTILE_CPU_PROF=1: the daemon runs under --cpu-prof, and after the suite its JavaScript
 * thread's long stretches of work (support/long-tasks.ts) are printed per case.
 */
const CPU_PROFILE_DIR = process.env['HOSTILE_CPU_PROF'] === '1' ? '/tmp/node-bao-hostile-prof' : undefined;
/** Each case's sampling window, CLOCK_MONOTONIC µs (the CPU profile's clock). */
const caseWindows: { name: string; fromUs: number; toUs: number }[] = [];

function printLongTasks(dir: string): void {
  const file = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.cpuprofile')) : undefined;
  if (file === undefined) {
    console.log(`long tasks: no CPU profile in ${dir}`);
    return;
  }
  const tasks = longTasks(JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as CpuProfile, 3);
  for (const w of caseWindows) {
    const inside = tasks.filter((t) => t.startUs >= w.fromUs && t.startUs <= w.toUs).sort((a, b) => b.ms - a.ms);
    if (inside.length > 0) console.log(`long tasks: ${w.name.slice(0, 60)}: ${inside.slice(0, 3).map((t) => `${t.ms} ms [${t.top.join('; ')}]`).join(' | ')}`);
  }
}
let baseline: Canary;
let baselineGc: GcFigures;
// How much slower the canary's p99 may get while another device model is abused. The goal is 2x.
// Two registers are sampled (support/canary.ts): MagicValue, which the native ATTACH thread
// answers, and DeviceFeatures, which the device model's JavaScript answers; each is judged
// against its own baseline. The sampler models Bao's static CPU partitioning on the frontend
// side (SCHED_FIFO, paced: it never waits for guest CPU 0 behind the abuser), so what remains is
// the backend's answer. A third register, on a device model the C floor serves (CONTROL), shows
// what the machine itself did meanwhile, and this process keeps to the frontend CPU (beforeAll).
// That still misses 2x here, for two reasons (hostile/RESULTS.md, per case):
// under TCG a guest CPU is a host thread, and on this shared 2-core host the p99 of ~100 to 1,000
// samples is set by the host scheduling vCPU threads (a p50 of 0.1 to 0.2 ms while both guest
// CPUs are busy, of several ms when an idle one must be woken, and p99s of 1 to 40 ms; the
// baseline p99 was 10 to 17 ms in three loaded runs, 0.64 ms with the earlier sampler on a quiet
// host); and the daemon's one JS thread is shared, so a JavaScript-served access can wait
// behind an abused device model's queue work (up to 0.3 s seen in one case), which is bounded
// per kick in chains, not in time. Bursts of trapped accesses are now served 16 at a time
// (device-model-server.ts), which took the JavaScript register's p99 in the fault and reset
// floods from 239 and 294 ms to 30 to 64 ms. 10x, or 200 ms when that is more, still catches the failure this guards against: before per-kick budgets one abusive kick
// stalled every other device model for seconds (ratios in the thousands). One CI run on a busier
// host saw p99s of 51 to 55 ms in 8 of 30 cases (baseline p99 1.7 ms), hence the floor. The p99
// misses a single stall (one sample, however long), hence also the bound on the longest sample:
// a kick handled in one task of seconds shows there.
const CANARY_FACTOR = 10;
const CANARY_FLOOR_US = 200_000;
const CANARY_MAX_US = 2_000_000;
let baseRss = 0;
let daemon: RunningDaemon;
let control: ChildProcess | undefined;

/** The C floor on the control device model, on the backend CPU like the daemon; resolves once attached. */
async function startControl(): Promise<ChildProcess> {
  const base = dmInfo(CONTROL).mmio_base ?? '';
  const child: ChildProcess = spawn('taskset', ['-c', '1', RESPONDER, String(CONTROL), base], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${RESPONDER} did not attach in 30 s: ${out}`)), 30_000);
    const seen = (d: Buffer) => {
      out += d.toString();
      if (/^ready$/m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', seen);
    child.stderr!.on('data', seen);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${RESPONDER}: ${String(err)} (the image ships it: qemu/build-image.sh)`));
    });
  });
  return child;
}
const frontends = new Map<number, InjectedFrontend>();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rngReady(): boolean {
  try {
    return fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').includes('virtio_rng');
  } catch {
    return false;
  }
}

/** The canary's real driver still delivers entropy. */
function readHwrng(count: number, timeoutMs = 20_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', '0', 'dd', 'if=/dev/hwrng', `bs=${count}`, 'count=1', 'iflag=fullblock', 'status=none'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('/dev/hwrng did not answer'));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

function layoutFor(t: Target): RingLayout[] {
  return Array.from({ length: t.queues }, (_, i) => ringA(i));
}

/**
 * What changed in `now` against `ref` outside `allowed`: the first few offsets. Pages that are
 * equal are skipped with one native compare each (a byte loop over 4 MiB costs about half a
 * second under TCG, twice a case).
 */
function strayWrites(ref: Uint8Array, now: Uint8Array, allowed: readonly [number, number][]): number[] {
  const found: number[] = [];
  const ok = (i: number): boolean => allowed.some(([a, l]) => i >= a && i < a + l);
  const PAGE = 0x1000;
  const a = Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength);
  const b = Buffer.from(now.buffer, now.byteOffset, now.byteLength);
  let from = 0; // where the last run found ended
  for (let page = 0; page < now.length && found.length < 8; page += PAGE) {
    const end = Math.min(now.length, page + PAGE);
    if (end <= from || a.subarray(page, end).equals(b.subarray(page, end))) continue;
    for (let i = Math.max(page, from); i < end && found.length < 8; i += 1) {
      if (now[i] !== ref[i] && !ok(i)) {
        found.push(i);
        // skip the rest of this run
        while (i + 1 < now.length && now[i + 1] !== ref[i + 1]) i += 1;
        from = i + 1;
      }
    }
  }
  return found;
}

async function allCompleted(): Promise<void> {
  await waitFor(
    () => [CANARY, RNG, CONSOLE, BLK, BLK_RO, NET].every((dm) => {
      const s = dmStats(dm);
      return s.inflight === 0 && s.queued === 0;
    }),
    10_000,
    'every access completed (bao-sim inflight and queued 0)',
  );
}

/** Reset, bring up on ring set B, one good request served; nothing of set A written after the reset. */
async function recover(fe: InjectedFrontend, t: Target): Promise<void> {
  let status = await fe.reset();
  for (let i = 0; i < 3 && status !== 0; i += 1) {
    await sleep(200);
    status = await fe.reset();
  }
  expect(status, 'Status reads 0 after a reset').toBe(0);
  const afterReset = Uint8Array.from(fe.mem);
  const layout = Array.from({ length: t.queues }, (_, i) => ringB(i));
  layout.forEach((q) => fe.clearRings(q));
  const st = await fe.bringUp(layout);
  expect(st & (S.DRIVER_OK | S.NEEDS_RESET), `status after a clean bring-up: 0x${st.toString(16)}`).toBe(S.DRIVER_OK);
  const q = layout[t.queue]!;
  if (t.goodRequest) t.goodRequest(fe.mem, BUF_B, 64);
  else fe.mem.fill(0x5a, BUF_B, BUF_B + 64);
  const good = t.good?.(fe, BUF_B);
  if (good !== undefined) good.descs.forEach((d, i) => fe.setDesc(q.desc, i, d));
  else fe.setDesc(q.desc, 0, { addr: fe.gpa(BUF_B), len: 64, flags: t.writable ? F.WRITE : 0 });
  const before = fe.usedIdx(q);
  const metricsBefore = t.served ? await deviceMetrics(t.dm) : {};
  fe.offer(q, 0);
  fe.kick(t.queue);
  await waitFor(() => fe.usedIdx(q) !== before, 10_000, 'the device to serve a good request after the reset');
  if (good !== undefined) expect(good.served(), 'the good request after the reset answered OK').toBe(true);
  else if (t.writable) expect(fe.mem.subarray(BUF_B, BUF_B + 64).some((b) => b !== 0x5a)).toBe(true);
  await t.served?.(metricsBefore);
  await sleep(100);
  // Only set B (rings, buffer) may have changed since the reset was read back.
  const stray = strayWrites(afterReset, fe.mem, [
    [0x380000, 0x20000],
    [BUF_B, 0x1000],
  ]);
  expect(stray, 'writes after the reset outside the new rings').toEqual([]);
}

async function runCase(c: Case): Promise<void> {
  const t = TARGETS[c.target];
  const fe = frontends.get(t.dm)!;
  const phasesMs: Record<string, number> = {};
  let mark = Date.now();
  const phase = (name: string): void => {
    const now = Date.now();
    phasesMs[name] = now - mark;
    mark = now;
  };
  // Quiesce the device (it may be live on ring set B from the last recovery) before the fill.
  await fe.reset();
  fe.mem.fill(FILL);
  const layout = layoutFor(t);
  layout.forEach((q) => fe.clearRings(q));
  if (c.live !== false) {
    const st = await fe.bringUp(layout);
    expect(st & (S.DRIVER_OK | S.NEEDS_RESET), `bring-up before the case: 0x${st.toString(16)}`).toBe(S.DRIVER_OK);
  }
  const allowed: [number, number][] = layout.map((q) => [q.used, 6 + 8 * q.size] as [number, number]);
  let ref = Uint8Array.from(fe.mem);
  const q = layout[t.queue]!;
  const ctx: Ctx = {
    fe,
    t,
    q,
    allow: (off, len) => void allowed.push([off, len]),
    arm: () => void (ref = Uint8Array.from(fe.mem)),
    restart: async () => {
      await fe.reset();
      layout.forEach((l) => fe.clearRings(l));
      await fe.bringUp(layout);
    },
    chain: (descs) => {
      descs.forEach((d, i) => fe.setDesc(q.desc, i, d));
      fe.offer(q, 0);
      ref = Uint8Array.from(fe.mem);
      fe.kick(t.queue);
    },
  };
  const sampledFrom = Date.now();
  const window = { name: c.name, fromUs: Number(process.hrtime.bigint() / 1000n), toUs: Infinity };
  caseWindows.push(window);
  const schedKept = daemon.schedReset();
  const threadsBefore = daemon.threadTimes();
  const cpuBefore = cpuTimes(1);
  const sampler = new LatencySampler(CANARY, CONTROL);
  phase('setup');
  const t0 = Date.now();
  try {
    await c.run(ctx);
    await allCompleted();
  } catch (err) {
    // The sampler's shell keeps bao-sim's debugfs open: stop it, or no later file can unload the module.
    await sampler.stop(0, 0);
    throw err;
  }
  const ms = Math.max(1, Date.now() - t0);
  const canary = await sampler.stop(100);
  const sampledTo = Date.now();
  window.toUs = Number(process.hrtime.bigint() / 1000n);
  await sleep(200); // let the last log lines of the case arrive
  // The daemon's collections while the canary was sampled (every device model paused by each).
  const gc = daemon.gcBetween(sampledFrom, sampledTo);
  // And how long its JavaScript thread waited for the backend CPU meanwhile (other threads ran).
  const sched = schedKept ? daemon.sched() : undefined;
  const threads = threadDeltas(threadsBefore, daemon.threadTimes(), daemon.child.pid ?? 0);
  const cpu1 = cpuDeltas(cpuBefore, cpuTimes(1));

  expect(daemon.alive, `the daemon died:\n${daemon.output()}`).toBe(true);
  const status = await daemon.status();
  const rss = status.process?.rssBytes ?? 0;
  const logLines = daemon.linesOf(t.dm, t0).length;
  // The lines were counted from t0 until now (the case, the canary's last batch, the wait for
  // the last lines): the bound below is over that same window, not the case's time alone (a
  // register sweep that got faster had its allowance cut while its lines were not).
  const logWindowMs = Math.max(1, Date.now() - t0);
  const logPerS = logLines / Math.max(1, logWindowMs / 1000);
  figures.push({ name: c.name, canary, gc, ...(sched === undefined ? {} : { sched }), threads, cpu1, rssMB: Math.round(rss / 2 ** 20), logLines, logPerS: Math.round(logPerS * 10) / 10, ms, phasesMs });
  phase('case');

  // Soft: a slow canary is reported, and the case's other checks and its recovery still run.
  for (const reg of ['native', 'js'] as const) {
    const [now, base] = [canary[reg], baseline[reg]];
    expect.soft(now.p99Us, `canary (${reg}) p99 ${now.p99Us} us vs baseline ${base.p99Us} us`).toBeLessThanOrEqual(Math.max(CANARY_FACTOR * base.p99Us, CANARY_FLOOR_US));
    expect.soft(now.maxUs, `canary's (${reg}) longest sample ${now.maxUs} us (baseline ${base.maxUs} us)`).toBeLessThanOrEqual(CANARY_MAX_US);
  }
  expect(rss - baseRss, 'RSS growth').toBeLessThan(64 * 2 ** 20);
  // About 10 lines a second: the transport's limiter allows 10/s with a burst of 20 and adds a
  // "suppressed" summary every 5 s, and the device model's own lines (activation, the request
  // loop) come on top, hence 12/s.
  expect(logLines, `log lines of dm${t.dm}:\n${daemon.linesOf(t.dm, t0).slice(0, 5).map((l) => l.text).join('\n')}`).toBeLessThanOrEqual(12 * Math.ceil(logWindowMs / 1000) + 20);
  expect(strayWrites(ref, fe.mem, allowed), 'writes outside the offered writable buffers').toEqual([]);
  phase('checks');
  await recover(fe, t);
  phase('recover');
  expect((await readHwrng(16)).length, 'the canary\u2019s own driver still reads entropy').toBe(16);
  phase('hwrng');
}

// ---- the cases -----------------------------------------------------------------------------

const JUNK = 0xdeadbeef_cafef00dn;

function registerSweep(): Op[] {
  const ops: Op[] = [];
  for (let off = 0; off < 0x200; off += 4) {
    for (const w of [1, 2, 4, 8]) ops.push(read(off, w));
    ops.push(read(off + 1, 4));
  }
  for (const off of [0x200, 0x1000, 0xffff0, 0x7fff_fff0]) ops.push(read(off, 4), post(off, JUNK, 4));
  for (let off = 0; off < 0x200; off += 4) {
    if (off === REG.status) continue; // status has its own cases
    for (const w of [1, 2, 4, 8]) ops.push(post(off, JUNK, w));
    ops.push(post(off + 2, JUNK, 4));
  }
  ops.push(read(REG.magic));
  return ops;
}

const writableBufs = (ctx: Ctx, n: number, len = 0x100): Desc[] =>
  Array.from({ length: n }, (_, i) => {
    ctx.allow(BUF + i * 0x1000, len);
    return { addr: ctx.fe.gpa(BUF + i * 0x1000), len, flags: ctx.t.writable ? F.WRITE : 0 };
  });

function indirectTable(ctx: Ctx, at: number, entries: readonly Desc[]): void {
  entries.forEach((d, i) => ctx.fe.setDesc(at, i, d));
}

/** Bring-up whose queue 0 uses `bad` addresses; the activation must be refused or NEEDS_RESET. */
async function badRings(ctx: Ctx, bad: RingLayout): Promise<void> {
  const layout = layoutFor(ctx.t).map((q, i) => (i === ctx.t.queue ? bad : q));
  const st = await ctx.fe.bringUp(layout);
  expect((st & S.DRIVER_OK) === 0 || (st & S.NEEDS_RESET) !== 0, `status 0x${st.toString(16)} with bad rings`).toBe(true);
  ctx.fe.kick(ctx.t.queue);
}

// ---- net: frames, metrics --------------------------------------------------------------

/** The device's counters (status socket; device ids are positions in the config, = DM ids here). */
async function deviceMetrics(dm: number): Promise<Readonly<Record<string, number>>> {
  const status = await daemon.status();
  return status.devices.find((d) => d.id === dm)?.metrics ?? {};
}
const netMetrics = (): Promise<Readonly<Record<string, number>>> => deviceMetrics(NET);

async function waitForAsync(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * A transmit buffer of `len` bytes: a virtio-net header (12 bytes, `header` over zeroes) and a
 * broadcast Ethernet frame of a local experimental EtherType (the host stack drops it).
 */
function writeFrame(mem: Uint8Array, at: number, len: number, header: Partial<{ flags: number; gsoType: number; hdrLen: number; gsoSize: number; csumStart: number; csumOffset: number }> = {}): void {
  const v = new DataView(mem.buffer, mem.byteOffset + at, len);
  mem.fill(0, at, at + len);
  v.setUint8(0, header.flags ?? 0);
  v.setUint8(1, header.gsoType ?? 0);
  v.setUint16(2, header.hdrLen ?? 0, true);
  v.setUint16(4, header.gsoSize ?? 0, true);
  v.setUint16(6, header.csumStart ?? 0, true);
  v.setUint16(8, header.csumOffset ?? 0, true);
  if (len >= 12 + 14) {
    mem.fill(0xff, at + 12, at + 18);
    mem.set([0x02, 0, 0, 0, 0, 0x99, 0x88, 0xb5], at + 18);
    for (let i = at + 26; i < at + len; i += 1) mem[i] = i & 0xff;
  }
}

/** How much each counter grew. */
function grown(before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>, keys: readonly string[]): Record<string, number> {
  return Object.fromEntries(keys.map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)]));
}

/** Frames into the tap toward the device: pings to a static neighbour behind it (no ARP needed). */
function pingBehindTap(count: number): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('taskset', ['-c', '0', 'ping', '-c', String(count), '-i', '0.2', '-W', '1', '10.77.0.2'], { stdio: 'ignore' });
    child.on('close', () => resolve());
    child.on('error', () => resolve());
  });
}

// ---- virtio-blk requests (§5.2.6): request i's header at BUF + i * 0x1000, its status at +0x10 ----

const BT = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, DISCARD: 11, WRITE_ZEROES: 13 } as const;
const BS = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;

function blkHeader(fe: InjectedFrontend, at: number, type: number, sector: bigint): void {
  fe.view.setUint32(at, type >>> 0, true);
  fe.view.setUint32(at + 4, 0, true);
  fe.view.setBigUint64(at + 8, BigInt.asUintN(64, sector), true);
}

interface BlkRequest {
  readonly type: number;
  readonly sector?: bigint;
  /** The descriptors between the header and the status. */
  readonly data?: readonly Desc[];
  readonly headerLen?: number;
  readonly headerFlags?: number;
  /** The status descriptor's flags (default WRITE). */
  readonly statusFlags?: number;
}

/** Chains `descs` at descriptor index `from` (NEXT and next set here); returns the index after them. */
function linkAt(ctx: Ctx, from: number, descs: readonly Desc[]): number {
  descs.forEach((d, j) => ctx.fe.setDesc(ctx.q.desc, from + j, { ...d, flags: (d.flags ?? 0) | (j + 1 < descs.length ? F.NEXT : 0), next: from + j + 1 }));
  return from + descs.length;
}

/** The chains of `reqs` (their status bytes allowed to change); returns their heads. */
function writeBlkRequests(ctx: Ctx, reqs: readonly BlkRequest[]): number[] {
  const { fe } = ctx;
  const heads: number[] = [];
  let d = 0;
  reqs.forEach((r, i) => {
    const at = BUF + i * 0x1000;
    blkHeader(fe, at, r.type, r.sector ?? 0n);
    fe.mem[at + 0x10] = 0xff;
    ctx.allow(at + 0x10, 1);
    heads.push(d);
    d = linkAt(ctx, d, [{ addr: fe.gpa(at), len: r.headerLen ?? 16, flags: r.headerFlags ?? 0 }, ...(r.data ?? []), { addr: fe.gpa(at + 0x10), len: 1, flags: r.statusFlags ?? F.WRITE }]);
  });
  if (d > QS) throw new Error(`${d} descriptors do not fit a ring of ${QS}`);
  return heads;
}

const blkStatus = (ctx: Ctx, i: number): number => ctx.fe.mem[BUF + i * 0x1000 + 0x10]!;

/** Offers `reqs` at once, kicks, and resolves with their status bytes once every one was used. */
async function blkRequests(ctx: Ctx, reqs: readonly BlkRequest[]): Promise<number[]> {
  const { fe, q } = ctx;
  const heads = writeBlkRequests(ctx, reqs);
  const before = fe.usedIdx(q);
  fe.offer(q, ...heads);
  ctx.arm();
  fe.kick(ctx.t.queue);
  await waitFor(() => ((fe.usedIdx(q) - before) & 0xffff) >= heads.length, 20_000, `${heads.length} block requests answered`);
  return reqs.map((_, i) => blkStatus(ctx, i));
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

const CASES: Case[] = [
  {
    name: 'register file: every offset and width, junk above the width, offsets beyond the window',
    target: 'rng',
    run: async (ctx) => {
      const out = await ctx.fe.run(registerSweep());
      expect(out.at(-1)).toBe(0x74726976n);
    },
  },
  {
    name: 'register file on the console, while live',
    target: 'console',
    run: async (ctx) => {
      const out = await ctx.fe.run(registerSweep());
      expect(out.at(-1)).toBe(0x74726976n);
    },
  },
  {
    name: 'writes in the wrong state: DRIVER_OK first, features late, NEEDS_RESET written, queue changes after DRIVER_OK',
    target: 'rng',
    live: false,
    run: async (ctx) => {
      const { fe } = ctx;
      const [early] = await fe.run([
        write(REG.status, 0),
        write(REG.status, S.DRIVER_OK),
        write(REG.status, S.FEATURES_OK),
        write(REG.queueNum, 8),
        write(REG.queueReady, 1),
        write(REG.driverFeatures, 0xffffffff),
        read(REG.status),
      ]);
      expect(Number(early) & S.DRIVER_OK).toBe(0);
      const st = await fe.bringUp(layoutFor(ctx.t));
      expect(st & S.DRIVER_OK).toBe(S.DRIVER_OK);
      const [after] = await fe.run([
        write(REG.status, st | S.NEEDS_RESET),
        write(REG.queueSel, 0),
        write(REG.queueNum, 4),
        write(REG.queueDescLow, fe.gpa(0x8000)),
        write(REG.queueReady, 0),
        write(REG.driverFeaturesSel, 0),
        write(REG.driverFeatures, 0),
        write(REG.status, S.ACK | S.DRIVER),
        read(REG.status),
      ]);
      // Writing NEEDS_RESET or going backwards neither resets nor changes a live device.
      expect(Number(after) & S.DRIVER_OK, `status 0x${Number(after).toString(16)}`).toBe(S.DRIVER_OK);
      // After FAILED, kicks are not served.
      ctx.chain(writableBufs(ctx, 1));
      await fe.run([write(REG.status, Number(after) | S.FAILED)]);
      ctx.fe.kick(0);
    },
  },
  {
    name: 'queue sizes zero, not a power of two, above the maximum',
    target: 'rng',
    live: false,
    run: async (ctx) => {
      for (const size of [0, 3, 100, 512, 65535]) {
        // Refused (the size stays the maximum, 256: its used ring is the device's to write) or
        // NEEDS_RESET: either way nothing outside the rings.
        ctx.allow(ringA(0).used, 6 + 8 * 256);
        await ctx.fe.bringUp([{ ...ringA(0), size }]);
        ctx.fe.kick(0);
      }
    },
  },
  {
    name: 'ring addresses outside the region, unaligned, straddling its end, overflowing 64 bits, overlapping',
    target: 'rng',
    live: false,
    run: async (ctx) => {
      const base = BigInt(ctx.fe.shmemAddr);
      const end = base + BigInt(REGION);
      const a = ringA(0);
      const ok = { desc: base + BigInt(a.desc), avail: base + BigInt(a.avail), used: base + BigInt(a.used) };
      await badRings(ctx, { ...a, gpa: { ...ok, desc: base - 0x10000n } });
      await badRings(ctx, { ...a, gpa: { ...ok, used: end + 0x1000n } });
      await badRings(ctx, { ...a, gpa: { ...ok, desc: ok.desc + 1n } });
      await badRings(ctx, { ...a, gpa: { ...ok, avail: end - 4n } });
      await badRings(ctx, { ...a, gpa: { ...ok, desc: 0xffff_ffff_ffff_fff0n } });
      // Overlapping rings are memory-safe: whatever the device makes of them, it stays inside.
      await ctx.fe.bringUp([{ ...a, gpa: { desc: ok.desc, avail: ok.desc, used: ok.desc } }]);
      ctx.allow(a.desc, 16 * QS);
      ctx.fe.kick(0);
    },
  },
  {
    name: 'descriptor loop',
    target: 'rng',
    run: async (ctx) => {
      const [b0, b1] = writableBufs(ctx, 2);
      ctx.chain([{ ...b0!, flags: b0!.flags! | F.NEXT, next: 1 }, { ...b1!, flags: b1!.flags! | F.NEXT, next: 0 }]);
    },
  },
  {
    name: 'next out of range, INDIRECT|NEXT, readable after writable, readable first on the rng',
    target: 'rng',
    run: async (ctx) => {
      const [b0, b1] = writableBufs(ctx, 2);
      ctx.chain([{ ...b0!, flags: F.WRITE | F.NEXT, next: 200 }]);
      await sleep(100);
      await ctx.restart();
      ctx.chain([{ addr: ctx.fe.gpa(TABLE), len: 32, flags: F.INDIRECT | F.NEXT, next: 1 }, b1!]);
      await sleep(100);
      await ctx.restart();
      ctx.chain([{ ...b0!, flags: F.WRITE | F.NEXT, next: 1 }, { ...b1!, flags: 0 }]);
      await sleep(100);
      await ctx.restart();
      ctx.chain([{ ...b0!, flags: 0 }]);
    },
  },
  {
    name: 'nested indirect, and an indirect table of 65,535 one-byte descriptors',
    target: 'rng',
    run: async (ctx) => {
      indirectTable(ctx, TABLE, [{ addr: ctx.fe.gpa(TABLE + 0x1000), len: 32, flags: F.INDIRECT }]);
      ctx.chain([{ addr: ctx.fe.gpa(TABLE), len: 16, flags: F.INDIRECT }]);
      await sleep(100);
      await ctx.restart();
      const n = 65535;
      for (let i = 0; i < n; i += 1) ctx.fe.setDesc(TABLE, i, { addr: ctx.fe.gpa(BIG + (i & 0xffff)), len: 1, flags: F.WRITE | (i + 1 < n ? F.NEXT : 0), next: i + 1 });
      ctx.allow(BIG, 0x10000);
      ctx.chain([{ addr: ctx.fe.gpa(TABLE), len: 16 * n, flags: F.INDIRECT }]);
    },
  },
  {
    name: 'huge and zero lengths, buffers outside the region',
    target: 'rng',
    run: async (ctx) => {
      ctx.allow(BUF, 0x1000);
      ctx.chain([{ addr: ctx.fe.gpa(BUF), len: 0xffffffff, flags: F.WRITE }]);
      await sleep(100);
      await ctx.restart();
      ctx.chain([{ addr: ctx.fe.gpa(BUF), len: 0, flags: F.WRITE }]);
      await sleep(100);
      await ctx.restart();
      ctx.chain([{ addr: ctx.fe.shmemAddr - 0x1000, len: 64, flags: F.WRITE }]);
      await sleep(100);
      await ctx.restart();
      ctx.chain([{ addr: 0xffff_ffff_ffff_ff00n, len: 0x200, flags: F.WRITE }]);
    },
  },
  {
    name: 'aliased buffers: a full chain of descriptors on one writable buffer',
    target: 'rng',
    run: async (ctx) => {
      ctx.allow(BUF, 0x1000);
      ctx.chain(Array.from({ length: QS }, (_, i) => ({ addr: ctx.fe.gpa(BUF), len: 0x1000, flags: F.WRITE | (i + 1 < QS ? F.NEXT : 0), next: i + 1 })));
    },
  },
  {
    name: 'avail index jumps ahead, goes back; duplicate heads',
    target: 'rng',
    run: async (ctx) => {
      const { fe, q } = ctx;
      writableBufs(ctx, QS).forEach((d, i) => fe.setDesc(q.desc, i, d));
      fe.offer(q, 0, 0, 0, 0);
      ctx.allow(q.avail, 6 + 2 * QS);
      ctx.allow(q.desc, 16 * QS);
      ctx.arm();
      fe.kick(0);
      await sleep(200);
      await ctx.restart();
      writableBufs(ctx, QS).forEach((d, i) => fe.setDesc(q.desc, i, d));
      fe.offer(q, 0, 1);
      fe.kick(0);
      await sleep(200);
      fe.setAvailIdx(q, 1); // back
      fe.kick(0);
      await sleep(100);
      fe.setAvailIdx(q, 40000); // far ahead
      fe.kick(0);
    },
  },
  {
    name: 'an endless producer: every used buffer offered again at once, for 3 s',
    target: 'rng',
    run: async (ctx) => {
      const { fe, q } = ctx;
      writableBufs(ctx, QS, 0x1000).forEach((d, i) => fe.setDesc(q.desc, i, d));
      ctx.allow(q.avail, 6 + 2 * QS);
      const from = fe.usedIdx(q);
      fe.offer(q, ...Array.from({ length: QS }, (_, i) => i));
      ctx.arm();
      fe.kick(0);
      expect(await offerUsedAgain(fe, q, { queue: 0, from, ms: 3000 }), 'buffers offered again during the flood').toBeGreaterThan(0);
    },
  },
  {
    name: 'console: aliased transmit chains claiming 16 MiB directly and 3 GiB through an indirect table',
    target: 'console',
    run: async (ctx) => {
      const { fe } = ctx;
      fe.mem.fill(0x41, BIG, BIG + 0x100000);
      ctx.chain(Array.from({ length: QS }, (_, i) => ({ addr: fe.gpa(BIG), len: 0x100000, flags: i + 1 < QS ? F.NEXT : 0, next: i + 1 })));
      await sleep(500);
      await ctx.restart();
      const n = 3072;
      for (let i = 0; i < n; i += 1) fe.setDesc(TABLE, i, { addr: fe.gpa(BIG), len: 0x100000, flags: i + 1 < n ? F.NEXT : 0, next: i + 1 });
      ctx.chain([{ addr: fe.gpa(TABLE), len: 16 * n, flags: F.INDIRECT }]);
      await sleep(500);
    },
  },
  {
    name: 'config writes to read-only fields (console size and ports, rng config space)',
    target: 'console',
    run: async (ctx) => {
      const before = await ctx.fe.run([read(REG.config, 4), read(REG.config + 4, 4)]);
      const ops: Op[] = [];
      for (let off = REG.config; off < 0x200; off += 2) for (const w of [1, 2, 4, 8]) ops.push(post(off, JUNK, w));
      await ctx.fe.run(ops);
      const after = await ctx.fe.run([read(REG.config, 4), read(REG.config + 4, 4)]);
      expect(after).toEqual(before);
    },
  },
  {
    name: 'reset while requests are in flight (console transmit)',
    target: 'console',
    run: async (ctx) => {
      const { fe, q } = ctx;
      fe.mem.fill(0x42, BIG, BIG + 0x100000);
      for (let i = 0; i < QS; i += 1) fe.setDesc(q.desc, i, { addr: fe.gpa(BIG), len: 0x100000 });
      fe.offer(q, ...Array.from({ length: QS }, (_, i) => i));
      ctx.arm();
      fe.kick(1);
      expect(await fe.reset()).toBe(0);
      const atReset = Uint8Array.from(fe.mem);
      await sleep(500);
      expect(strayWrites(atReset, fe.mem, []), 'ring writes after the driver read the reset back').toEqual([]);
    },
  },
  {
    name: 'reset while requests are in flight (rng)',
    target: 'rng',
    run: async (ctx) => {
      const { fe, q } = ctx;
      writableBufs(ctx, QS, 0x1000).forEach((d, i) => fe.setDesc(q.desc, i, d));
      fe.offer(q, ...Array.from({ length: QS }, (_, i) => i));
      ctx.arm();
      fe.kick(0);
      expect(await fe.reset()).toBe(0);
      const atReset = Uint8Array.from(fe.mem);
      await sleep(500);
      expect(strayWrites(atReset, fe.mem, []), 'ring or buffer writes after the driver read the reset back').toEqual([]);
    },
  },
  {
    name: 'kick flood: 2,000 posted kicks, valid and invalid queues',
    target: 'rng',
    run: async (ctx) => {
      ctx.chain(writableBufs(ctx, 1));
      await ctx.fe.shell('i=0; while [ $i -lt 1000 ]; do echo "kick 0x50 4 0" > $F; echo "kick 0x50 4 0x7" > $F; i=$((i+1)); done');
    },
  },
  {
    name: 'fault flood: 2,000 posted writes to read-only and unknown registers',
    target: 'rng',
    run: async (ctx) => {
      await ctx.fe.shell('i=0; while [ $i -lt 1000 ]; do echo "kick 0x0 4 0x1" > $F; echo "kick 0xfc 4 0x1" > $F; i=$((i+1)); done');
    },
  },
  {
    name: 'reset flood: 100 reset and activation cycles',
    target: 'rng',
    run: async (ctx) => {
      const setup = ctx.fe.ringAddressOps(ringA(0)).map((o) => (o.op === 'read' ? '' : `echo "kick 0x${o.off.toString(16)} 4 0x${BigInt(o.value).toString(16)}" > $F`)).join('; ');
      await ctx.fe.shell(
        `i=0; while [ $i -lt 100 ]; do echo "kick 0x70 4 0" > $F; echo "kick 0x70 4 1" > $F; echo "kick 0x70 4 3" > $F; ` +
          `echo "kick 0x24 4 1" > $F; echo "kick 0x20 4 1" > $F; echo "kick 0x70 4 0xb" > $F; echo "kick 0x30 4 0" > $F; echo "kick 0x38 4 16" > $F; ${setup}; ` +
          `echo "kick 0x44 4 1" > $F; echo "kick 0x70 4 0xf" > $F; i=$((i+1)); done`,
        60_000,
      );
    },
  },
  {
    name: 'headers shorter than 16 bytes or device-writable, a status byte that is not writable, a short GET_ID buffer',
    target: 'blk',
    run: async (ctx) => {
      const { fe } = ctx;
      ctx.allow(BIG, 4);
      const st = await blkRequests(ctx, [
        { type: BT.IN, headerLen: 8 },
        { type: BT.IN, headerFlags: F.WRITE },
        { type: BT.IN, statusFlags: 0 },
        { type: BT.GET_ID, headerLen: 15 },
        { type: BT.GET_ID, data: [{ addr: fe.gpa(BIG), len: 4, flags: F.WRITE }] },
      ]);
      // The chain without a writable status byte is returned unused, nothing written.
      expect(st).toEqual([BS.IOERR, BS.IOERR, 0xff, BS.IOERR, BS.OK]);
    },
  },
  {
    name: 'sectors past the capacity and overflowing 64 bits, lengths not a multiple of 512, an unknown type',
    target: 'blk',
    run: async (ctx) => {
      const { fe } = ctx;
      const buf = (len: number, flags: number = F.WRITE): Desc => ({ addr: fe.gpa(BIG), len, flags });
      // Nothing but the status bytes may change: rejected reads write no data.
      const st = await blkRequests(ctx, [
        { type: BT.IN, sector: BigInt(BLK_SECTORS), data: [buf(512)] },
        { type: BT.IN, sector: BigInt(BLK_SECTORS - 1), data: [buf(1024)] },
        { type: BT.OUT, sector: 0xffff_ffff_ffff_ffffn, data: [buf(512, 0)] },
        { type: BT.IN, sector: 0n, data: [buf(100)] },
        { type: 0xdead, data: [buf(512)] },
      ]);
      expect(st).toEqual([BS.IOERR, BS.IOERR, BS.IOERR, BS.IOERR, BS.UNSUPP]);
    },
  },
  {
    name: 'a read-only disk: writes, discards and write-zeroes refused, the image unchanged',
    target: 'blkro',
    run: async (ctx) => {
      const { fe } = ctx;
      const before = sha256(BLK_RO_IMAGE);
      fe.mem.fill(0x77, BIG, BIG + 0x1000);
      // One discard / write-zeroes segment: sector 0, 8 sectors, no flags.
      fe.view.setBigUint64(BIG + 0x2000, 0n, true);
      fe.view.setUint32(BIG + 0x2008, 8, true);
      fe.view.setUint32(BIG + 0x200c, 0, true);
      const st = await blkRequests(ctx, [
        { type: BT.OUT, sector: 0n, data: [{ addr: fe.gpa(BIG), len: 0x1000 }] },
        { type: BT.DISCARD, data: [{ addr: fe.gpa(BIG + 0x2000), len: 16 }] },
        { type: BT.WRITE_ZEROES, data: [{ addr: fe.gpa(BIG + 0x2000), len: 16 }] },
      ]);
      expect(st[0]).toBe(BS.IOERR);
      expect(st[1]).not.toBe(BS.OK);
      expect(st[2]).not.toBe(BS.OK);
      expect(sha256(BLK_RO_IMAGE), 'the read-only image changed').toBe(before);
    },
  },
  {
    name: 'data buffers outside the region, wrapping 64 bits, 4 GiB long, straddling its end',
    target: 'blk',
    run: async (ctx) => {
      const { fe } = ctx;
      const bad: Desc[] = [
        { addr: fe.shmemAddr - 0x1000, len: 512 },
        { addr: 0xffff_ffff_ffff_fe00n, len: 0x400 },
        { addr: fe.gpa(BIG), len: 0xffff_fe00 },
        { addr: fe.gpa(REGION - 0x100), len: 512 },
      ];
      for (const [i, d] of bad.entries()) {
        blkHeader(fe, BUF, BT.IN, 0n);
        ctx.chain([
          { addr: fe.gpa(BUF), len: 16, flags: F.NEXT, next: 1 },
          { ...d, flags: F.WRITE | F.NEXT, next: 2 },
          { addr: fe.gpa(BUF + 0x10), len: 1, flags: F.WRITE },
        ]);
        await sleep(100);
        if (i + 1 < bad.length) await ctx.restart();
      }
    },
  },
  {
    name: '4,000 data segments through an indirect table (past SEG_MAX), a 2 MiB segment (past SIZE_MAX), a full ring of aliased 64 KiB reads',
    target: 'blk',
    run: async (ctx) => {
      const { fe, q } = ctx;
      blkHeader(fe, BUF, BT.IN, 0n);
      fe.mem[BUF + 0x10] = 0xff;
      const n = 4002;
      for (let i = 0; i < n; i += 1) {
        const d: Desc = i === 0 ? { addr: fe.gpa(BUF), len: 16 } : i === n - 1 ? { addr: fe.gpa(BUF + 0x10), len: 1, flags: F.WRITE } : { addr: fe.gpa(BIG), len: 512, flags: F.WRITE };
        fe.setDesc(TABLE, i, { ...d, flags: (d.flags ?? 0) | (i + 1 < n ? F.NEXT : 0), next: i + 1 });
      }
      ctx.allow(BUF + 0x10, 1);
      ctx.chain([{ addr: fe.gpa(TABLE), len: 16 * n, flags: F.INDIRECT }]);
      // Answered IOERR without touching the data, or refused as a chain longer than the ring.
      await sleep(300);
      expect([BS.IOERR, 0xff]).toContain(blkStatus(ctx, 0));
      await ctx.restart();
      expect(await blkRequests(ctx, [{ type: BT.IN, data: [{ addr: fe.gpa(BIG), len: 0x200000, flags: F.WRITE }] }])).toEqual([BS.IOERR]);
      await ctx.restart();
      // Header, 14 x 64 KiB into one buffer, status: a valid 896 KiB read, memory-safe in any order.
      ctx.allow(BIG, 0x10000);
      const st = await blkRequests(ctx, [{ type: BT.IN, data: Array.from({ length: QS - 2 }, () => ({ addr: fe.gpa(BIG), len: 0x10000, flags: F.WRITE })) }]);
      expect(st).toEqual([BS.OK]);
      expect(fe.usedIdx(q)).toBeGreaterThan(0);
    },
  },
  {
    name: 'a flood of flushes and reads: every completion offered again at once, for 3 s',
    target: 'blk',
    run: async (ctx) => {
      const { fe, q } = ctx;
      const reqs: BlkRequest[] = Array.from({ length: 6 }, (_, i) =>
        i % 2 === 0 ? { type: BT.FLUSH } : { type: BT.IN, sector: BigInt(i * 8), data: [{ addr: fe.gpa(BIG + i * 0x1000), len: 0x1000, flags: F.WRITE }] },
      );
      ctx.allow(BIG, 0x10000);
      ctx.allow(q.avail, 6 + 2 * QS);
      const heads = writeBlkRequests(ctx, reqs);
      const from = fe.usedIdx(q);
      fe.offer(q, ...heads);
      ctx.arm();
      fe.kick(0);
      expect(await offerUsedAgain(fe, q, { queue: 0, from, ms: 3000 }), 'requests served during the flood').toBeGreaterThan(0);
    },
  },
  {
    name: 'reset while 1 MiB reads are in flight',
    target: 'blk',
    run: async (ctx) => {
      const { fe, q } = ctx;
      const reqs: BlkRequest[] = Array.from({ length: 5 }, () => ({ type: BT.IN, data: [{ addr: fe.gpa(BIG), len: 0x100000, flags: F.WRITE }] }));
      ctx.allow(BIG, 0x100000);
      fe.offer(q, ...writeBlkRequests(ctx, reqs));
      ctx.arm();
      fe.kick(0);
      expect(await fe.reset()).toBe(0);
      const atReset = Uint8Array.from(fe.mem);
      await sleep(500);
      expect(strayWrites(atReset, fe.mem, []), 'data, status or ring writes after the driver read the reset back').toEqual([]);
    },
  },
  {
    name: 'transmit: a frame larger than the MTU allows, headers shorter than negotiated (whole and split), offloads not offered, a writable part, a segmentation request the kernel refuses; then a good frame',
    target: 'net',
    run: async (ctx) => {
      const { fe, q } = ctx;
      const before = await netMetrics();
      let d = 0;
      const heads: number[] = [];
      const one = (descs: Desc[]): void => {
        heads.push(d);
        descs.forEach((x, i) => fe.setDesc(q.desc, d + i, { ...x, flags: (x.flags ?? 0) | (i + 1 < descs.length ? F.NEXT : 0), next: d + i + 1 }));
        d += descs.length;
      };
      const at = (i: number): number => BUF + i * 0x1000;
      writeFrame(fe.mem, BIG, 0x20000); // 128 KiB: beyond the 64 KiB + headers a TSO frame may be
      one([{ addr: fe.gpa(BIG), len: 0x20000 }]);
      writeFrame(fe.mem, at(0), 10);
      one([{ addr: fe.gpa(at(0)), len: 10 }]); // 10 of the 12 header bytes
      writeFrame(fe.mem, at(1), 11);
      one([{ addr: fe.gpa(at(1)), len: 6 }, { addr: fe.gpa(at(1) + 6), len: 5 }]); // 11, split
      writeFrame(fe.mem, at(2), 64, { gsoType: 3, gsoSize: 1000, hdrLen: 42 }); // UDP fragmentation: not offered
      one([{ addr: fe.gpa(at(2)), len: 64 }]);
      writeFrame(fe.mem, at(3), 64, { flags: 0x04 }); // a flag no version defines for transmit
      one([{ addr: fe.gpa(at(3)), len: 64 }]);
      writeFrame(fe.mem, at(4), 64);
      ctx.allow(at(5), 0x100);
      one([{ addr: fe.gpa(at(4)), len: 64 }, { addr: fe.gpa(at(5)), len: 0x100, flags: F.WRITE }]);
      writeFrame(fe.mem, at(6), 64, { flags: 1, gsoType: 1, gsoSize: 0, hdrLen: 0xffff, csumStart: 0xfff0, csumOffset: 0xfff0 }); // TSO the kernel must refuse
      one([{ addr: fe.gpa(at(6)), len: 64 }]);
      writeFrame(fe.mem, at(7), 64);
      one([{ addr: fe.gpa(at(7)), len: 64 }]); // good
      fe.offer(q, ...heads);
      ctx.arm();
      fe.kick(1);
      await waitFor(() => fe.usedIdx(q) === heads.length, 10_000, 'every transmit chain returned');
      const g = grown(before, await netMetrics(), ['txOversize', 'txShortHeader', 'txBadOffload', 'txChainsWithWritable', 'txFrames', 'txTapErrors']);
      expect(g, JSON.stringify(g)).toMatchObject({ txOversize: 1, txShortHeader: 2, txBadOffload: 2, txChainsWithWritable: 1 });
      // The refused TSO request is the kernel's to judge (EINVAL: counted); the good frame went out.
      expect(g.txFrames! + g.txTapErrors!).toBe(2);
      expect(g.txFrames).toBeGreaterThanOrEqual(1);
    },
  },
  {
    name: 'receive: chains with no writable part, with readable parts, too small for the header; the queue goes on and the next frame lands whole',
    target: 'net',
    run: async (ctx) => {
      const { fe } = ctx;
      const rq = ringA(0);
      const before = await netMetrics();
      fe.setDesc(rq.desc, 0, { addr: fe.gpa(BUF), len: 0x800 }); // readable only
      ctx.allow(BUF + 0x1000, 4);
      fe.setDesc(rq.desc, 1, { addr: fe.gpa(BUF + 0x1000), len: 4, flags: F.WRITE }); // no room for the header
      ctx.allow(BUF + 0x3000, 0x800);
      fe.setDesc(rq.desc, 2, { addr: fe.gpa(BUF + 0x2000), len: 0x100, flags: F.NEXT, next: 3 });
      fe.setDesc(rq.desc, 3, { addr: fe.gpa(BUF + 0x3000), len: 0x800, flags: F.WRITE }); // readable part first
      fe.offer(rq, 0, 1, 2);
      ctx.allow(rq.avail, 6 + 2 * QS);
      ctx.allow(rq.desc, 16 * QS);
      ctx.arm();
      fe.kick(0);
      // The device looks at receive buffers when a frame waits: send some until all three are back.
      const deadline = Date.now() + 30_000;
      while (fe.usedIdx(rq) < 3 && Date.now() < deadline) await pingBehindTap(2);
      expect(fe.usedIdx(rq), 'the three bad receive chains returned').toBe(3);
      // With MRG_RXBUF and TSO the device holds buffers for a 64 KiB frame before it reads one:
      // 16 chains of 4,352 bytes (0x1100).
      const GOOD = 0x20000;
      for (let i = 0; i < QS; i += 1) {
        fe.setDesc(rq.desc, i, { addr: fe.gpa(GOOD + i * 0x2000), len: 0x1100, flags: F.WRITE });
        ctx.allow(GOOD + i * 0x2000, 0x1100);
      }
      fe.offer(rq, ...Array.from({ length: QS }, (_, i) => i));
      fe.kick(0);
      const deadline2 = Date.now() + 30_000;
      while (fe.usedIdx(rq) < 4 && Date.now() < deadline2) await pingBehindTap(2);
      expect(fe.usedIdx(rq), 'a frame received after the bad chains').toBeGreaterThanOrEqual(4);
      const id = fe.view.getUint32(rq.used + 4 + 8 * 3, true);
      const len = fe.view.getUint32(rq.used + 4 + 8 * 3 + 4, true);
      const buf = GOOD + id * 0x2000;
      expect(fe.view.getUint16(buf + 10, true), 'num_buffers').toBe(1);
      expect(len).toBeGreaterThanOrEqual(12 + 14);
      expect(Array.from(fe.mem.subarray(buf + 12, buf + 18)).map((b) => b.toString(16).padStart(2, '0')).join(':'), 'the frame is for the device').toBe(NET_MAC);
      const g = grown(before, await netMetrics(), ['rxChainsWithReadable', 'rxChainsWithoutWritable', 'rxFrames']);
      expect(g, JSON.stringify(g)).toMatchObject({ rxChainsWithReadable: 2, rxChainsWithoutWritable: 1 });
      expect(g.rxFrames).toBeGreaterThanOrEqual(1);
    },
  },
  {
    name: 'control queue: commands short, unknown, of the wrong size, lying about their length, too long, without room for the ack; then a good one',
    target: 'net',
    run: async (ctx) => {
      const { fe } = ctx;
      const cq = ringA(2);
      let d = 0;
      let data = BUF;
      const acks: number[] = [];
      const heads: number[] = [];
      const command = (bytes: readonly number[] | Uint8Array, withAck = true): void => {
        heads.push(d);
        fe.mem.set(bytes, data);
        fe.setDesc(cq.desc, d, { addr: fe.gpa(data), len: bytes.length, flags: withAck ? F.NEXT : 0, next: d + 1 });
        data += Math.max(0x100, (bytes.length + 0xff) & ~0xff);
        d += 1;
        if (withAck) {
          ctx.allow(data, 1);
          acks.push(data);
          fe.setDesc(cq.desc, d, { addr: fe.gpa(data), len: 1, flags: F.WRITE });
          data += 0x100;
          d += 1;
        } else acks.push(-1);
      };
      command([0]); // shorter than class and command
      command([0x7f, 0]); // unknown class
      command([1, 1, 2, 0, 0, 0, 0]); // MAC_ADDR_SET with 5 bytes
      command([1, 0, 0, 0, 0, 0x40, 0, 0, 0, 0]); // MAC_TABLE_SET claiming 2^30 entries
      command([0, 0, 1], false); // RX_PROMISC with no ack buffer
      command([4, 0, 2, 0]); // VQ_PAIRS_SET without MQ
      const long = new Uint8Array(0x11000);
      long.set([1, 0]);
      command(long); // 68 KiB: longer than any command
      command([0, 0, 1]); // good: promiscuous on
      fe.offer(cq, ...heads);
      ctx.arm();
      fe.kick(2);
      await waitFor(() => fe.usedIdx(cq) === heads.length, 10_000, 'every control command answered');
      const got = acks.map((a) => (a < 0 ? -1 : fe.mem[a]!));
      expect(got).toEqual([1, 1, 1, 1, -1, 1, 1, 0]);
    },
  },
  {
    name: 'transmit flood: every used chain offered again at once for 3 s (1,514-byte frames), then a reset with chains in flight',
    target: 'net',
    run: async (ctx) => {
      const { fe, q } = ctx;
      const before = await netMetrics();
      for (let i = 0; i < QS; i += 1) {
        writeFrame(fe.mem, BUF + i * 0x1000, 12 + 1514);
        fe.setDesc(q.desc, i, { addr: fe.gpa(BUF + i * 0x1000), len: 12 + 1514 });
      }
      ctx.allow(q.avail, 6 + 2 * QS);
      const from = fe.usedIdx(q);
      fe.offer(q, ...Array.from({ length: QS }, (_, i) => i));
      ctx.arm();
      fe.kick(1);
      await offerUsedAgain(fe, q, { queue: 1, from, ms: 3000 });
      expect(await fe.reset()).toBe(0);
      const atReset = Uint8Array.from(fe.mem);
      await sleep(300);
      expect(strayWrites(atReset, fe.mem, []), 'ring writes after the driver read the reset back').toEqual([]);
      const g = grown(before, await netMetrics(), ['txFrames', 'txTapFull', 'txTapErrors']);
      console.log(`net transmit flood: ${JSON.stringify(g)}`);
      expect(g.txFrames).toBeGreaterThan(QS);
    },
  },
];

describe.skipIf(skip !== undefined)('hostile frontends against one baoctl run', () => {
  beforeAll(async () => {
    // This test process plays the frontends: its threads belong on the frontend CPU, as the
    // shells it starts are, or its own JIT, GC and output handling take the backend CPU from the
    // daemon and the control and are counted as the daemon's latency (on Bao the two sides are
    // different VMs). The vitest process that started it (its reporter) too.
    for (const pid of [process.pid, process.ppid]) execFileSync('taskset', ['-a', '-p', '-c', '0', String(pid)], { stdio: 'ignore' });
    execFileSync('modprobe', ['virtio_rng']);
    // Scheduler statistics (wait_max per thread): where a case's canary tail is the daemon's
    // JavaScript thread waiting for the CPU rather than busy. Off by default in Debian's kernel.
    if (fs.existsSync('/proc/sys/kernel/sched_schedstats')) fs.writeFileSync('/proc/sys/kernel/sched_schedstats', '1');
    execFileSync('modprobe', ['tun']);
    loadBaoSim({ ndms: 7, frontends: [CANARY], shmem_size: `0x${REGION.toString(16)}` });
    control = await startControl();
    // The disks: 1 MiB images in the guest's tmpfs, a pattern in each.
    for (const img of [BLK_IMAGE, BLK_RO_IMAGE]) fs.writeFileSync(img, Buffer.from(Array.from({ length: BLK_BYTES }, (_, i) => (i * 7 + (i >>> 9)) & 0xff)));
    for (const p of [STATUS_SOCKET, CONSOLE_SOCKET]) fs.rmSync(p, { force: true });
    const entry = (id: number, type: string, extra: string[] = []) => [`  - id: ${id}`, `    type: ${type}`, `    mmio_addr: ${dmInfo(id).mmio_base}`, '    data_plane: virtio', ...extra];
    fs.writeFileSync(
      CONFIG,
      [
        'devices:',
        ...entry(CANARY, 'rng'),
        ...entry(RNG, 'rng'),
        ...entry(CONSOLE, 'console', ['    backend: socket', `    socket_path: ${CONSOLE_SOCKET}`]),
        ...entry(BLK, 'block', [`    file_path: ${BLK_IMAGE}`, '    serial: hostile-blk', '    engine: io_uring', '    discard: true']),
        ...entry(BLK_RO, 'block', [`    file_path: ${BLK_RO_IMAGE}`, '    read_only: true', '    serial: hostile-blk-ro', '    engine: thread-pool']),
        ...entry(NET, 'net', [`    tap_name: ${NET_TAP}`, '    create_tap: true', `    mac_addr: "${NET_MAC}"`]),
        '',
      ].join('\n'),
    );
    if (CPU_PROFILE_DIR !== undefined) fs.rmSync(CPU_PROFILE_DIR, { recursive: true, force: true });
    daemon = new RunningDaemon(CONFIG, STATUS_SOCKET, CPU_PROFILE_DIR);
    await waitFor(rngReady, 240_000, 'virtio_rng on the canary (node starts slowly under TCG)').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${daemon.output()}`);
    });
    await waitFor(() => fs.existsSync(STATUS_SOCKET), 60_000, 'the status socket');
    // The net device's tap, up, with no IPv6 (nothing of its own is sent into it) and a static
    // neighbour 10.77.0.2 behind it at the device's MAC: pings from here are frames toward the device.
    const v6 = `/proc/sys/net/ipv6/conf/${NET_TAP}/disable_ipv6`;
    if (fs.existsSync(v6)) fs.writeFileSync(v6, '1');
    execFileSync(IP, ['addr', 'add', '10.77.0.1/24', 'dev', NET_TAP]);
    execFileSync(IP, ['neigh', 'replace', '10.77.0.2', 'lladdr', NET_MAC, 'dev', NET_TAP]);
    execFileSync(IP, ['link', 'set', NET_TAP, 'up']);
    for (const dm of [RNG, CONSOLE, BLK, BLK_RO, NET]) frontends.set(dm, new InjectedFrontend(dm));
    await readHwrng(16);
    // The baseline is taken while the other frontend makes well-behaved register accesses at
    // full speed from the same CPU as the abuse will: what is measured against it is the cost
    // of hostility, not that of sharing the frontend CPU (under TCG the two are of one size).
    // It runs for as long as the baseline is measured (until its flag file goes), however fast
    // the accesses are.
    const BENIGN = '/tmp/node-bao-hostile-benign';
    fs.writeFileSync(BENIGN, '');
    const benign = frontends.get(RNG)!.shell(`while [ -e ${BENIGN} ]; do exec 3<>$F; echo "read 0 4" >&3; read -r v <&3; exec 3>&-; done`, 120_000);
    const baselineFrom = Date.now();
    baseline = await measure(CANARY, 3000, 300, CONTROL);
    baselineGc = daemon.gcBetween(baselineFrom, Date.now());
    fs.rmSync(BENIGN);
    await benign;
    baseRss = (await daemon.status()).process?.rssBytes ?? 0;
  }, 330_000);

  afterAll(async () => {
    console.log(`canary baseline: ${JSON.stringify(baseline)}, RSS ${Math.round(baseRss / 2 ** 20)} MB, gc ${JSON.stringify(baselineGc)}`);
    for (const f of figures) console.log(`hostile: ${JSON.stringify(f)}`);
    for (const fe of frontends.values()) fe.close();
    if (daemon !== undefined) {
      const code = await daemon.stop().catch((err: unknown) => String(err));
      console.log(`daemon exit: ${String(code)}`);
      if (CPU_PROFILE_DIR !== undefined) printLongTasks(CPU_PROFILE_DIR);
    }
    if (control !== undefined) {
      control.kill('SIGTERM');
      await new Promise((r) => control!.once('close', r));
    }
    unloadBaoSim();
    for (const img of [BLK_IMAGE, BLK_RO_IMAGE]) fs.rmSync(img, { force: true });
    if (fs.existsSync('/proc/sys/kernel/sched_schedstats')) fs.writeFileSync('/proc/sys/kernel/sched_schedstats', '0');
  }, 60_000);

  for (const c of CASES) {
    it(`${c.target}: ${c.name}`, () => runCase(c), 300_000);
  }

  it('stops cleanly afterwards (SIGTERM, exit 0)', async () => {
    expect(await daemon.stop(), daemon.output()).toBe(0);
  }, 30_000);
});
