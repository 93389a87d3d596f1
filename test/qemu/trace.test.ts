// `baoctl trace` against a running daemon whose frontend is the guest's own virtio_rng driver:
// two tracers at once see the driver's probe sequence decoded (status bits, feature bits by name,
// queue setup), then kicks, used buffers and interrupts; the hot register cells are paused while
// traced (the interrupt's InterruptStatus read and ACK appear in the trace) and answer natively
// again once the tracers have gone.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { DaemonStatus } from '../../lib/vmm/status.js';
import { dmInfo, guestSkipReason, loadBaoSim, unloadBaoSim, waitFor } from './support/bao-sim.js';
import { boundVirtioDevices, cpuSkipReason, readHwrng, rngSources, startDaemon, stopDaemon, type DaemonProcess } from './support/daemon-process.js';

const SOCKET = '/tmp/node-bao-trace-status.sock';
const CONFIG = '/tmp/node-bao-trace.yaml';

interface Tracer {
  readonly child: ChildProcess;
  out(): string;
  readonly exited: Promise<number | null>;
}

function startTracer(args: readonly string[]): Tracer {
  const child = spawn(process.execPath, ['bin/baoctl', 'trace', '--socket', SOCKET, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

type Event = { kind: string; op?: string; register?: string; decoded?: string; interrupt?: boolean; us?: number; queue?: number };

function events(t: Tracer): Event[] {
  return t
    .out()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Event);
}

function status(): Promise<DaemonStatus> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: SOCKET, path: '/status' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(JSON.parse(body) as DaemonStatus));
      })
      .on('error', reject);
  });
}

const hotAccesses = async (): Promise<number> => (await status()).devices[0]?.deviceModel?.server.hotAccesses ?? -1;

describe.skipIf(guestSkipReason !== undefined || cpuSkipReason !== undefined)('baoctl trace on a daemon serving the guest’s virtio_rng', () => {
  let daemon: DaemonProcess | undefined;
  const tracers: Tracer[] = [];

  beforeAll(async () => {
    execFileSync('modprobe', ['virtio_rng']);
    loadBaoSim({ ndms: 1, frontends: [0] });
    fs.writeFileSync(CONFIG, ['devices:', '  - id: 0', '    type: rng', `    mmio_addr: ${dmInfo(0).mmio_base}`, '    data_plane: virtio', ''].join('\n'));
    daemon = startDaemon(CONFIG, ['--status-socket', SOCKET]);
    const d = daemon;
    await waitFor(() => boundVirtioDevices(4).length === 1 && rngSources().length === 1, 60_000, 'virtio_rng bound').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${d.output()}`);
    });
  }, 120_000);

  afterAll(async () => {
    for (const t of tracers) t.child.kill('SIGKILL');
    await stopDaemon(daemon).catch(() => {});
    unloadBaoSim();
  }, 60_000);

  it('shows two tracers the driver’s probe decoded, then kicks, used buffers and interrupts', async () => {
    const json = startTracer(['--json']);
    const human = startTracer(['--dm', '0']);
    tracers.push(json, human);
    await waitFor(() => events(json)[0]?.kind === 'hello' && human.out().startsWith('tracing device model 0'), 60_000, 'both tracers attached').catch((err: unknown) => {
      throw new Error(`${String(err)}\njson: ${json.out()}\nhuman: ${human.out()}`);
    });
    expect(events(json)[0]).toMatchObject({ kind: 'hello', devices: [{ dm: 0, type: 'rng', hotCells: 'paused' }] });

    // Unbind and bind the driver: a reset, then Linux's virtio probe of the device.
    const dev = boundVirtioDevices(4)[0]!;
    const driver = '/sys/bus/virtio/drivers/virtio_rng';
    fs.writeFileSync(`${driver}/unbind`, dev);
    fs.writeFileSync(`${driver}/bind`, dev);
    await waitFor(() => rngSources().length === 1, 30_000, 'virtio_rng back');
    expect((await readHwrng(32)).length).toBe(32);
    const acked = (): boolean => events(json).some((e) => e.kind === 'access' && e.register === 'InterruptACK');
    await waitFor(() => acked() && events(json).some((e) => e.kind === 'used' && e.interrupt === true), 60_000, 'a used buffer and its interrupt in the trace').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${json.out()}`);
    });

    const all = events(json);
    const statusWrites = all.filter((e) => e.kind === 'access' && e.op === 'write' && e.register === 'Status').map((e) => e.decoded);
    const probe = ['RESET (driver resets the device)', 'ACKNOWLEDGE', 'ACKNOWLEDGE|DRIVER', 'ACKNOWLEDGE|DRIVER|FEATURES_OK', 'ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK'];
    let at = 0;
    for (const s of statusWrites) if (s === probe[at]) at += 1;
    expect(at, `Status writes seen: ${statusWrites.join(', ')}`).toBe(probe.length);
    expect(all.some((e) => e.register === 'DeviceFeatures' && /VERSION_1/.test(e.decoded ?? ''))).toBe(true);
    expect(all.some((e) => e.register === 'DriverFeatures' && /VERSION_1/.test(e.decoded ?? ''))).toBe(true);
    expect(all.some((e) => e.register === 'QueueNumMax' && /^queue 0: up to \d+ entries$/.test(e.decoded ?? ''))).toBe(true);
    expect(all.some((e) => e.register === 'QueueReady' && e.decoded === 'queue 0: ready')).toBe(true);
    expect(all.some((e) => e.kind === 'kick' && e.queue === 0)).toBe(true);
    expect(all.some((e) => e.kind === 'interrupt' && e.decoded === 'VRING')).toBe(true);
    // The hot cells are paused: the interrupt's InterruptStatus read reached JS and is traced.
    expect(all.some((e) => e.register === 'InterruptStatus' && e.decoded === 'VRING')).toBe(true);
    for (const e of all.filter((x) => x.kind === 'access')) expect(typeof e.us).toBe('number');

    await waitFor(() => /W {3}Status {12}0x0000000f {2}ACKNOWLEDGE\|DRIVER\|FEATURES_OK\|DRIVER_OK/.test(human.out()), 30_000, 'DRIVER_OK in the human trace').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${human.out()}`);
    });
    expect(human.out()).toMatch(/dm0 rng {5}used queue 0 idx \d+( \(\+\d+\))?, interrupt/);

    json.child.kill('SIGINT');
    human.child.kill('SIGINT');
    expect(await json.exited).toBe(0);
    expect(await human.exited).toBe(0);
  }, 240_000);

  it('answers the hot registers natively again once the tracers have gone', async () => {
    const before = await hotAccesses();
    expect(before).toBeGreaterThanOrEqual(0);
    // The daemon learns that the tracers left when their connections close: read until it shows.
    const deadline = Date.now() + 90_000;
    let after = before;
    while (after <= before && Date.now() < deadline) {
      expect((await readHwrng(32)).length).toBe(32);
      after = await hotAccesses();
    }
    expect(after, daemon?.output()).toBeGreaterThan(before);
  }, 120_000);
});
