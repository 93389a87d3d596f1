// Guest-side helpers of the restart tests: the daemon under test (`baoctl run`/`restart` as a
// child, pinned to the backend CPU), its status over the status socket, and the frontend (the
// guest's own virtio_rng driver, read from the frontend CPU).

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';

export const DRIVER = '/sys/bus/virtio/drivers/virtio_rng';

/** `taskset -c 1 node bin/baoctl <args>`: the backend CPU, as in the other daemon tests. */
export function baoctlCommand(args: readonly string[]): string[] {
  return ['taskset', '-c', '1', process.execPath, 'bin/baoctl', ...args];
}

export interface Daemon {
  readonly child: ChildProcess;
  readonly exited: Promise<number | string>;
  output(): string;
}

export function spawnDaemon(args: readonly string[]): Daemon {
  const [cmd, ...rest] = baoctlCommand(args);
  const child = spawn(cmd!, rest, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-16_000)));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code ?? -1)));
  return { child, exited, output: () => err };
}

export interface DmStatus {
  server: { ioeventfdKicks: number; watchdogFinds: number; keptKernelObjects?: number; requests: number };
  transport: { missedKicks: number };
  status: string;
}

/** GET /status on the status socket; undefined while nobody serves there. */
export function daemonStatus(socketPath: string): Promise<{ pid: number; state: string; devices: { deviceModel?: DmStatus }[] } | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/status', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as never);
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => {
      req.destroy();
      resolve(undefined);
    });
  });
}

export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function rngDevice(): string | undefined {
  const root = '/sys/bus/virtio/devices';
  return fs.readdirSync(root).find((d) => fs.readFileSync(`${root}/${d}/device`, 'utf8').trim() === '0x0004');
}

export function rngAvailable(): boolean {
  return fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').includes('virtio_rng');
}

/** Reads `count` bytes of /dev/hwrng from the frontend CPU; what arrived within `timeoutMs`. */
export function readHwrng(count: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('taskset', ['-c', '0', 'dd', 'if=/dev/hwrng', `bs=${count}`, 'count=1', 'iflag=fullblock', 'status=none'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let n = 0;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => (n += d.length));
    child.on('close', () => {
      clearTimeout(timer);
      resolve(n);
    });
  });
}

/** Continuous frontend load: one reader of /dev/hwrng after another; returns the stop call. */
export function startLoad(): () => void {
  const child = spawn('taskset', ['-c', '0', 'sh', '-c', 'while :; do dd if=/dev/hwrng bs=64 count=4 status=none; done > /dev/null'], { stdio: 'ignore' });
  return () => child.kill('SIGKILL');
}

/** A sysfs write run apart (it blocks for good if a frontend access is never completed), bounded. */
function sysfsWrite(path: string, text: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `echo ${text} > ${path}`], { stdio: 'ignore' });
    const timer = setTimeout(() => {
      child.unref();
      reject(new Error(`writing ${text} to ${path} did not return within ${timeoutMs} ms (a frontend vCPU is paused)`));
    }, timeoutMs);
    child.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Unbind and bind the frontend's virtio_rng driver: the device is reset and activated again. */
export async function resetFrontend(): Promise<void> {
  const dev = rngDevice();
  if (dev === undefined) throw new Error('no virtio-rng device in the frontend');
  if (fs.existsSync(`${DRIVER}/${dev}`)) await sysfsWrite(`${DRIVER}/unbind`, dev, 60_000);
  await sysfsWrite(`${DRIVER}/bind`, dev, 60_000);
}
