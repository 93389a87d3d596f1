// The `baoctl restart` hand-over for real: two KeptFds on a real unix socket with real SCM_RIGHTS.
// The fds travel before the old side lets go (a taker that fails first leaves it serving), the
// old side detaches, saves state and sends what it made meanwhile, and the taker ends up with the
// very same kernel objects under their names.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { EventFd } from '../../lib/dispatcher/eventfd.js';
import { loadAddon } from '../../lib/native.js';
import { FdChannel } from '../../lib/vmm/restart/fd-channel.js';
import { HandoverError, openHandoverServer, restartSocketPath, takeOver, type HandoverServer } from '../../lib/vmm/restart/handover.js';
import { KeptFds, type KeptDeviceModel, type NamedFd } from '../../lib/vmm/restart/kept-fds.js';
import { silentLogger } from '../../lib/virtio/logger.js';

const addon = loadAddon();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-bao-handover-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let server: HandoverServer | undefined;
const opened: EventFd[] = [];
afterEach(() => {
  server?.close();
  server = undefined;
  for (const e of opened.splice(0)) e.close();
});

function eventfd(): EventFd {
  const e = EventFd.create();
  opened.push(e);
  return e;
}

/** A serving device model as the factory registers it: an irqfd and `queues` kicks; one more kick after detach if `late`. */
function model(dm: number, queues: number, events: string[], late = false): { model: KeptDeviceModel; irq: EventFd; lateKick: EventFd } {
  const irq = eventfd();
  const kicks = Array.from({ length: queues }, () => eventfd());
  const lateKick = eventfd();
  let detached = false;
  return {
    irq,
    lateKick,
    model: {
      dm,
      fds: (): NamedFd[] => [
        { name: `dm${dm}-irq`, fd: irq.fd },
        ...kicks.map((k, q) => ({ name: `dm${dm}-kick${q}`, fd: k.fd })),
        ...(late && detached ? [{ name: `dm${dm}-kick${queues}`, fd: lateKick.fd }] : []),
      ],
      detach: async () => {
        events.push(`detach ${dm}`);
        detached = true;
      },
    },
  };
}

describe('the baoctl restart hand-over', () => {
  it('the restart socket sits next to the status socket', () => {
    expect(restartSocketPath('/run/node-bao/status.sock')).toBe('/run/node-bao/restart.sock');
    expect(restartSocketPath('/tmp/a.sock')).toBe('/tmp/a.sock.restart');
  });

  it('hands every fd over (in messages of at most 16), detaches, saves state, and then the old side ends', async () => {
    const events: string[] = [];
    const old = new KeptFds({ log: silentLogger });
    const a = model(0, 2, events, true);
    const b = model(3, 20, events);
    old.register(a.model);
    old.register(b.model);
    const socket = path.join(dir, 'restart-1.sock');
    const handedOver = new Promise<void>((resolve) => {
      server = openHandoverServer({
        path: socket,
        kept: old,
        log: silentLogger,
        addon,
        saveState: async (models) => {
          events.push(`save ${models.length}`);
        },
        onHandedOver: () => {
          events.push('handed over');
          resolve();
        },
      });
    });
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
    const next = new KeptFds({ log: silentLogger });
    const result = await takeOver({ path: socket, kept: next, log: silentLogger, addon, alive: () => false });
    await handedOver;
    expect(result).toMatchObject({ pid: process.pid, devices: 2, fds: 1 + 2 + 1 + 1 + 20 });
    expect(events).toEqual(['detach 0', 'detach 3', 'save 2', 'handed over']);
    expect(next.counts).toMatchObject({ received: 25, rejected: 0 });

    // The same kernel objects: what the old side's eventfd counts, the new side reads.
    const irq = EventFd.adopt(next.takeIrq(0)!);
    opened.push(irq);
    a.irq.write(3);
    expect(irq.read()).toBe(3n);
    const kicks0 = next.takeKicks(0, 3);
    expect([...kicks0.keys()].sort()).toEqual([0, 1, 2]);
    const late = EventFd.adopt(kicks0.get(2)!);
    opened.push(late);
    a.lateKick.write(1);
    expect(late.read()).toBe(1n);
    expect(next.takeKicks(3, 20).size).toBe(20);
    next.closeUnused();
  });

  it('a taker that goes away before the old side let go leaves it serving, and a later one succeeds', async () => {
    const events: string[] = [];
    const old = new KeptFds({ log: silentLogger });
    old.register(model(1, 1, events).model);
    const socket = path.join(dir, 'restart-2.sock');
    let handed = 0;
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (_o: object, msg?: string) => warned.push(msg ?? ''), child: () => log };
    server = openHandoverServer({ path: socket, kept: old, log, addon, onHandedOver: () => (handed += 1) });

    const channel = new FdChannel(addon.unixConnect(socket), addon);
    await channel.send({ op: 'take-over', version: 1, pid: 1 });
    const fds = await channel.next(30_000);
    expect(fds.msg.op).toBe('fds');
    expect(fds.fds).toHaveLength(2);
    for (const fd of fds.fds) fs.closeSync(fd);
    channel.close();
    for (const deadline = Date.now() + 30_000; warned.length === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
    expect(warned.join()).toMatch(/hand-over abandoned, still serving/);
    expect(events).toEqual([]);
    expect(handed).toBe(0);

    await takeOver({ path: socket, kept: new KeptFds({ log: silentLogger }), log: silentLogger, addon, alive: () => false });
    expect(events).toEqual(['detach 1']);
    for (const deadline = Date.now() + 30_000; handed === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
    expect(handed).toBe(1);
  });

  it('with no daemon running there is nothing to take over, and the error says what to do', async () => {
    const err = await takeOver({ path: path.join(dir, 'nobody.sock'), kept: new KeptFds({ log: silentLogger }), log: silentLogger, addon }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandoverError);
    expect((err as HandoverError).code).toBe('NOTHING_TO_TAKE_OVER');
    expect((err as Error).message).toMatch(/baoctl run/);
  });

  it('a second daemon cannot open the restart socket of a running one', () => {
    const socket = path.join(dir, 'restart-3.sock');
    server = openHandoverServer({ path: socket, kept: new KeptFds({ log: silentLogger }), log: silentLogger, addon, onHandedOver: () => {} });
    expect(() => openHandoverServer({ path: socket, kept: new KeptFds({ log: silentLogger }), log: silentLogger, addon, onHandedOver: () => {} })).toThrow(/another daemon/);
  });
});
