// The bao-sim kernel module from inside the guest: (re)loading it with parameters, reading its
// debugfs files and playing a frontend through them (qemu/bao-sim/README.md). Only meaningful in
// the Bao-equivalent guest booted by qemu/run-tests.sh; `guestSkipReason` says why not elsewhere.

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

export const DEBUGFS = '/sys/kernel/debug/bao-sim';
const MODULE = 'bao_sim';

/** Undefined inside the guest; otherwise the reason every QEMU test is skipped. */
export const guestSkipReason: string | undefined = fs.existsSync(`/lib/modules/${os.release()}/extra/${MODULE}.ko`)
  ? undefined
  : 'bao_sim.ko is not installed here: the QEMU tests run inside the guest (npm run test:qemu)';

if (guestSkipReason !== undefined) console.warn(`skipped: ${guestSkipReason}`);

export type ModuleParams = Record<string, string | number | readonly number[]>;

export function isLoaded(): boolean {
  return fs.existsSync(`/sys/module/${MODULE}`);
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Who holds bao-sim: processes with one of its files open (dispatcher, DM fds, debugfs) or a DM
 * region mapped, and the module's reference count. For the message when it cannot be unloaded.
 */
export function baoSimHolders(): string {
  const found: string[] = [];
  let refcnt = '?';
  try {
    refcnt = fs.readFileSync(`/sys/module/${MODULE}/refcnt`, 'utf8').trim();
  } catch {
    // not loaded
  }
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const comm = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 120);
      const fds: string[] = [];
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (/bao/.test(target)) fds.push(`${fd}->${target}`);
      }
      const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => /bao/.test(l)).length;
      if (fds.length > 0 || maps > 0) found.push(`pid ${pid} (${comm}): ${fds.join(', ')}${maps > 0 ? ` ${maps} bao mappings` : ''}; state ${fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2]}`);
    } catch {
      // gone, or a kernel thread
    }
  }
  return `bao_sim refcnt ${refcnt}; holders: ${found.length === 0 ? 'none found' : found.join(' | ')}`;
}

/** rmmod, retrying while a previous test process still holds a DM fd (EBUSY) for up to 10 s. */
export function unloadBaoSim(): void {
  const deadline = Date.now() + 10_000;
  while (isLoaded()) {
    try {
      execFileSync('rmmod', [MODULE], { stdio: 'pipe' });
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${String(e)}\n${baoSimHolders()}`, { cause: e });
      sleepMs(100);
    }
  }
}

/** Unload if loaded, then modprobe with `params` (arrays become comma lists). */
export function loadBaoSim(params: ModuleParams = {}): void {
  unloadBaoSim();
  const args = Object.entries(params).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`);
  execFileSync('modprobe', [MODULE, ...args], { stdio: 'pipe' });
}

function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

/** dm<N>/info: id, mmio_base, shmem_addr, shmem_size, irq, frontend (state). */
export function dmInfo(dm: number): Record<string, string> {
  return parseKeyValues(fs.readFileSync(`${DEBUGFS}/dm${dm}/info`, 'utf8'));
}

const STAT_NAMES = [
  'requests',
  'completions',
  'complete_errors',
  'attached',
  'irqfd_notifications',
  'ioeventfd_signals',
  'ioeventfd_swallowed',
  'fe_interrupts',
  'aborted',
  'dropped',
  'queued',
  'inflight',
  'ioeventfds',
  'irqfds',
] as const;
export type DmStats = Record<(typeof STAT_NAMES)[number], number>;

/** dm<N>/stats as numbers (a counter the module does not print reads as NaN). */
export function dmStats(dm: number): DmStats {
  const kv = parseKeyValues(fs.readFileSync(`${DEBUGFS}/dm${dm}/stats`, 'utf8'));
  const out = {} as DmStats;
  for (const k of STAT_NAMES) out[k] = Number(kv[k] ?? NaN);
  return out;
}

/** bao-sim/ipc: per side writes and notifications received. */
export function ipcStats(): { writes: number[]; notified: number[]; regionSize: number } {
  const text = fs.readFileSync(`${DEBUGFS}/ipc`, 'utf8');
  const writes: number[] = [];
  const notified: number[] = [];
  for (const m of text.matchAll(/^baoipc(\d) .* writes (\d+) notified (\d+)$/gm)) {
    writes[Number(m[1])] = Number(m[2]);
    notified[Number(m[1])] = Number(m[3]);
  }
  const size = /^region_size (0x[0-9a-f]+)$/m.exec(text)?.[1] ?? '0';
  return { writes, notified, regionSize: Number(size) };
}

/**
 * A frontend register access through debugfs, as a vCPU would make it: resolves with the value
 * the backend completed it with (all-ones if aborted). Runs in a child shell because the write
 * blocks until a backend answers (the test's own event loop must stay free to answer it).
 */
export function frontendAccess(
  dm: number,
  op: 'read' | 'write',
  offset: number,
  width: number,
  value: bigint | number = 0,
): Promise<bigint> {
  const cmd = op === 'read' ? `read ${offset} ${width}` : `write ${offset} ${width} 0x${BigInt(value).toString(16)}`;
  const script = `exec 3<>${DEBUGFS}/dm${dm}/access && echo "${cmd}" >&3 && cat <&3`;
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      if (code === 0 && /^0x[0-9a-f]+/.test(out.trim())) resolve(BigInt(out.trim()));
      else reject(new Error(`frontend ${cmd} on dm${dm} failed (${code}): ${err.trim()}`));
    });
  });
}

