// `baoctl run` as a child process of a QEMU test, pinned to the backend CPU as in daemon.test.ts,
// with its output kept, and a hwrng reader on the frontend CPU.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

export const BACKEND_CPU = '1';
export const FRONTEND_CPU = '0';
export const cpuSkipReason = os.cpus().length < 2 ? `the guest has ${os.cpus().length} CPU; these tests play frontend and backend on two CPUs` : undefined;

export interface DaemonProcess {
  readonly child: ChildProcess;
  output(): string;
  /** The JSON log lines so far. */
  lines(): Record<string, unknown>[];
  readonly exited: Promise<number | null>;
}

export function startDaemon(config: string, extra: readonly string[] = []): DaemonProcess {
  const child = spawn('taskset', ['-c', BACKEND_CPU, process.execPath, 'bin/baoctl', 'run', config, '--log-format', 'json', '--log-level', 'debug', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines = (): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  return { child, output: () => out, lines, exited };
}

export async function stopDaemon(daemon: DaemonProcess | undefined): Promise<number | null> {
  if (daemon === undefined || daemon.child.exitCode !== null) return daemon?.child.exitCode ?? null;
  daemon.child.kill('SIGTERM');
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000));
  const code = await Promise.race([daemon.exited, timeout]);
  if (code === 'timeout') {
    daemon.child.kill('SIGKILL');
    throw new Error(`the daemon did not stop on SIGTERM:\n${daemon.output()}`);
  }
  return code;
}

/** `count` bytes of /dev/hwrng, read from the frontend CPU in a child (a blocking read must not stall the test). */
export function readHwrng(count: number, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', FRONTEND_CPU, 'dd', 'if=/dev/hwrng', `bs=${count}`, 'count=1', 'iflag=fullblock', 'status=none'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`reading ${count} bytes from /dev/hwrng timed out`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(chunks));
      else reject(new Error(`dd /dev/hwrng exited ${code}`));
    });
  });
}

const HWRNG = '/sys/class/misc/hw_random';

/** The hw_random sources registered now (virtio_rng.N). */
export function rngSources(): string[] {
  return fs.readFileSync(`${HWRNG}/rng_available`, 'utf8').trim().split(/\s+/).filter((s) => s.startsWith('virtio_rng'));
}

export function selectRng(name: string): void {
  fs.writeFileSync(`${HWRNG}/rng_current`, name);
}

/** The virtio devices (virtioN) of Device ID `deviceId` that a driver is bound to. */
export function boundVirtioDevices(deviceId: number): string[] {
  const root = '/sys/bus/virtio/devices';
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).filter((d) => Number(fs.readFileSync(`${root}/${d}/device`, 'utf8').trim()) === deviceId && fs.existsSync(`${root}/${d}/driver`));
}
