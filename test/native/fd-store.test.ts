// systemd's fd store for real syscalls: FDSTORE=1 datagrams carry the eventfds as SCM_RIGHTS to a
// bound NOTIFY_SOCKET; a stand-in supervisor (fd-store-supervisor.ts: this host cannot run
// systemd, its PID 1 is not systemd) keeps them while the service is SIGKILLed and hands them
// back at fd 3.. with LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID; the restarted service gets the very
// same kernel objects, and whatever is not what its name says is closed and ignored with a warning.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { EventFd } from '../../lib/dispatcher/eventfd.js';
import { PACKAGE_ROOT, loadAddon } from '../../lib/native.js';
import { systemdFdStore } from '../../lib/vmm/restart/fd-store.js';
import { KeptFds } from '../../lib/vmm/restart/kept-fds.js';
import { silentLogger } from '../../lib/virtio/logger.js';
import { FdStoreSupervisor } from './fd-store-supervisor.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-bao-fdstore-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let supervisor: FdStoreSupervisor | undefined;
afterEach(async () => {
  await supervisor?.close();
  supervisor = undefined;
});

interface Report {
  pid: number;
  keptIrq: boolean;
  keptKicks: number[];
  counts: { received: number; rejected: number; taken: number; unused: number; stored: number };
  warnings: string[];
  listenLeft: string[];
}

/** Collects the child's stdout JSON lines. */
function lines(): { push: (t: string) => void; next: (timeoutMs: number) => Promise<Record<string, unknown>> } {
  let buf = '';
  const queue: Record<string, unknown>[] = [];
  let waiter: ((r: Record<string, unknown>) => void) | undefined;
  return {
    push(t) {
      buf += t;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const obj = JSON.parse(line) as Record<string, unknown>;
        if (waiter !== undefined) {
          const w = waiter;
          waiter = undefined;
          w(obj);
        } else queue.push(obj);
      }
    },
    next(timeoutMs) {
      const q = queue.shift();
      if (q !== undefined) return Promise.resolve(q);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no report from the service')), timeoutMs);
        waiter = (r) => {
          clearTimeout(t);
          resolve(r);
        };
      });
    },
  };
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("systemd's fd store protocol", () => {
  it('sends FDSTORE=1 with the name and the fd itself (SCM_RIGHTS) to NOTIFY_SOCKET', async () => {
    const addon = loadAddon();
    const socketPath = path.join(dir, 'notify-1');
    const sock = addon.unixDatagramBind(socketPath);
    try {
      const store = systemdFdStore({ NOTIFY_SOCKET: socketPath }, () => (p: string, d: Buffer, f: readonly number[]) => addon.sendUnixDatagramFds(p, d, f));
      expect(store).toBeDefined();
      const kept = new KeptFds({ log: silentLogger, store: store! });
      const irq = EventFd.create();
      kept.publish({ kind: 'irq', dm: 2 }, irq.fd);
      const got = addon.recvFds(sock, new Uint8Array(512));
      expect(got.fds).toHaveLength(1);
      // The received fd is the same eventfd: a write on one is read on the other.
      const copy = EventFd.adopt(got.fds[0]!);
      irq.write(5);
      expect(copy.read()).toBe(5n);
      copy.close();
      irq.close();
      expect(kept.counts.stored).toBe(1);
    } finally {
      fs.closeSync(sock);
      fs.rmSync(socketPath, { force: true });
    }
  });

  it('the message reads FDSTORE=1, FDNAME=<name>, FDPOLL=0', async () => {
    const addon = loadAddon();
    const socketPath = path.join(dir, 'notify-2');
    const sock = addon.unixDatagramBind(socketPath);
    try {
      const store = systemdFdStore({ NOTIFY_SOCKET: socketPath }, () => (p: string, d: Buffer, f: readonly number[]) => addon.sendUnixDatagramFds(p, d, f))!;
      const e = EventFd.create();
      store('dm0-kick1', e.fd);
      const into = new Uint8Array(512);
      const got = addon.recvFds(sock, into);
      expect(Buffer.from(into.subarray(0, got.bytes)).toString()).toBe('FDSTORE=1\nFDNAME=dm0-kick1\nFDPOLL=0');
      for (const fd of got.fds) fs.closeSync(fd);
      e.close();
    } finally {
      fs.closeSync(sock);
      fs.rmSync(socketPath, { force: true });
    }
  });

  it('outside systemd (no NOTIFY_SOCKET) nothing is stored', () => {
    expect(systemdFdStore({}, () => () => 0)).toBeUndefined();
    expect(new KeptFds({ log: silentLogger }).storing).toBe(false);
  });

  it('a service SIGKILLed and restarted by the supervisor gets the same eventfds back; bad ones are closed with a warning', async () => {
    const out = lines();
    supervisor = new FdStoreSupervisor({
      command: [process.execPath, path.join(PACKAGE_ROOT, 'node_modules/vite-node/vite-node.mjs'), path.join(PACKAGE_ROOT, 'test/native/kept-fds-child.ts')],
      socketPath: path.join(dir, 'notify-3'),
      cwd: PACKAGE_ROOT,
      onOutput: (t) => out.push(t),
    });
    supervisor.start();
    const first = (await out.next(120_000)) as unknown as Report;
    expect(first.keptIrq).toBe(false);
    expect(first.counts.stored).toBe(2);
    await waitFor(() => supervisor!.store.length === 2, 10_000, 'two fds in the store');
    expect(supervisor.store.map((s) => s.name).sort()).toEqual(['dm0-irq', 'dm0-kick0']);

    // What a store may also hold: an fd of the wrong kind, a name not ours, a DM the config no
    // longer has, a queue the device does not have.
    const [socketEnd, otherEnd] = loadAddon().socketPair();
    fs.closeSync(otherEnd);
    supervisor.store.push({ name: 'dm0-kick1', fd: socketEnd });
    supervisor.store.push({ name: 'garbage', fd: EventFd.create().fd });
    supervisor.store.push({ name: 'dm5-irq', fd: EventFd.create().fd });
    supervisor.store.push({ name: 'dm0-kick9', fd: EventFd.create().fd });

    await supervisor.kill('SIGKILL');
    // While no process runs, the kernel object keeps counting (here: the supervisor's copy is written).
    const stored = supervisor.store.find((s) => s.name === 'dm0-irq')!;
    fs.writeSync(stored.fd, Buffer.from([7, 0, 0, 0, 0, 0, 0, 0]));

    const child = supervisor.start();
    const second = (await out.next(120_000)) as unknown as Report;
    expect(second.pid).not.toBe(first.pid);
    expect(second.keptIrq).toBe(true);
    expect(second.keptKicks).toEqual([0]);
    expect(second.counts).toMatchObject({ received: 6, rejected: 3, taken: 3, unused: 1, stored: 0 });
    expect(second.warnings.join('\n')).toMatch(/'dm0-kick1'.*not an eventfd/);
    expect(second.warnings.join('\n')).toMatch(/'garbage'.*not a name node-bao gives/);
    expect(second.warnings.join('\n')).toMatch(/'dm0-kick9'.*2 queue\(s\)/);
    expect(second.warnings.join('\n')).toMatch(/'dm5-irq' closed: no device model with id 5/);
    expect(second.listenLeft).toEqual([]);
    child.stdin!.write('read\n');
    expect(await out.next(30_000)).toEqual({ irqCounter: '7' });
  }, 300_000);
});