/** A posted frontend store (like a QueueNotify kick): returns once queued, never waits. */
export function frontendKick(dm: number, offset: number, width: number, value: bigint | number): void {
  fs.writeFileSync(`${DEBUGFS}/dm${dm}/access`, `kick ${offset} ${width} 0x${BigInt(value).toString(16)}`);
}

/** dm<N>/bench: `count` READ round trips at `offset`; ns statistics. */
export function benchRoundTrips(dm: number, count: number, offset = 0): Promise<{ count: number; min: number; avg: number; max: number }> {
  const script = `exec 3<>${DEBUGFS}/dm${dm}/bench && echo "${count} ${offset}" >&3 && cat <&3`;
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => {
      const kv = parseKeyValues(out);
      if (code !== 0 || kv.count === undefined) reject(new Error(`bench failed (${code}): ${out}`));
      else resolve({ count: Number(kv.count), min: Number(kv.min_ns), avg: Number(kv.avg_ns), max: Number(kv.max_ns) });
    });
  });
}

export function dmesg(): string {
  return execFileSync('dmesg', { encoding: 'utf8' });
}

/** Poll `check` every 50 ms until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface AttachOnceResult {
  ret: number;
  errno: number;
  ms: number;
  request: { dmId: number; addr: number; op: number; value: string; accessWidth: number; requestId: number };
}

/**
 * One raw ATTACH in a separate process (qemu/tools/bao-attach-once), interrupted by SIGALRM after
 * `alarmMs`: the addon's AttachLoop retries EFAULT by design, so the errno of a single ATTACH
 * is observed here. `ready` resolves just before the process enters the ioctl.
 */
export function attachOnce(dm: number, alarmMs: number): { ready: Promise<void>; result: Promise<AttachOnceResult> } {
  const child = spawn('bao-attach-once', [String(dm), String(alarmMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let markReady: () => void = () => {};
  const ready = new Promise<void>((r) => (markReady = r));
  const result = new Promise<AttachOnceResult>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"ready"')) markReady();
    });
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{"ret"'));
      if (code === 0 && line !== undefined) resolve(JSON.parse(line) as AttachOnceResult);
      else reject(new Error(`bao-attach-once exited ${code}: ${out}`));
    });
  });
  return { ready, result };
}
