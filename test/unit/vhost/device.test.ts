// VhostUserDevice behind a real MmioTransport, driven like Linux's virtio_mmio: at DRIVER_OK
// the backend (in-process, on a real socketpair) gets the region fd, the rings and the
// notification eventfds; reset stops the rings; a backend that dies puts the device in
// NEEDS_RESET, and the next activation runs on the reconnected backend.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { loadAddon } from '../../../lib/native.js';
import { VhostUserDevice, type VhostUserDeviceOptions } from '../../../lib/vhost/user/device.js';
import { VhostUserError } from '../../../lib/vhost/user/errors.js';
import { F_PROTOCOL_FEATURES, ProtocolFeature, Req } from '../../../lib/vhost/user/protocol.js';
import type { ExternalQueueHost } from '../../../lib/virtio/device.js';
import { ACCESS_PLATFORM, VERSION_1 } from '../../../lib/virtio/features.js';
import { GuestMemory } from '../../../lib/virtio/guest-memory.js';
import { INTERRUPT_VRING } from '../../../lib/virtio/mmio-registers.js';
import { MmioTransport } from '../../../lib/virtio/mmio-transport.js';
import { DEVICE_NEEDS_RESET, DRIVER_OK } from '../../../lib/virtio/status.js';
import { InterruptCounter, MockDriver } from '../../../lib/virtio/testing/mock-driver.js';
import { FakeBackend, type FakeBackendOptions } from './fake-backend.js';
import { regionHost } from './region-host.js';

const addon = loadAddon();
const BASE = 0x4000_0000;
const SIZE = 1 << 20;
const EVENT_IDX = 1n << 29n;
const bit = (b: number): bigint => 1n << BigInt(b);

const until = async (cond: () => boolean, ms = 3000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};
const settle = () => new Promise((r) => setTimeout(r, 30));

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function readCounter(fd: number): bigint | null {
  const b = Buffer.alloc(8);
  try {
    fs.readSync(fd, b);
  } catch {
    return null;
  }
  return b.readBigUInt64LE();
}

/** A host like DeviceModelServer's: a file-backed region (as mappable as a DM fd), eventfds. */
function makeHost(): { host: ExternalQueueHost; memory: GuestMemory } {
  const file = path.join(os.tmpdir(), `vu-region-${process.pid}-${Math.random().toString(16).slice(2)}`);
  const fd = fs.openSync(file, 'w+');
  fs.rmSync(file);
  fs.ftruncateSync(fd, SIZE);
  const { host, buffer } = regionHost(addon, fd, BASE, SIZE, (fn) => cleanups.push(fn));
  return { host, memory: new GuestMemory(BASE, new Uint8Array(buffer)) };
}

interface Rig {
  device: VhostUserDevice;
  driver: MockDriver;
  host: ExternalQueueHost;
  backends: FakeBackend[];
  /** What the next dial does: a new backend (default) or a failure. */
  next: { fail?: VhostUserError; options?: FakeBackendOptions };
}

async function rig(backend: FakeBackendOptions = {}, extra: Partial<VhostUserDeviceOptions> = {}): Promise<Rig> {
  const backends: FakeBackend[] = [];
  const next: Rig['next'] = { options: backend };
  const device = await VhostUserDevice.open({
    name: 'fs',
    deviceId: 26,
    socketPath: '/run/test/fs0.sock',
    queueMaxSizes: [1024, 1024],
    configSize: 40,
    defaultConfig: new Uint8Array(40),
    reconnectMs: 20,
    timeoutMs: 1000,
    dial: () => {
      if (next.fail !== undefined) throw next.fail;
      const [fd, b] = FakeBackend.pair(next.options ?? backend);
      backends.push(b);
      return fd;
    },
    ...extra,
  });
  cleanups.push(async () => {
    await device.close();
    for (const b of backends) b.close();
  });
  const { host, memory } = makeHost();
  device.bindExternalQueues(host);
  const transport = new MmioTransport(device, { memory, interrupt: new InterruptCounter() });
  const driver = new MockDriver(transport, memory, new InterruptCounter());
  return { device, driver, host, backends, next };
}

const withAck: FakeBackendOptions = {
  features: VERSION_1 | F_PROTOCOL_FEATURES | EVENT_IDX,
  protocolFeatures: bit(ProtocolFeature.REPLY_ACK),
};

