// What the vhost QEMU tests share: processes on the backend CPU whose output is kept, waits on
// what a process says (failing at once when it exits), and frontend-side commands with a
// deadline that never wait for a process stuck in the kernel (a driver waiting forever on its
// device must fail the test, not hold the guest until its watchdog).

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

import { dmesg } from './bao-sim.js';

export const BACKEND_CPU = '1';
export const FRONTEND_CPU = '0';

/** Starting node and the daemon under TCG on a loaded host can take a minute or more. */
export const DAEMON_START_MS = 240_000;

export interface Proc {
  readonly child: ChildProcess;
  stdout(): Buffer;
  output(): string;
  readonly exited: Promise<number | null>;
}

/** Runs `argv` on the backend CPU, keeping its stdout (bytes) and all of its output (text). */
export function startBackend(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn('taskset', ['-c', BACKEND_CPU, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const out: Buffer[] = [];
  let all = '';
  child.stdout?.on('data', (d: Buffer) => {
    out.push(d);
    all += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => (all += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal === null ? null : -1))));
  return { child, stdout: () => Buffer.concat(out), output: () => all, exited };
}

export function running(p: Proc | undefined): boolean {
  return p !== undefined && p.child.exitCode === null && p.child.signalCode === null;
}

/** Stops `p` with `signal`; its exit code. SIGKILL after `ms` and an error naming its output. */
export async function stopProc(p: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM', ms = 60_000): Promise<number | null> {
  if (p === undefined || !running(p)) return p?.child.exitCode ?? null;
  p.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  const code = await Promise.race([p.exited, timeout]);
  clearTimeout(timer);
  if (code === 'timeout') {
    p.child.kill('SIGKILL');
    throw new Error(`did not stop on ${signal} within ${ms} ms:\n${tail(p.output())}`);
  }
  return code;
}

/** Waits until `p` has said `text` (or `check` holds); fails at once if it exits first. */
export async function waitForOutput(p: Proc, text: string, ms: number, what = `"${text}"`): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (p.output().includes(text)) return;
    if (!running(p)) throw new Error(`exited (${String(p.child.exitCode ?? p.child.signalCode)}) before saying ${what}:\n${tail(p.output())}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; it said:\n${tail(p.output())}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls `check` until true; fails after `ms`, or at once if `p` (the daemon) exits. */
export async function waitWhile(p: Proc | undefined, check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (check()) return;
    if (p !== undefined && !running(p)) throw new Error(`exited while waiting for ${what}:\n${tail(p.output())}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${p === undefined ? '' : `; the daemon said:\n${tail(p.output())}`}\nkernel log:\n${kernelTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `baoctl run <config>` on the backend CPU, resolved once it serves `devices` device(s). */
export async function startDaemon(config: string, devices = 1): Promise<Proc> {
  const d = startBackend([process.execPath, 'bin/baoctl', 'run', config, '--log-format', 'json', '--log-level', 'debug']);
  await waitForOutput(d, `serving ${devices} device(s)`, DAEMON_START_MS, 'the daemon to serve');
  return d;
}

let stuck: string | undefined;
/** A frontend command that never finished (a task blocked in a driver), if any: unloading bao-sim would block behind it. */
export function stuckFrontend(): string | undefined {
  return stuck;
}

/**
 * A shell command run as the frontend VM (its CPU), with a deadline. Its stdout; a non-zero
 * exit or the deadline fails. At the deadline the command is killed and not waited for: a
 * task blocked in a driver cannot die, and the test must not block with it.
 */
export function frontend(script: string, ms = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', FRONTEND_CPU, 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      stuck = script;
      reject(new Error(`frontend: '${script}' did not finish within ${ms} ms (blocked in the kernel?)\nkernel log:\n${kernelTail()}`));
    }, ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`frontend: '${script}' exited ${String(code)}: ${err}\nkernel log:\n${kernelTail()}`));
    });
  });
}

export function kernelTail(lines = 25): string {
  try {
    return dmesg().split('\n').slice(-lines).join('\n');
  } catch {
    return '(dmesg failed)';
  }
}

export function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** The virtio device (virtioN) of device ID `deviceId`, if one is registered. */
export function virtioDevice(deviceId: number): string | undefined {
  const root = '/sys/bus/virtio/devices';
  return fs.readdirSync(root).find((d) => {
    try {
      return Number(fs.readFileSync(`${root}/${d}/device`, 'utf8').trim()) === deviceId;
    } catch {
      return false;
    }
  });
}

/**
 * Bound to `driver` and live: the driver link appears before probe() runs (the kernel adds it
 * first), so DRIVER_OK must be set too.
 */
export function boundTo(driver: string, dev: string): boolean {
  if (!fs.existsSync(`/sys/bus/virtio/drivers/${driver}/${dev}`)) return false;
  try {
    return (Number(fs.readFileSync(`/sys/bus/virtio/devices/${dev}/status`, 'utf8').trim()) & 4) !== 0;
  } catch {
    return false;
  }
}

/** The driver's reset of `dev`: unbind, bind, and wait until it is live again. */
export async function rebind(driver: string, dev: string, daemon: Proc | undefined): Promise<void> {
  await frontend(`echo ${dev} > /sys/bus/virtio/drivers/${driver}/unbind`);
  await frontend(`echo ${dev} > /sys/bus/virtio/drivers/${driver}/bind`);
  await waitWhile(daemon, () => boundTo(driver, dev), 120_000, `${driver} to bind ${dev} again`);
}

/** The `metrics` of the daemon's JSON log line `msg` (a device's last words at close). */
export function closedMetrics(p: Proc, msg: string): Record<string, unknown> {
  for (const line of p.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const rec = JSON.parse(line) as { msg?: string; metrics?: Record<string, unknown> };
      if (rec.msg === msg && rec.metrics !== undefined) return rec.metrics;
    } catch {
      // not a log line
    }
  }
  throw new Error(`the daemon did not log '${msg}':\n${tail(p.output())}`);
}
