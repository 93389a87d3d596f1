// The daemon and systemd for real: notifications reach a real NOTIFY_SOCKET (a unix datagram
// socket bound by a python3 listener, as systemd binds its own), through the addon's
// sendUnixDatagram, for a path and for an abstract name; and the shipped unit passes
// `systemd-analyze verify`.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';

import { afterEach, describe, expect, it } from 'vitest';

import { EXIT_OK, runDaemonCommand, type RunIo } from '../../lib/cli/cmds/run/handler.js';
import { PACKAGE_ROOT, loadAddon } from '../../lib/native.js';
import { MockDriver } from '../../lib/virtio/testing/mock-driver.js';
import type { DeviceModelFactory } from '../../lib/vmm/device-model.js';
import { skipBecause } from './skip.js';

const LISTENER = `
import socket, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + addr[1:] if addr.startswith('@') else addr)
print('BOUND', flush=True)
while True:
    data = s.recv(4096)
    print(data.decode().replace('\\n', '|'), flush=True)
`;

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir !== '' && fs.existsSync(path.join(dir, cmd))) return path.join(dir, cmd);
  return undefined;
}

let listener: ChildProcess | undefined;
afterEach(() => {
  listener?.kill();
  listener = undefined;
});

/** Starts the listener; resolves with a function returning the datagrams received so far. */
async function listen(address: string): Promise<() => string[]> {
  const child = spawn('python3', ['-c', LISTENER, address], { stdio: ['ignore', 'pipe', 'inherit'] });
  listener = child;
  const lines: string[] = [];
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const p of parts) {
        if (p === 'BOUND') resolve();
        else lines.push(p.replaceAll('|', '\n'));
      }
    });
  });
  return () => lines;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const factory: DeviceModelFactory = {
  async open({ device }) {
    const driver = MockDriver.create(device);
    driver.init();
    return { close: async () => driver.reset() };
  },
};

describe('systemd notify over a real NOTIFY_SOCKET', () => {
  for (const kind of ['path', 'abstract'] as const) {
    it(`baoctl run sends READY=1, WATCHDOG=1 and STOPPING=1 to a ${kind} socket`, async (ctx) => {
      if (which('python3') === undefined) skipBecause(ctx, 'python3 is not installed (it plays systemd\'s listener)');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-notify-'));
      try {
        const address = kind === 'path' ? path.join(dir, 'notify') : `@node-bao-test-${process.pid}`;
        const received = await listen(address);
        const signals = new EventEmitter();
        const io: RunIo = {
          err: { write: () => true },
          readFile: async () => 'devices:\n  - {id: 0, type: rng, mmio_addr: 0xa000000, data_plane: virtio}\n',
          logDestination: new PassThrough(),
          env: { NOTIFY_SOCKET: address, WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid) },
          factory,
          signals: signals as unknown as NonNullable<RunIo['signals']>,
        };
        const done = runDaemonCommand({ file: 'vm.yaml', logFormat: 'json' }, io);
        await until(() => received().includes('READY=1\nSTATUS=serving 1 device(s)'));
        await until(() => received().includes('WATCHDOG=1'));
        signals.emit('SIGTERM');
        expect(await done).toBe(EXIT_OK);
        await until(() => received().some((m) => m.startsWith('STOPPING=1')));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('sendUnixDatagram reports a socket nobody listens on as ENOENT/ECONNREFUSED', () => {
    const addon = loadAddon();
    expect(() => addon.sendUnixDatagram(path.join(os.tmpdir(), `nb-none-${process.pid}`), Buffer.from('READY=1'))).toThrow(
      expect.objectContaining({ code: expect.stringMatching(/ENOENT|ECONNREFUSED/), syscall: 'sendto' }) as Error,
    );
  });
});

describe('systemd/node-bao.service', () => {
  it('passes systemd-analyze verify', (ctx) => {
    if (which('systemd-analyze') === undefined) skipBecause(ctx, 'systemd-analyze is not installed (Debian package systemd; scripts/setup.sh installs it)');
    const unit = path.join(PACKAGE_ROOT, 'systemd', 'node-bao.service');
    const r = execFileSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(r).toBe('');
    const text = fs.readFileSync(unit, 'utf8');
    expect(text).toMatch(/^Type=notify$/m);
    expect(text).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    expect(text).toMatch(/^DeviceAllow=char-misc rw$/m);
  });
});