describe('VhostUserDevice', () => {
  it('offers the backend device features; the transport adds VERSION_1 and ACCESS_PLATFORM', async () => {
    const { device, driver } = await rig(withAck);
    expect(device.features).toBe(EVENT_IDX);
    const offered = driver.deviceFeatures();
    expect(offered & (VERSION_1 | ACCESS_PLATFORM | EVENT_IDX)).toBe(VERSION_1 | ACCESS_PLATFORM | EVENT_IDX);
    expect(offered & F_PROTOCOL_FEATURES).toBe(0n);
  });

  it('refuses a backend without VERSION_1', async () => {
    await expect(rig({ features: F_PROTOCOL_FEATURES })).rejects.toMatchObject({ code: 'FEATURES_MISSING' });
  });

  it('refuses a backend that cannot serve the config space when no default is known', async () => {
    await expect(rig(withAck, { defaultConfig: undefined })).rejects.toMatchObject({ code: 'PROTOCOL_FEATURE_MISSING' });
  });

  it('serves the config space the backend reports with CONFIG', async () => {
    const config = new Uint8Array(40);
    config.set(Buffer.from('backend-tag'));
    const { driver } = await rig({ ...withAck, protocolFeatures: bit(ProtocolFeature.CONFIG), config }, { defaultConfig: undefined });
    expect(driver.readConfig(0, 1)).toBe('b'.charCodeAt(0));
  });

  it('at DRIVER_OK hands the backend features, the region fd, every ring and the eventfds', async () => {
    const { driver, backends, host } = await rig(withAck);
    driver.init();
    await until(() => backends[0]!.vring(1).enabled === true);
    const b = backends[0]!;
    // The driver's features, ACCESS_PLATFORM kept between it and us, plus vhost-user's bit 30.
    expect(b.features).toBe(VERSION_1 | EVENT_IDX | F_PROTOCOL_FEATURES);
    expect(b.memTable).toEqual([{ guestPhysAddr: BigInt(BASE), memorySize: BigInt(SIZE), userspaceAddr: BigInt(BASE), mmapOffset: 0n }]);
    expect(b.memFd).toBeDefined();
    for (const index of [0, 1]) {
      const q = driver.queue(index);
      const v = b.vring(index);
      expect(v.num).toBe(1024);
      expect(v.base).toBe(0);
      expect(v.addr).toMatchObject({ desc: BigInt(q.descTable), avail: BigInt(q.availRing), used: BigInt(q.usedRing) });
      expect(v.kickFd).toBeDefined();
      expect(v.callFd).toBeDefined();
    }
    // The backend maps the fd it got and finds the driver's ring where the table says.
    const c = addon.constants;
    const theirs = new Uint8Array(addon.mmap(b.memFd!, SIZE, 0, c.PROT_READ | c.PROT_WRITE));
    const q0 = driver.queue(0);
    q0.add([{ length: 16, writable: true }]);
    const availIdxAt = Number(b.vring(0).addr!.avail - b.memTable[0]!.userspaceAddr) + 2;
    expect(theirs[availIdxAt]).toBe(1);
    addon.munmap(theirs.buffer as ArrayBuffer);
    // Each ring was kicked once when it went live (see 'kicks every ring once ...').
    expect(readCounter(b.vring(0).kickFd!)).toBe(1n);
    // A kick through the transport (no ioeventfd here) reaches the backend's kick fd.
    driver.kick(0);
    expect(readCounter(b.vring(0).kickFd!)).toBe(1n);
    // The backend's call is our irqfd.
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    fs.writeSync(b.vring(0).callFd!, one);
    expect(readCounter(host.callFd)).toBe(1n);
    // Interrupts raised behind the transport's back: InterruptStatus says "look at the rings".
    expect(driver.interruptStatus() & INTERRUPT_VRING).toBe(INTERRUPT_VRING);
    const order = b.requests().filter((r) => r !== Req.GET_FEATURES && r !== Req.GET_PROTOCOL_FEATURES && r !== Req.SET_PROTOCOL_FEATURES && r !== Req.SET_OWNER);
    expect(order.slice(0, 8)).toEqual([Req.SET_FEATURES, Req.SET_MEM_TABLE, Req.SET_VRING_NUM, Req.SET_VRING_BASE, Req.SET_VRING_ADDR, Req.SET_VRING_CALL, Req.SET_VRING_KICK, Req.SET_VRING_ENABLE]);
  });

  it('has every queue’s kick eventfd before the DRIVER_OK write completes, ahead of the backend conversation', async () => {
    const r = await rig(withAck);
    const asked: number[] = [];
    const kickFd = r.host.kickFd.bind(r.host);
    r.device.bindExternalQueues({ ...r.host, kickFd: (i) => (asked.push(i), kickFd(i)) });
    r.driver.init();
    // Synchronously: a DeviceModelServer registers each as the queue's ioeventfd right there,
    // so the driver's first kicks go to the eventfds, not to a ring nobody serves yet.
    expect([...new Set(asked)].sort()).toEqual([0, 1]);
    expect(r.backends[0]!.vring(1).kickFd).toBeUndefined();
    await until(() => r.backends[0]!.vring(1).enabled === true);
  });

  it('keeps a kick that comes while the rings are being handed over: the backend finds it in the kick eventfd', async () => {
    const { device, driver, backends } = await rig(withAck);
    driver.init();
    // The driver queues and kicks at once (virtiofs's FUSE_INIT at mount), while the backend
    // has not had SET_VRING_KICK yet; with EVENT_IDX it would never kick that ring again.
    expect(backends[0]!.vring(1).kickFd).toBeUndefined();
    driver.queue(1).add([{ length: 64 }, { length: 64, writable: true }]);
    driver.kick(1);
    expect(device.metrics).toMatchObject({ forwardedKicks: 1, earlyKicks: 1 });
    await until(() => backends[0]!.vring(1).enabled === true && device.metrics.activations === 1);
    // The early kick and the one every ring gets when it goes live.
    expect(readCounter(backends[0]!.vring(1).kickFd!)).toBe(2n);
  });

  it('kicks every ring once after enabling it (a backend drops kicks it read while the ring was disabled)', async () => {
    const { device, driver, backends } = await rig(withAck);
    driver.init();
    await until(() => device.metrics.activations === 1);
    const b = backends[0]!;
    const last = b.requests().lastIndexOf(Req.SET_VRING_ENABLE);
    expect(last).toBeGreaterThan(b.requests().lastIndexOf(Req.SET_VRING_KICK));
    for (const index of [0, 1]) expect(readCounter(b.vring(index).kickFd!)).toBe(1n);
    expect(device.metrics.earlyKicks).toBe(0);
  });

  it('drops kicks before DRIVER_OK and after a reset: no ring to serve', async () => {
    const { device, driver, backends } = await rig(withAck);
    driver.init();
    await until(() => device.metrics.activations === 1);
    await driver.reset();
    await until(() => backends[0]!.vring(1).stopped === true);
    device.queueNotify(1);
    expect(device.metrics.forwardedKicks).toBe(0);
  });

  it('stops every ring with GET_VRING_BASE when the driver resets the device', async () => {
    const { driver, backends } = await rig(withAck);
    driver.init();
    await until(() => backends[0]!.vring(1).enabled === true);
    await driver.reset();
    await until(() => backends[0]!.vring(1).stopped === true);
    expect(backends[0]!.vring(0).stopped).toBe(true);
    expect(backends[0]!.vring(0).enabled).toBe(false);
    expect(driver.interruptStatus() & INTERRUPT_VRING).toBe(0);
  });

  it('goes NEEDS_RESET when the backend dies, reconnects, and works again after the driver resets', async () => {
    const { device, driver, backends } = await rig(withAck);
    driver.init();
    await until(() => backends[0]!.vring(1).enabled === true);
    backends[0]!.close();
    await until(() => (driver.status() & DEVICE_NEEDS_RESET) !== 0);
    await until(() => backends.length === 2 && device.connected);
    await driver.reset();
    driver.init();
    // The activation is counted once its last message is answered, after the ring is enabled.
    await until(() => backends[1]!.vring(1).enabled === true && device.metrics.activations === 2);
    expect(driver.status() & (DRIVER_OK | DEVICE_NEEDS_RESET)).toBe(DRIVER_OK);
    expect(device.metrics).toMatchObject({ connects: 2, disconnects: 1, activations: 2 });
  });

  it('fails the activation, without hanging, when the backend is not back yet', async () => {
    const { device, driver, backends, next } = await rig(withAck);
    driver.init();
    await until(() => backends[0]!.vring(1).enabled === true);
    next.fail = new VhostUserError('BACKEND_MISSING', 'no backend');
    backends[0]!.close();
    await until(() => (driver.status() & DEVICE_NEEDS_RESET) !== 0);
    await driver.reset();
    driver.init();
    await until(() => (driver.status() & DEVICE_NEEDS_RESET) !== 0);
    expect(device.metrics.failedActivations).toBe(1);
    // Back again: the reconnection loop picks it up and the next activation succeeds.
    next.fail = undefined;
    await until(() => device.connected);
    await driver.reset();
    driver.init();
    await until(() => backends.at(-1)!.vring(1).enabled === true);
  });

  it('times out a backend that stops answering mid-activation and marks the device NEEDS_RESET', async () => {
    const { driver } = await rig({ ...withAck, silentOn: [Req.SET_MEM_TABLE] }, { timeoutMs: 100 });
    driver.init();
    await until(() => (driver.status() & DEVICE_NEEDS_RESET) !== 0);
  });

  it('refuses a restarted backend that offers fewer features than the driver was offered', async () => {
    const { device, driver, backends, next } = await rig(withAck);
    driver.init();
    await until(() => backends[0]!.vring(1).enabled === true);
    next.options = { ...withAck, features: VERSION_1 | F_PROTOCOL_FEATURES };
    backends[0]!.close();
    await until(() => (driver.status() & DEVICE_NEEDS_RESET) !== 0);
    await settle();
    await settle();
    expect(device.connected).toBe(false);
  });
});
