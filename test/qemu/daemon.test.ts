// End to end in the Bao-equivalent guest: `baoctl run` serves virtio-rng and virtio-console on
// two bao-sim device models, and the guest's own, unmodified virtio_rng and virtio_console
// drivers are their frontends. What a user of a Bao board would check by hand, checked here.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { DaemonStatus } from '../../lib/vmm/status.js';
import { dmInfo, guestSkipReason, loadBaoSim, unloadBaoSim, waitFor } from './support/bao-sim.js';

// Bao runs frontend and backend VMs on different physical CPUs, and Linux's virtio_console
// relies on it: hvc's put_chars spins, interrupts off and the hvc lock held, until the device
// returns the buffer. So the test machine plays two CPUs. qemu/run-tests.sh pins the test
// processes, and with them the daemon, to CPU 1 (the backend); bao-sim runs the frontend's
// interrupt on CPU 0, and `bao-cpu-split` moves the kernel's own threads there too (khvcd, which
// takes the hvc lock when it polls, appears with the first console: see splitCpus()). Everything
// the frontend does once the console is up (writes, reads) runs on CPU 0.
const BACKEND_CPU = '1';
const FRONTEND_CPU = '0';
const cpuSkipReason = os.cpus().length < 2 ? `the guest has ${os.cpus().length} CPU; the console tests need 2 (frontend and backend CPUs, as on Bao)` : undefined;
if (guestSkipReason === undefined && cpuSkipReason !== undefined) console.warn(`skipped: ${cpuSkipReason}`);

/** Kernel threads started since boot (khvcd) join the frontend CPU. */
function splitCpus(): void {
  execFileSync('bao-cpu-split', [FRONTEND_CPU]);
}

/**
 * Frontend stores to the console, from the frontend CPU, raw (hvc resets termios on close): one
 * write(2) per text, so one hvc put_chars (a spin until the backend answers) for each.
 */
function writeConsole(path: string, ...texts: string[]): void {
  const script = `exec 3<>${path}; stty raw -echo <&3; for t in "$@"; do printf '%s' "$t" >&3; done`;
  execFileSync('taskset', ['-c', FRONTEND_CPU, 'sh', '-c', script, 'sh', ...texts], { timeout: 60_000 });
}

interface ConsoleClient {
  readonly socket: net.Socket;
  received(): string;
}

/**
 * Connect to the console socket as its one client. The daemon refuses a second client ("console
 * busy") and may not yet have seen the previous test's client hang up: try again until accepted.
 */
async function connectConsole(path: string): Promise<ConsoleClient> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const socket = net.createConnection(path);
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString()));
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const refused = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 300);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!refused) return { socket, received: () => text };
    socket.destroy();
  }
  throw new Error(`the console socket ${path} kept refusing this client`);
}

const RNG_DM = 0;
const CONSOLE_DM = 1;
const SOCKET = '/tmp/node-bao-console.sock';
const CONFIG = '/tmp/node-bao-e2e.yaml';

/** The virtio device (virtioN on the guest's bus) whose Device ID is `deviceId`. */
function virtioDevice(deviceId: number): string | undefined {
  const root = '/sys/bus/virtio/devices';
  if (!fs.existsSync(root)) return undefined;
  return fs.readdirSync(root).find((d) => Number(fs.readFileSync(`${root}/${d}/device`, 'utf8').trim()) === deviceId);
}

/**
 * Read `count` bytes from a device file in a child (a blocking read must not stall the test).
 * A tty is switched to raw, no echo, on the descriptor that reads: an echo on /dev/hvc0 would be
 * a frontend write (see above), and hvc resets termios when the last descriptor closes.
 */
