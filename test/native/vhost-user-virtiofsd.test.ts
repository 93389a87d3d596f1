// The vhost-user frontend against a real backend on the host: Debian's virtiofsd serves a
// directory, our VhostUserDevice hands it a file-backed region (mapped from offset 0, as a DM fd
// is), the rings and real eventfds, and a FUSE_INIT request that the in-process frontend driver
// posts is answered through the rings, with the call eventfd signalled. Killing virtiofsd puts
// the device in NEEDS_RESET. (The guest's own virtiofs driver: test/qemu/vhost-user-fs.test.ts.)

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { loadAddon } from '../../lib/native.js';
import { VhostUserDevice } from '../../lib/vhost/user/device.js';
import { defaultConfig } from '../../lib/vhost/user/device-types.js';
import type { ExternalQueueHost } from '../../lib/virtio/device.js';
import { GuestMemory } from '../../lib/virtio/guest-memory.js';
import { MmioTransport } from '../../lib/virtio/mmio-transport.js';
import { DEVICE_NEEDS_RESET } from '../../lib/virtio/status.js';
import { InterruptCounter, MockDriver } from '../../lib/virtio/testing/mock-driver.js';
import { regionHost } from '../unit/vhost/region-host.js';
import { skipBecause } from './skip.js';

const addon = loadAddon();
const VIRTIOFSD = ['/usr/libexec/virtiofsd', '/usr/lib/qemu/virtiofsd'].find((p) => fs.existsSync(p));
const BASE = 0x10_0000;
const SIZE = 4 << 20;
const FUSE_INIT = 26;
const EVENT_IDX = 1n << 29n;

const until = async (cond: () => boolean, ms: number, what: string): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function counter(fd: number): bigint {
  const b = Buffer.alloc(8);
  try {
    fs.readSync(fd, b);
  } catch {
    return 0n;
  }
  return b.readBigUInt64LE();
}

/** virtiofsd on a fresh share and a region and eventfds as DeviceModelServer provides them. */
async function startVirtiofsd(): Promise<{ socket: string; host: ExternalQueueHost; buffer: ArrayBuffer; callFd: number; child: ChildProcess; log: () => string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vu-fsd-'));
  const share = path.join(dir, 'share');
  fs.mkdirSync(share);
  const socket = path.join(dir, 'fs0.sock');
  const child: ChildProcess = spawn(VIRTIOFSD!, [`--socket-path=${socket}`, '-o', `source=${share}`, '-o', 'sandbox=chroot', '-o', 'cache=none'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  cleanups.push(() => {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await until(() => fs.existsSync(socket), 5000, `virtiofsd's socket (${log})`);

  // The region: a file mapped from offset 0 (what a DM fd allows), as DeviceModelServer provides it.
  const file = path.join(dir, 'region');
  const fd = fs.openSync(file, 'w+');
  fs.ftruncateSync(fd, SIZE);
  const { host, buffer } = regionHost(addon, fd, BASE, SIZE, (fn) => cleanups.push(fn));

  return { socket, host, buffer, callFd: host.callFd, child, log: () => log };
}

/** FUSE_INIT on the request queue (1): in header + init_in readable, room for the reply writable. */
function postFuseInit(driver: MockDriver): number {
  const req = Buffer.alloc(40 + 16);
  req.writeUInt32LE(req.length, 0);
  req.writeUInt32LE(FUSE_INIT, 4);
  req.writeBigUInt64LE(1n, 8); // unique
  req.writeUInt32LE(7, 40); // major
  req.writeUInt32LE(31, 44); // minor
  return driver.queue(1).add([{ data: req }, { length: 16 + 256, writable: true }]);
}

/** A virtio-fs device on virtiofsd's socket, its queues on `host`, and a driver that has initialised it. */
async function openFsDevice(socket: string, host: ExternalQueueHost, buffer: ArrayBuffer): Promise<{ device: VhostUserDevice; driver: MockDriver }> {
  const device = await VhostUserDevice.open({
    name: 'fs',
    deviceId: 26,
    socketPath: socket,
    queueMaxSizes: [128, 128],
    configSize: 40,
    defaultConfig: defaultConfig('fs', { tag: 'test' })!,
    reconnectMs: 50,
  });
  cleanups.push(() => device.close());
  device.bindExternalQueues(host);
  const memory = new GuestMemory(BASE, new Uint8Array(buffer));
  const driver = new MockDriver(new MmioTransport(device, { memory, interrupt: new InterruptCounter() }), memory, new InterruptCounter());
  driver.init();
  return { device, driver };
}

describe('VhostUserDevice with virtiofsd', () => {
  it('answers a FUSE_INIT the driver kicked during the activation, with EVENT_IDX (no later kick)', async (ctx) => {
    if (VIRTIOFSD === undefined) skipBecause(ctx, 'no virtiofsd on this machine (qemu/provision.sh installs it)');
    if (process.getuid?.() !== 0) skipBecause(ctx, 'virtiofsd needs root');
    const { socket, host, buffer, log } = await startVirtiofsd();
    const { device, driver } = await openFsDevice(socket, host, buffer);
    expect(device.features & EVENT_IDX).toBe(EVENT_IDX); // init() accepts what is offered
    // As Linux's virtiofs at mount: queued and kicked right after DRIVER_OK, while the rings
    // are still being handed over. With EVENT_IDX the driver would not kick this ring again.
    const head = postFuseInit(driver);
    driver.kick(1);
    expect(device.metrics.earlyKicks).toBe(1);
    const q = driver.queue(1);
    let used: { id: number; len: number }[] = [];
    await until(() => (used = used.concat(q.used())).length > 0, 10_000, `virtiofsd to answer the early FUSE_INIT (${log()})`);
    expect(used[0]!.id).toBe(head);
    expect(Buffer.from(q.buffers(head)[1]!).readInt32LE(4)).toBe(0);
  }, 30_000);

  it('gets a FUSE_INIT answered through the rings, and goes NEEDS_RESET when virtiofsd dies', async (ctx) => {
    if (VIRTIOFSD === undefined) skipBecause(ctx, 'no virtiofsd on this machine (qemu/provision.sh installs it)');
    if (process.getuid?.() !== 0) skipBecause(ctx, 'virtiofsd needs root');
    const { socket, host, buffer, callFd, child, log } = await startVirtiofsd();
    const { device, driver } = await openFsDevice(socket, host, buffer);
    expect(driver.readConfig(0, 1)).toBe('t'.charCodeAt(0));

    const q = driver.queue(1);
    const head = postFuseInit(driver);
    await until(() => device.connected && device.metrics.activations === 1, 5000, 'the activation');
    driver.kick(1);
    let used: { id: number; len: number }[] = [];
    await until(() => (used = used.concat(q.used())).length > 0, 10_000, `virtiofsd to answer FUSE_INIT (${log()})`);
    expect(used[0]!.id).toBe(head);
    const reply = Buffer.from(q.buffers(head)[1]!);
    expect(reply.readInt32LE(4)).toBe(0); // error
    expect(reply.readBigUInt64LE(8)).toBe(1n); // unique
    expect(reply.readUInt32LE(16)).toBe(7); // the backend's FUSE major version
    expect(counter(callFd)).toBeGreaterThan(0n); // the backend's interrupt is the irqfd's

    child.kill('SIGKILL');
    await until(() => (driver.status() & DEVICE_NEEDS_RESET) !== 0, 5000, 'NEEDS_RESET');
    expect(device.metrics.disconnects).toBe(1);
  }, 30_000);
});
