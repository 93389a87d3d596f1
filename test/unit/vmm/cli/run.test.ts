// `baoctl run`: config -> devices -> device models (a factory over MockDriver here, the
// dispatcher on a board) -> serve until a signal -> clean shutdown; bad input exits non-zero.

import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, loadDefaultFactory, runDaemonCommand, type RunIo } from '../../../../lib/cli/cmds/run/handler.js';
import { fetchStatus } from '../../../../lib/cli/cmds/status/handler.js';
import { formatStatus } from '../../../../lib/virtio/status.js';
import { silentLogger } from '../../../../lib/virtio/logger.js';
import { MockDriver } from '../../../../lib/virtio/testing/mock-driver.js';
import type { DeviceModelFactory } from '../../../../lib/vmm/device-model.js';
import { BaoNotPresentError } from '../../../../lib/dispatcher/errors.js';
import { testTempDir } from '../../../support/temp-dir.js';

function sink(): { write(t: string): void; text: string } {
  return {
    text: '',
    write(t: string) {
      this.text += t;
    },
  };
}

const tick = (ms = 10): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A factory that plays the frontend: each device gets a MockDriver that initialises it. */
class MockFactory implements DeviceModelFactory {
  readonly drivers = new Map<number, MockDriver>();
  closed: number[] = [];
  async open({ entry, device }: Parameters<DeviceModelFactory['open']>[0]) {
    const driver = MockDriver.create(device);
    driver.init();
    this.drivers.set(entry.id, driver);
    return {
      snapshot: () => ({ status: formatStatus(driver.transport.status), server: { requests: 0 }, transport: { ...driver.transport.stats } }),
      close: async () => {
        this.closed.push(entry.id);
        driver.reset();
      },
    };
  }
}

const CONFIG = `
devices:
  - {id: 0, type: rng, mmio_addr: 0xa000000, data_plane: virtio}
  - {id: 1, type: console, mmio_addr: 0xa000200, backend: stdio}
`;

function rig(extra: Partial<RunIo> = {}) {
  const err = sink();
  const logs = new PassThrough();
  let logText = '';
  logs.on('data', (c: Buffer) => (logText += c.toString()));
  const signals = new EventEmitter();
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const factory = new MockFactory();
  const io: RunIo = {
    err,
    readFile: async () => CONFIG,
    logDestination: logs,
    env: {},
    factory,
    context: { stdin, stdout },
    signals: signals as unknown as NonNullable<RunIo['signals']>,
    ...extra,
  };
  return { io, err, signals, stdin, stdout, factory, logs: () => logText };
}