function readDevice(path: string, count: number, timeoutMs = 20_000): Promise<Buffer> {
  const tty = path.startsWith('/dev/hvc') || path.startsWith('/tmp/');
  const dd = `dd bs=${count} count=1 iflag=fullblock status=none`;
  const script = tty ? `exec 3<${path}; stty raw -echo <&3; ${dd} <&3` : `${dd} if=${path}`;
  return new Promise((resolve, reject) => {
    // The frontend side (hvc, hwrng) is read from the frontend CPU; the backend's pty from ours.
    const frontend = !path.startsWith('/tmp/');
    const argv = frontend ? ['-c', FRONTEND_CPU, 'sh', '-c', script] : ['-c', BACKEND_CPU, 'sh', '-c', script];
    const child = spawn('taskset', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`reading ${count} bytes from ${path} timed out`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(chunks));
      else reject(new Error(`dd ${path} exited ${code}`));
    });
  });
}

interface Daemon {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<number | null>;
}

function startDaemon(config: string): Daemon {
  const child = spawn('taskset', ['-c', BACKEND_CPU, process.execPath, 'bin/baoctl', 'run', config, '--log-format', 'json', '--log-level', 'debug'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function stopDaemon(daemon: Daemon | undefined): Promise<number | null> {
  if (daemon === undefined || daemon.child.exitCode !== null) return daemon?.child.exitCode ?? null;
  daemon.child.kill('SIGTERM');
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000));
  const code = await Promise.race([daemon.exited, timeout]);
  if (code === 'timeout') {
    daemon.child.kill('SIGKILL');
    throw new Error(`the daemon did not stop on SIGTERM:\n${daemon.output()}`);
  }
  return code;
}

/** /dev/hvc0 exists while a console port is bound, and opens once the port is live. */
function consoleReady(): boolean {
  try {
    fs.closeSync(fs.openSync('/dev/hvc0', fs.constants.O_RDWR | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY));
    return true;
  } catch {
    return false;
  }
}

function hex(n: string | undefined): string {
  if (n === undefined) throw new Error('bao-sim did not report the mmio window');
  return n;
}

describe.skipIf(guestSkipReason !== undefined || cpuSkipReason !== undefined)('baoctl run serving the guest’s own virtio drivers', () => {
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    execFileSync('modprobe', ['virtio_rng']);
    execFileSync('modprobe', ['virtio_console']);
    loadBaoSim({ ndms: 2, frontends: [RNG_DM, CONSOLE_DM] });
    fs.rmSync(SOCKET, { force: true });
    fs.writeFileSync(
      CONFIG,
      [
        'devices:',
        `  - id: ${RNG_DM}`,
        '    type: rng',
        `    mmio_addr: ${hex(dmInfo(RNG_DM).mmio_base)}`,
        '    data_plane: virtio',
        `  - id: ${CONSOLE_DM}`,
        '    type: console',
        `    mmio_addr: ${hex(dmInfo(CONSOLE_DM).mmio_base)}`,
        '    data_plane: virtio',
        '    backend: socket',
        `    socket_path: ${SOCKET}`,
        '',
      ].join('\n'),
    );
    daemon = startDaemon(CONFIG);
    const d = daemon;
    await waitFor(() => virtioDevice(4) !== undefined && virtioDevice(3) !== undefined, 30_000, `both frontends to probe; daemon said:\n${d.output()}`).catch(
      (err: unknown) => {
        throw new Error(`${String(err)}\n${d.output()}`);
      },
    );
    await waitFor(consoleReady, 20_000, '/dev/hvc0');
    splitCpus();
    await waitFor(() => fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').includes('virtio_rng'), 20_000, 'virtio_rng in hw_random');
  }, 90_000);

  afterAll(async () => {
    await stopDaemon(daemon).catch(() => {});
    unloadBaoSim();
  }, 60_000);

  it('feeds /dev/hwrng with entropy from the daemon', async () => {
    expect(fs.readFileSync('/sys/class/misc/hw_random/rng_current', 'utf8')).toContain('virtio_rng');
    const a = await readDevice('/dev/hwrng', 64);
    const b = await readDevice('/dev/hwrng', 64);
    expect(a.length).toBe(64);
    expect(b.length).toBe(64);
    expect(a.equals(b)).toBe(false);
    expect(a.some((x) => x !== 0)).toBe(true);
  });

  it('carries console backend input to /dev/hvc0', async () => {
    const { socket } = await connectConsole(SOCKET);
    const reading = readDevice('/dev/hvc0', 'hello from the backend\n'.length);
    await new Promise((r) => setTimeout(r, 300));
    socket.write('hello from the backend\n');
    expect((await reading).toString()).toBe('hello from the backend\n');
    socket.destroy();
  });

  it('carries /dev/hvc0 output to the console backend', async () => {
    const { socket, received } = await connectConsole(SOCKET);
    writeConsole('/dev/hvc0', 'hello from the frontend\n');
    await waitFor(() => received().includes('hello from the frontend'), 10_000, 'guest output at the socket');
    socket.destroy();
  });

  it('carries many separate /dev/hvc0 writes to the backend whole and in order', async () => {
    const { socket, received } = await connectConsole(SOCKET);
    const lines = Array.from({ length: 200 }, (_, i) => `frontend line ${i}\n`);
    writeConsole('/dev/hvc0', ...lines);
    const expected = lines.join('');
    await waitFor(() => received().length >= expected.length, 20_000, 'all 200 lines at the socket').catch((err: unknown) => {
      const missing = lines.filter((l) => !received().includes(l)).map((l) => l.trim());
      throw new Error(`${String(err)}: got ${received().length} of ${expected.length} bytes; missing ${missing.length} lines, first ${missing.slice(0, 5).join(', ')}`);
    });
    expect(received()).toBe(expected);
    socket.destroy();
  }, 90_000);

  it('reports both devices live, with their counters, through `baoctl status` (run as bin/baoctl)', () => {
    const text = execFileSync('bin/baoctl', ['status'], { encoding: 'utf8' });
    expect(text).toMatch(/^0\s+rng\s+0x[0-9a-f]+\s+live\s+[1-9]/m);
    expect(text).toMatch(/^1\s+console\s+0x[0-9a-f]+\s+live\s+[1-9]/m);
    const status = JSON.parse(execFileSync('bin/baoctl', ['status', '--json'], { encoding: 'utf8' })) as DaemonStatus;
    expect(status.state).toBe('serving');
    const rng = status.devices.find((d) => d.type === 'rng');
    expect(rng?.deviceModel?.server.ioeventfdKicks).toBeGreaterThan(0);
    expect(rng?.metrics?.bytes).toBeGreaterThan(0);
  });

  it('serves the same counters to Prometheus: GET /metrics on the status socket', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      http
        .get({ socketPath: '/run/node-bao/status.sock', path: '/metrics' }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    });
    expect(text).toContain('node_bao_up 1');
    expect(text).toMatch(new RegExp(`node_bao_rng_bytes_total\\{dm="${RNG_DM}",type="rng"\\} [1-9]`));
    expect(text).toContain(`node_bao_device_driver_ok{dm="${CONSOLE_DM}",type="console"} 1`);
  });

  it('keeps serving after the guest driver is unbound and bound again (device reset and re-activation)', async () => {
    const dev = virtioDevice(4);
    expect(dev).toBeDefined();
    const driver = '/sys/bus/virtio/drivers/virtio_rng';
    fs.writeFileSync(`${driver}/unbind`, String(dev));
    expect(fs.existsSync(`${driver}/${dev}`)).toBe(false);
    fs.writeFileSync(`${driver}/bind`, String(dev));
    await waitFor(() => fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').includes('virtio_rng'), 20_000, 'virtio_rng back');
    const bytes = await readDevice('/dev/hwrng', 32);
    expect(bytes.length).toBe(32);
  });

  it('stops cleanly on SIGTERM, exiting 0', async () => {
    const code = await stopDaemon(daemon);
    expect(code, daemon?.output()).toBe(0);
  }, 30_000);
});

