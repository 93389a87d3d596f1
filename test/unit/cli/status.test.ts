// `baoctl status`: what a user sees of a running daemon, and what they are told when there is none.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { driverStage, formatStatusReport, runStatus } from '../../../lib/cli/cmds/status/handler.js';
import { silentLogger } from '../../../lib/virtio/logger.js';
import type { DaemonStatus } from '../../../lib/vmm/status.js';
import { openStatusServer, type StatusServer } from '../../../lib/vmm/status-server.js';
import { testTempDir } from '../../support/temp-dir.js';

function sink(): { write(t: string): void; text: string } {
  return {
    text: '',
    write(t: string) {
      this.text += t;
    },
  };
}

const STATUS: DaemonStatus = {
  pid: 4242,
  state: 'serving',
  config: '/etc/bao/vm2.yaml',
  startedAt: '2026-11-23T10:00:00.000Z',
  uptimeMs: 3_723_000,
  devices: [
    {
      index: 0,
      id: 0,
      type: 'rng',
      mmioAddr: '0xa000000',
      deviceModel: {
        status: 'ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK',
        server: { requests: 35, ioeventfdKicks: 12, watchdogFinds: 0 },
        transport: { notifies: 12, usedInterrupts: 11, configInterrupts: 1, guestFaults: 0, missedKicks: 0 },
      },
      metrics: { requests: 12, bytes: 768, activations: 1, invalidChains: 0 },
    },
    {
      index: 1,
      id: 1,
      type: 'console',
      mmioAddr: '0xa000200',
      deviceModel: { status: 'ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK|DEVICE_NEEDS_RESET', server: { requests: 40 }, transport: { notifies: 3, guestFaults: 2, missedKicks: 5 } },
    },
  ],
};

let server: StatusServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function serveStatus(status: DaemonStatus): Promise<string> {
  const socket = path.join(testTempDir('node-bao-status-'), 'status.sock');
  server = await openStatusServer({ path: socket, status: () => status, log: silentLogger });
  return socket;
}

describe('baoctl status', () => {
  it('prints one line per device: driver stage, requests, kicks, interrupts, guest faults, missed kicks; then non-zero device counters', async () => {
    const socket = await serveStatus(STATUS);
    const out = sink();
    expect(await runStatus({ socket, json: false }, { out })).toBe(0);
    expect(out.text).toBe(
      [
        'node-bao daemon pid 4242, serving, /etc/bao/vm2.yaml, up 1h02m',
        'DM  TYPE     MMIO       DRIVER       REQUESTS  KICKS  IRQS  FAULTS  MISSED KICKS',
        '0   rng      0xa000000  live         35        12     12    0       0',
        '1   console  0xa000200  NEEDS_RESET  40        3      0     2       5',
        '  rng 0: requests=12 bytes=768 activations=1',
        '',
      ].join('\n'),
    );
  });

  it("shows what a disk runs on (its I/O engine, backing, cache mode) before its counters", () => {
    const disk = { index: 0, id: 3, type: 'block', mmioAddr: '0xa000600', info: { engine: 'io_uring', backing: '/srv/vm2.img', cache: 'writeback', mode: 'read-write' }, metrics: { reads: 7, engineIoUring: 1 } };
    const text = formatStatusReport({ ...STATUS, devices: [disk] });
    expect(text.split('\n').slice(-3)).toEqual(['  block 3: engine=io_uring backing=/srv/vm2.img cache=writeback mode=read-write', '  block 3: reads=7 engineIoUring=1', '']);
  });

  it('prints the JSON the daemon sent with --json', async () => {
    const socket = await serveStatus(STATUS);
    const out = sink();
    expect(await runStatus({ socket, json: true }, { out })).toBe(0);
    expect(JSON.parse(out.text)).toEqual(STATUS);
  });

  it('says how to start a daemon when no status socket exists, exit 1', async () => {
    const err = sink();
    const socket = path.join(os.tmpdir(), 'node-bao-no-such', 'status.sock');
    expect(await runStatus({ socket, json: false }, { err })).toBe(1);
    expect(err.text).toBe(
      `baoctl status: no node-bao daemon serves status at ${socket}: start one with \`baoctl run <config.yaml>\`, or give its --status-socket path with --socket\n`,
    );
  });

  it('names the driver stage from the status bits, in setup order', () => {
    expect(driverStage('RESET')).toBe('reset');
    expect(driverStage('ACKNOWLEDGE|DRIVER')).toBe('probing');
    expect(driverStage('ACKNOWLEDGE|DRIVER|FEATURES_OK')).toBe('setting up');
    expect(driverStage('ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK')).toBe('live');
    expect(driverStage('ACKNOWLEDGE|DRIVER|FAILED')).toBe('FAILED');
    expect(driverStage('ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK|DEVICE_NEEDS_RESET')).toBe('NEEDS_RESET');
  });

  it('formats a daemon that is still starting, with no devices yet', () => {
    expect(formatStatusReport({ ...STATUS, state: 'starting', uptimeMs: 1500, devices: [] })).toBe(
      'node-bao daemon pid 4242, starting, /etc/bao/vm2.yaml, up 1s\nDM  TYPE  MMIO  DRIVER  REQUESTS  KICKS  IRQS  FAULTS  MISSED KICKS\n',
    );
  });
});
