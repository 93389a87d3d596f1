// `baoctl run` as systemd drives it: SIGHUP reloads the config (unchanged devices untouched,
// added ones start, removed ones drain and stop; an invalid config changes nothing) and reopens
// --log-file; the notify protocol (READY, RELOADING, STOPPING, WATCHDOG) at the right moments;
// the status socket's mode; JSON log lines with one `module` key.

import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { EXIT_OK, runDaemonCommand, type ReloadOutcome, type RunIo } from '../../../../lib/cli/cmds/run/handler.js';
import { formatStatus } from '../../../../lib/virtio/status.js';
import { MockDriver } from '../../../../lib/virtio/testing/mock-driver.js';
import type { DeviceModelFactory } from '../../../../lib/vmm/device-model.js';

const tick = (ms = 10): Promise<void> => new Promise((r) => setTimeout(r, ms));

class CountingFactory implements DeviceModelFactory {
  opened: number[] = [];
  closed: number[] = [];
  async open({ entry, device }: Parameters<DeviceModelFactory['open']>[0]) {
    const driver = MockDriver.create(device);
    driver.init();
    this.opened.push(entry.id);
    return {
      snapshot: () => ({ status: formatStatus(driver.transport.status), server: { requests: 0 }, transport: { ...driver.transport.stats } }),
      close: async () => {
        this.closed.push(entry.id);
        driver.reset();
      },
    };
  }
}

const TWO = `
devices:
  - {id: 0, type: rng, mmio_addr: 0xa000000, data_plane: virtio}
  - {id: 1, type: rng, mmio_addr: 0xa000400, data_plane: virtio}
`;

function rig(extra: Partial<RunIo> = {}) {
  let text = TWO;
  const logs = new PassThrough();
  let logText = '';
  logs.on('data', (c: Buffer) => (logText += c.toString()));
  const signals = new EventEmitter();
  const factory = new CountingFactory();
  const reloads: ReloadOutcome[] = [];
  const sent: string[] = [];
  const io: RunIo = {
    err: { write: () => true },
    readFile: async () => text,
    logDestination: logs,
    env: {},
    factory,
    signals: signals as unknown as NonNullable<RunIo['signals']>,
    onReload: (o) => reloads.push(o),
    notifySend: (_path, data) => sent.push(data.toString()),
    ...extra,
  };
  return {
    io,
    signals,
    factory,
    reloads,
    sent,
    setConfig: (t: string) => (text = t),
    logs: () => logText,
  };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await tick(5);
  }
}

describe('baoctl run: SIGHUP reloads the config', () => {
  it('keeps unchanged devices untouched, stops removed ones and starts added ones', async () => {
    const r = rig();
    const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, r.io);
    await until(() => r.factory.opened.length === 2);
    r.setConfig(`
devices:
  - {id: 0, type: rng, mmio_addr: 0xa000000, data_plane: virtio}
  - {id: 2, type: rng, mmio_addr: 0xa000800, data_plane: virtio}
`);
    r.signals.emit('SIGHUP');
    await until(() => r.reloads.length === 1);
    const outcome = r.reloads[0]!;
    expect(outcome.ok).toBe(true);
    if (outcome.ok) {
      expect(outcome.report.kept.map((d) => d.id)).toEqual([0]);
      expect(outcome.report.stopped.map((d) => d.id)).toEqual([1]);
      expect(outcome.report.started.map((d) => d.id)).toEqual([2]);
    }
    expect(r.factory.opened).toEqual([0, 1, 2]); // device 0 was not reopened
    expect(r.factory.closed).toEqual([1]);
    r.signals.emit('SIGTERM');
    expect(await done).toBe(EXIT_OK);
    expect(r.factory.closed.sort()).toEqual([0, 1, 2]);
  });

  it('restarts a device whose entry changed', async () => {
    const r = rig();
    const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, r.io);
    await until(() => r.factory.opened.length === 2);
    r.setConfig(TWO.replace('0xa000400', '0xa000c00'));
    r.signals.emit('SIGHUP');
    await until(() => r.reloads.length === 1);
    expect(r.factory.closed).toEqual([1]);
    expect(r.factory.opened).toEqual([0, 1, 1]);
    r.signals.emit('SIGTERM');
    expect(await done).toBe(EXIT_OK);
  });

  it('changes nothing when the new config is invalid, and logs why', async () => {
    const r = rig();
    const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, r.io);
    await until(() => r.factory.opened.length === 2);
    r.setConfig('devices:\n  - {id: 0, type: rng, data_plane: virtio}\n');
    r.signals.emit('SIGHUP');
    await until(() => r.reloads.length === 1);
    expect(r.reloads[0]!.ok).toBe(false);
    expect(r.factory.opened).toEqual([0, 1]);
    expect(r.factory.closed).toEqual([]);
    expect(r.logs()).toMatch(/reload refused, nothing changed: vm\.yaml: devices\[0\]/);
    r.signals.emit('SIGTERM');
    expect(await done).toBe(EXIT_OK);
  });
});