describe.skipIf(guestSkipReason !== undefined || cpuSkipReason !== undefined)('a bao-virtio-dm YAML with a console device', () => {
  let daemon: Daemon | undefined;
  const alias = '/tmp/bao-console-pty';

  beforeAll(async () => {
    execFileSync('modprobe', ['virtio_console']);
    loadBaoSim({ ndms: 1, frontends: [0] });
    // Byte for byte what a bao-virtio-dm user has: no node-bao keys.
    const yaml = ['devices:', '  - id: 0', '    type: console', `    mmio_addr: ${hex(dmInfo(0).mmio_base)}`, '    data_plane: virtio', `    pty_alias: ${alias}`, ''].join('\n');
    fs.writeFileSync('/tmp/bao-virtio-dm.yaml', yaml);
    daemon = startDaemon('/tmp/bao-virtio-dm.yaml');
    const d = daemon;
    await waitFor(() => fs.existsSync(alias) && consoleReady(), 30_000, `the pty alias and /dev/hvc0; daemon said:\n${d.output()}`);
    splitCpus();
  }, 90_000);

  afterAll(async () => {
    await stopDaemon(daemon).catch(() => {});
    unloadBaoSim();
  }, 60_000);

  it('runs unchanged: input typed on the pty alias reaches the guest at /dev/hvc0', async () => {
    const message = 'typed on the pty\n';
    const reading = readDevice('/dev/hvc0', message.length);
    await new Promise((r) => setTimeout(r, 300));
    fs.writeFileSync(alias, message);
    expect((await reading).toString()).toBe(message);
  });

  it('runs unchanged: guest output written to /dev/hvc0 comes out of the pty alias', async () => {
    const message = 'written by the frontend\n';
    const reading = readDevice(alias, message.length);
    await new Promise((r) => setTimeout(r, 300));
    writeConsole('/dev/hvc0', message);
    expect((await reading).toString()).toBe(message);
  });
});

