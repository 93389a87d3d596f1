// `baoctl trace` against a status socket: the stream of decoded events a user reads, several
// tracers at once, a tracer that stops reading dropped while the others go on, the end of the
// stream when the daemon stops, and what is said when no daemon is there.

import * as fs from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { runTrace } from '../../../lib/cli/cmds/trace/handler.js';
import { silentLogger } from '../../../lib/virtio/logger.js';
import { openStatusServer, type StatusServer } from '../../../lib/vmm/status-server.js';
import type { DaemonStatus } from '../../../lib/vmm/status.js';
import { TraceHub, type DeviceTap } from '../../../lib/vmm/trace/hub.js';
import { testTempDir } from '../../support/temp-dir.js';

const STATUS: DaemonStatus = { pid: 1, state: 'serving', config: 'vm.yaml', startedAt: '2026-12-02T00:00:00.000Z', uptimeMs: 5, devices: [] };

function sink(): { write(t: string): void; text: string } {
  return {
    text: '',
    write(t: string) {
      this.text += t;
    },
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function until(cond: () => boolean, what: string, limit = 5000): Promise<void> {
  for (let i = 0; i < limit; i += 1) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

let server: StatusServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function daemon(maxBacklogBytes?: number): Promise<{ socket: string; hub: TraceHub; tap: DeviceTap }> {
  const socket = path.join(testTempDir('node-bao-trace-'), 'status.sock');
  const hub = new TraceHub(maxBacklogBytes === undefined ? {} : { maxBacklogBytes });
  const tap = hub.register({
    dm: 2,
    type: 'rng',
    deviceId: 4,
    mmioAddr: 0xa003e00,
    selectors: () => ({ deviceFeaturesSel: 1, driverFeaturesSel: 0, queueSel: 0 }),
    setTransportTrace: () => {},
  });
  server = await openStatusServer({ path: socket, status: () => STATUS, log: silentLogger, trace: hub });
  return { socket, hub, tap };
}

const request = (dm: number, op: number, offset: number, value = 0n) => ({ dmId: dm, addr: 0xa003e00 + offset, op, value, accessWidth: 4, requestId: 1 });

describe('baoctl trace', () => {
  it('prints each event decoded, and stops after --count events', async () => {
    const { socket, hub, tap } = await daemon();
    const out = sink();
    const done = runTrace({ socket, json: false, dm: 2, count: 3 }, { out, err: sink() });
    await until(() => hub.tracers === 1, 'the tracer');
    expect(tap.on).toBe(true);
    tap.completed(request(2, 0, 0x70, 3n), 0);
    tap.completed(request(2, 1, 0x10), 0x3);
    tap.notify(0, true);
    tap.notify(0, true); // past --count
    expect(await done).toBe(0);
    const lines = out.text.trimEnd().split('\n');
    expect(lines[0]).toBe('tracing device model 2: dm 2 rng at 0xa003e00');
    expect(lines[1]).toMatch(/dm2 rng {5}W {3}Status {12}0x00000003 {2}ACKNOWLEDGE\|DRIVER {2}\(\d+us\)$/);
    expect(lines[2]).toMatch(/R {3}DeviceFeatures {4}0x00000003 {2}word 1: VERSION_1 ACCESS_PLATFORM/);
    expect(lines[3]).toMatch(/dm2 rng {5}kick queue 0$/);
    expect(lines).toHaveLength(4);
    await until(() => hub.tracers === 0, 'the tracer to leave');
    expect(tap.on).toBe(false);
  });

  it('--json prints the daemon’s lines as they came; the stream ends (exit 0) when the daemon stops', async () => {
    const { socket, hub, tap } = await daemon();
    const out = sink();
    const done = runTrace({ socket, json: true }, { out, err: sink() });
    await until(() => hub.tracers === 1, 'the tracer');
    tap.interrupt(1);
    hub.close('the daemon stopped');
    expect(await done).toBe(0);
    const events = out.text.trimEnd().split('\n').map((l) => JSON.parse(l) as { kind: string });
    expect(events.map((e) => e.kind)).toEqual(['hello', 'interrupt', 'end']);
    expect(events[1]).toMatchObject({ dm: 2, interruptStatus: 1, decoded: 'VRING' });
  });

  it('drops a tracer that stops reading, and the other tracers keep receiving', async () => {
    const { socket, hub, tap } = await daemon(64 * 1024);
    // A tracer that never reads: its response is paused.
    let stalled: IncomingMessage | undefined;
    const stalledReq = get({ socketPath: socket, path: '/trace' }, (res) => {
      stalled = res;
      res.pause();
    });
    stalledReq.on('error', () => {});
    const out = sink();
    const reading = runTrace({ socket, json: true }, { out, err: sink() });
    await until(() => hub.tracers === 2 && stalled !== undefined, 'both tracers');
    const big = { reason: 'x'.repeat(400) };
    let rounds = 0;
    while (hub.tracers === 2 && rounds < 5000) {
      for (let i = 0; i < 50; i += 1) tap.fault('TEST', big);
      rounds += 1;
      await tick();
    }
    expect(hub.tracers, 'the stalled tracer was never dropped').toBe(1);
    expect(hub.dropped).toBe(1);
    tap.notify(7, true);
    await until(() => out.text.includes('"queue":7'), 'the reading tracer to see events after the drop');
    hub.close('done');
    expect(await reading).toBe(0);
    stalledReq.destroy();
  }, 30_000);

  it('says what to do when no daemon serves the socket (exit 1), and refuses a bad --dm (exit 2)', async () => {
    const err = sink();
    expect(await runTrace({ socket: '/nonexistent/status.sock', json: false }, { out: sink(), err })).toBe(1);
    expect(err.text).toMatch(/no node-bao daemon serves status at \/nonexistent\/status.sock: start one with `baoctl run/);
    const err2 = sink();
    expect(await runTrace({ socket: '/x', json: false, dm: -1 }, { out: sink(), err: err2 })).toBe(2);
    expect(err2.text).toMatch(/--dm must be a device model id/);
  });

  it('GET /trace with a bad ?dm= is a 400 that says why; a status server without a hub has no /trace', async () => {
    const { socket } = await daemon();
    const answer = (sock: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        get({ socketPath: sock, path: '/trace?dm=one' }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        }).on('error', reject);
      });
    expect(await answer(socket)).toEqual({ status: 400, body: 'dm must be a device model id (a whole number), got "one"\n' });
    const plain = path.join(testTempDir('node-bao-trace-'), 'status.sock');
    const other = await openStatusServer({ path: plain, status: () => STATUS, log: silentLogger });
    try {
      expect((await answer(plain)).status).toBe(404);
      const err = sink();
      expect(await runTrace({ socket: plain, json: false }, { out: sink(), err })).toBe(1);
      expect(err.text).toMatch(/this daemon does not serve traces/);
    } finally {
      await other.close();
    }
  });

  it('ends at once on Ctrl-C (the abort signal), exit 0', async () => {
    const { socket, hub } = await daemon();
    const ac = new AbortController();
    const done = runTrace({ socket, json: false }, { out: sink(), err: sink(), signal: ac.signal });
    await until(() => hub.tracers === 1, 'the tracer');
    ac.abort();
    expect(await done).toBe(0);
    await until(() => hub.tracers === 0, 'the tracer to leave');
  });
});