describe('baoctl run: a reload that changes what needs a restart', () => {
  it('logs that a changed log: section waits for a restart, and still reloads the devices', async () => {
    const r = rig();
    const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, r.io);
    await until(() => r.factory.opened.length === 2);
    r.setConfig(`log:\n  level: warn\n${TWO.replace(/\n  - \{id: 1.*\n/, '\n')}`);
    r.signals.emit('SIGHUP');
    await until(() => r.reloads.length === 1);
    expect(r.logs()).toMatch(/reload: the log: settings changed, which needs a restart/);
    expect(r.factory.closed).toEqual([1]);
    // Still logging at info: the new level was not applied.
    expect(r.logs()).toMatch(/"msg":"reloaded: 1 kept, 0 started, 1 stopped"/);
    r.signals.emit('SIGTERM');
    expect(await done).toBe(EXIT_OK);
  });
});

describe('baoctl run: systemd notifications', () => {
  it('sends READY once every device model is open, RELOADING/READY around a reload, STOPPING at shutdown, and WATCHDOG keep-alives', async () => {
    const r = rig();
    const io = { ...r.io, env: { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '20000' } };
    const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, io);
    await until(() => r.sent.some((m) => m.startsWith('READY=1')));
    expect(r.factory.opened).toEqual([0, 1]);
    expect(r.sent[0]).toBe('READY=1\nSTATUS=serving 2 device(s)');
    await until(() => r.sent.includes('WATCHDOG=1'));
    r.signals.emit('SIGHUP');
    await until(() => r.reloads.length === 1);
    const reloading = r.sent.findIndex((m) => m.startsWith('RELOADING=1\nMONOTONIC_USEC='));
    expect(reloading).toBeGreaterThan(0);
    expect(r.sent.slice(reloading + 1).some((m) => m.startsWith('READY=1'))).toBe(true);
    r.signals.emit('SIGTERM');
    expect(await done).toBe(EXIT_OK);
    expect(r.sent.filter((m) => m.startsWith('STOPPING=1'))).toEqual(['STOPPING=1\nSTATUS=stopping (SIGTERM)']);
  });

  it('sends nothing outside systemd (no NOTIFY_SOCKET)', async () => {
    const ac = new AbortController();
    const r = rig({ signal: ac.signal });
    const done = runDaemonCommand({ file: 'vm.yaml' }, r.io);
    await until(() => r.factory.opened.length === 2);
    ac.abort();
    expect(await done).toBe(EXIT_OK);
    expect(r.sent).toEqual([]);
  });
});

describe('baoctl run: logs and the status socket', () => {
  it('writes JSON lines with the module key once, devices included', async () => {
    const ac = new AbortController();
    const r = rig({ signal: ac.signal });
    const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json', logLevel: 'debug' }, r.io);
    await until(() => r.factory.opened.length === 2);
    ac.abort();
    expect(await done).toBe(EXIT_OK);
    const lines = r.logs().trim().split('\n');
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) expect(line.match(/"module":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
  });

  it('--log-file: appends there, and SIGHUP reopens it after logrotate moved it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-log-'));
    try {
      const file = path.join(dir, 'node-bao.log');
      const r = rig();
      const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json', logFile: file }, r.io);
      await until(() => r.factory.opened.length === 2);
      expect(fs.readFileSync(file, 'utf8')).toContain('serving 2 device(s)');
      fs.renameSync(file, `${file}.1`);
      r.signals.emit('SIGHUP');
      await until(() => r.reloads.length === 1);
      r.signals.emit('SIGTERM');
      expect(await done).toBe(EXIT_OK);
      expect(fs.readFileSync(file, 'utf8')).toContain('stopped cleanly');
      expect(fs.readFileSync(`${file}.1`, 'utf8')).not.toContain('stopped cleanly');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives the status socket the mode of --status-socket-mode, and refuses a mode that is not octal', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-sock-'));
    try {
      const socket = path.join(dir, 'status.sock');
      const ac = new AbortController();
      const r = rig({ signal: ac.signal });
      const gid = String(os.userInfo().gid);
      const done = runDaemonCommand({ file: 'vm.yaml', statusSocket: socket, statusSocketMode: '0660', statusSocketGroup: gid }, r.io);
      await until(() => r.factory.opened.length === 2);
      const st = fs.statSync(socket);
      expect(st.mode & 0o777).toBe(0o660);
      expect(st.gid).toBe(Number(gid));
      ac.abort();
      expect(await done).toBe(EXIT_OK);
      expect(await runDaemonCommand({ file: 'vm.yaml', statusSocketMode: 'rw' }, rig().io)).toBe(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