describe.skipIf(guestSkipReason !== undefined || cpuSkipReason !== undefined)('a daemon started again on the same device model', () => {
  let daemon: Daemon | undefined;
  const config = '/tmp/node-bao-restart.yaml';

  beforeAll(() => {
    execFileSync('modprobe', ['virtio_rng']);
    loadBaoSim({ ndms: 1, frontends: [0] });
    fs.writeFileSync(config, ['devices:', '  - id: 0', '    type: rng', `    mmio_addr: ${hex(dmInfo(0).mmio_base)}`, '    data_plane: virtio', ''].join('\n'));
  });

  afterAll(async () => {
    await stopDaemon(daemon).catch(() => {});
    unloadBaoSim();
  }, 60_000);

  const rngReady = () => fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').includes('virtio_rng');

  it('serves the re-probed frontend although the first daemon\u2019s ioeventfds still take every kick (bao-abi.md §3.7)', async () => {
    const first = startDaemon(config);
    daemon = first;
    await waitFor(rngReady, 30_000, `virtio_rng from the first daemon:\n${first.output()}`);
    expect((await readDevice('/dev/hwrng', 16)).length).toBe(16);
    expect(await stopDaemon(first)).toBe(0);

    // The frontend is reset and probed again (its VM rebooted, say) while a new daemon serves.
    const second = startDaemon(config);
    daemon = second;
    const dev = virtioDevice(4);
    expect(dev).toBeDefined();
    const driver = '/sys/bus/virtio/drivers/virtio_rng';
    fs.writeFileSync(`${driver}/unbind`, String(dev));
    fs.writeFileSync(`${driver}/bind`, String(dev));
    await waitFor(rngReady, 30_000, `virtio_rng from the second daemon:\n${second.output()}`);
    expect((await readDevice('/dev/hwrng', 32)).length).toBe(32);

    expect(await stopDaemon(second)).toBe(0);
    const out = second.output();
    // Every kick went to the first daemon's eventfd; the kick watchdog served the queue.
    expect(out).toMatch(/kicks are not reaching this process/);
    const closed = out.split('\n').find((l) => l.includes('device model closed'));
    expect(closed, out).toBeDefined();
    const stats = JSON.parse(closed ?? '{}') as { server: { ioeventfdKicks: number; watchdogFinds: number } };
    expect(stats.server.ioeventfdKicks).toBe(0);
    expect(stats.server.watchdogFinds).toBeGreaterThan(0);
  }, 120_000);
});