describe('baoctl run', () => {
  it('serves the configured devices until SIGTERM, then closes them and exits 0', async () => {
    const r = rig();
    const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, r.io);
    await tick(30);
    const console = r.factory.drivers.get(1)!;
    const rng = r.factory.drivers.get(0)!;

    // Guest output reaches stdout ...
    console.queue(1).add([{ data: Buffer.from('login: ') }]);
    console.kick(1);
    await tick();
    expect((r.stdout.read() as Buffer).toString()).toBe('login: ');
    // ... host input reaches the guest ...
    const rx = console.queue(0).add([{ length: 16, writable: true }]);
    console.kick(0);
    r.stdin.write('root\n');
    await tick();
    expect(Buffer.from(console.queue(0).buffers(rx)[0]!.subarray(0, 5)).toString()).toBe('root\n');
    // ... and the rng fills buffers.
    rng.queue(0).add([{ length: 8, writable: true }]);
    rng.kick(0);
    expect(rng.queue(0).used()).toEqual([expect.objectContaining({ len: 8 })]);

    r.signals.emit('SIGTERM');
    expect(await done).toBe(EXIT_OK);
    expect(r.factory.closed.sort()).toEqual([0, 1]);
    expect(r.signals.listenerCount('SIGTERM')).toBe(0);
    const lines = r.logs().trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['serving 2 device(s)', 'shutting down (SIGTERM)', 'stopped cleanly']));
  });

  it('ends the process with 1 when the shutdown timeout passes, after completing what each device model holds', async () => {
    const exits: number[] = [];
    let completed = 0;
    const hanging: DeviceModelFactory = {
      open: async () => ({
        completePending: () => {
          completed += 1;
          return 1;
        },
        close: () => new Promise<void>(() => {}),
      }),
    };
    const r = rig({ factory: hanging, exit: (code) => void exits.push(code), readFile: async () => `${CONFIG}\nshutdown_timeout_ms: 50\n` });
    const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, r.io);
    await tick(30);
    r.signals.emit('SIGTERM');
    expect(await done).toBe(EXIT_FAILURE);
    expect(exits).toEqual([EXIT_FAILURE]);
    expect(completed).toBe(2);
    expect(r.logs()).toContain('ending the process after the shutdown timeout');
  });

  it('installs last-resort handlers while serving: an uncaught exception completes pending accesses, logs and exits 1', async () => {
    const exits: number[] = [];
    const target = new EventEmitter();
    let completed = 0;
    const factory: DeviceModelFactory = {
      open: async () => ({ completePending: () => ((completed += 3), 3), close: async () => {} }),
    };
    const r = rig({ factory, exit: (code) => void exits.push(code), lastResort: target as unknown as NonNullable<RunIo['lastResort']> });
    const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, r.io);
    await tick(30);
    expect(target.listenerCount('uncaughtException')).toBe(1);
    target.emit('uncaughtException', new Error('boom in a callback'));
    expect(exits).toEqual([1]);
    expect(completed).toBe(6);
    expect(r.logs()).toMatch(/fatal: uncaught exception: boom in a callback/);
    expect(r.logs()).toMatch(/completed 6 pending access/);
    r.signals.emit('SIGTERM');
    await done;
    expect(target.listenerCount('uncaughtException')).toBe(0);
    expect(target.listenerCount('unhandledRejection')).toBe(0);
  });

  it("accepts bao-virtio-dm's -c/--config instead of the positional", async () => {
    const ac = new AbortController();
    const r = rig({ signal: ac.signal });
    const done = runDaemonCommand({ config: 'vm.yaml' }, r.io);
    await tick(20);
    expect(r.factory.drivers.size).toBe(2);
    ac.abort();
    expect(await done).toBe(EXIT_OK);
  });

  it('exits 2 without a config file, or with two different ones', async () => {
    const r = rig();
    expect(await runDaemonCommand({}, r.io)).toBe(EXIT_USAGE);
    expect(r.err.text).toBe('baoctl run: give a config file: baoctl run <config.yaml> (or -c/--config <config.yaml>)\n');
    expect(await runDaemonCommand({ file: 'a.yaml', config: 'b.yaml' }, r.io)).toBe(EXIT_USAGE);
  });

  it('reports "no Bao here" once, without a stack trace, and exits 1 (the first error a user on a non-Bao machine meets)', async () => {
    const factory: DeviceModelFactory = {
      open: async () => {
        throw new BaoNotPresentError('/dev', ['/dev/bao-io-dispatcher', '/dev/bao-dm<N>', '/dev/bao']);
      },
    };
    const r = rig({ factory });
    expect(await runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, r.io)).toBe(EXIT_FAILURE);
    const lines = r.logs().trim().split('\n');
    const told = lines.filter((l) => l.includes('No Bao I/O dispatcher device node found'));
    expect(told).toHaveLength(1);
    expect(JSON.parse(told[0]!)).toMatchObject({ level: 50, code: 'BAO_NOT_PRESENT' });
    expect(told[0]).toContain('modprobe');
    expect(r.logs()).not.toMatch(/"stack"|\bat .*\.(?:js|ts):\d+/);
    expect(r.err.text).not.toMatch(/\bat .*\.(?:js|ts):\d+/);
  });

  it('names `baoctl restart` in its usage errors when it runs as restart', async () => {
    const r = rig({ takeOver: true });
    expect(await runDaemonCommand({}, r.io)).toBe(EXIT_USAGE);
    expect(r.err.text).toBe('baoctl restart: give a config file: baoctl restart <config.yaml> (or -c/--config <config.yaml>)\n');
  });

  it('exits 2 (a config error) with every config error, opening nothing', async () => {
    const r = rig({ readFile: async () => 'devices:\n  - {id: 1, type: vsock, mmio_addr: 0xa003c00}\n' });
    expect(await runDaemonCommand({ file: 'vm2.yaml' }, r.io)).toBe(EXIT_USAGE);
    expect(r.err.text).toBe("vm2.yaml: 1 error(s)\n  error: devices[0].type (line 2, column 19): 'vsock' is not served by node-bao yet; served types: console, rng, block, net\n");
    expect(r.factory.drivers.size).toBe(0);
  });

  it('exits 1 when a device cannot be opened, closing the ones opened before', async () => {
    const r = rig();
    const failing: DeviceModelFactory = {
      open: async (req) => {
        if (req.entry.id === 1) throw Object.assign(new Error('no such DM'), { code: 'ENOENT', field: 'id' });
        return r.factory.open(req);
      },
    };
    expect(await runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, { ...r.io, factory: failing })).toBe(EXIT_FAILURE);
    expect(r.factory.closed).toEqual([0]);
    expect(r.logs()).toContain('devices[1] (console, id 1).id: cannot open: no such DM (ENOENT)');
  });

  it('says clearly when the device-model factory module is not there', async () => {
    await expect(loadDefaultFactory(silentLogger, './no-such-dir/bao-device-model-factory.js')).rejects.toMatchObject({
      code: 'DEVICE_MODEL_FACTORY_UNAVAILABLE',
      message: expect.stringContaining('lib/vmm/bao-device-model-factory.js is missing') as unknown as string,
    });
  });

  describe('its status socket', () => {
    const tmp = (): string => testTempDir('node-bao-status-');

    it('answers `baoctl status` while serving: every device, its driver stage and counters; gone after shutdown', async () => {
      const socket = path.join(tmp(), 'run', 'status.sock');
      const r = rig();
      const done = runDaemonCommand({ file: 'vm.yaml', statusSocket: socket }, r.io);
      // Started once the socket exists and both device models are open (the first start also loads every device module).
      for (let i = 0; i < 200 && !(fs.existsSync(socket) && r.factory.drivers.size === 2); i += 1) await tick(10);
      const status = await fetchStatus(socket);
      expect(status.process?.rssBytes).toBeGreaterThan(0);
      expect(status.process?.openFds).toBeGreaterThan(0);
      expect(status).toMatchObject({ pid: process.pid, state: 'serving', config: 'vm.yaml' });
      expect(status.devices.map((d) => [d.id, d.type, d.mmioAddr, d.deviceModel?.status])).toEqual([
        [0, 'rng', '0xa000000', 'ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK'],
        [1, 'console', '0xa000200', 'ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK'],
      ]);
      expect(status.devices[1]?.metrics).toHaveProperty('txBytes');
      r.signals.emit('SIGTERM');
      expect(await done).toBe(EXIT_OK);
      expect(fs.existsSync(socket)).toBe(false);
    });

    it('refuses to start, opening no device, when another daemon serves status on that path', async () => {
      const socket = path.join(tmp(), 'status.sock');
      const other = net.createServer().listen(socket);
      await new Promise((resolve) => other.once('listening', resolve));
      try {
        const r = rig();
        expect(await runDaemonCommand({ file: 'vm.yaml', logFormat: 'json', statusSocket: socket }, r.io)).toBe(EXIT_FAILURE);
        expect(r.factory.drivers.size).toBe(0);
        expect(r.logs()).toContain(`status socket ${socket}: another daemon is serving status there; give another path with --status-socket, or --status-socket none`);
      } finally {
        other.close();
      }
    });

    it("serves none with --status-socket none, whatever the default", async () => {
      const socket = path.join(tmp(), 'status.sock');
      const ac = new AbortController();
      const r = rig({ signal: ac.signal, defaultStatusSocket: socket });
      const done = runDaemonCommand({ file: 'vm.yaml', statusSocket: 'none' }, r.io);
      await tick(20);
      expect(fs.existsSync(socket)).toBe(false);
      ac.abort();
      expect(await done).toBe(EXIT_OK);
    });

    it('also serves /metrics on TCP with --metrics-listen, and refuses a bad or taken address before opening any device', async () => {
      const probe = net.createServer().listen(0, '127.0.0.1');
      await new Promise((resolve) => probe.once('listening', resolve));
      const port = (probe.address() as net.AddressInfo).port;

      const bad = rig();
      expect(await runDaemonCommand({ file: 'vm.yaml', metricsListen: '9464' }, bad.io)).toBe(EXIT_USAGE);
      expect(bad.err.text).toBe("baoctl run: --metrics-listen: expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464, got '9464'\n");

      const taken = rig();
      expect(await runDaemonCommand({ file: 'vm.yaml', logFormat: 'json', metricsListen: `127.0.0.1:${port}` }, taken.io)).toBe(EXIT_FAILURE);
      expect(taken.factory.drivers.size).toBe(0);
      expect(taken.logs()).toContain(`--metrics-listen 127.0.0.1:${port}: cannot listen`);
      await new Promise((resolve) => probe.close(resolve));

      const ac = new AbortController();
      const r = rig({ signal: ac.signal });
      const done = runDaemonCommand({ file: 'vm.yaml', metricsListen: `127.0.0.1:${port}` }, r.io);
      await tick(30);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toContain('node_bao_up 1');
      expect(text).toContain('node_bao_device_driver_ok{dm="1",type="console"} 1');
      ac.abort();
      expect(await done).toBe(EXIT_OK);
    });
  });
});
