// KernelNetDevice behind a real MmioTransport, with a recording double of /dev/vhost-net and a
// tap double: the offer is the tap's offloads plus the ring features the kernel takes; DRIVER_OK
// hands the kernel the driver's choice cut to the bits it knows (never ACCESS_PLATFORM), our
// mapping's addresses, the eventfds and the tap as backend; the config space (MAC, link up, MTU)
// is ours; InterruptStatus shows the used-buffer bit for interrupts the kernel raises; reset
// detaches the tap and waits for the rings, and re-activation restarts it.
// (The kernel itself is exercised in test/qemu/vhost-net.test.ts.)

import { describe, expect, it } from 'vitest';

import { NET_F_CSUM, NET_F_GUEST_CSUM, NET_F_GUEST_TSO4, NET_F_MAC, NET_F_MRG_RXBUF, NET_F_STATUS, NET_F_CTRL_VQ, NET_F_MQ, type TapInterface } from '../../../lib/devices/net/index.js';
import { KernelNetDevice, type VhostNetOps } from '../../../lib/vhost/kernel/net-device.js';
import type { ExternalQueueHost } from '../../../lib/virtio/device.js';
import { ACCESS_PLATFORM, VERSION_1 } from '../../../lib/virtio/features.js';
import { GuestMemory } from '../../../lib/virtio/guest-memory.js';
import { MmioTransport } from '../../../lib/virtio/mmio-transport.js';
import { DEVICE_NEEDS_RESET, DRIVER_OK } from '../../../lib/virtio/status.js';
import { InterruptCounter, MockDriver } from '../../../lib/virtio/testing/mock-driver.js';
import { RecordingVhost } from './recording-vhost.js';

const BASE = 0x4000_0000;
const MAPPED_AT = 0x7f12_3400_0000n;
const TAP_FD = 42;
const EVENT_IDX = 1n << 29n;
const INDIRECT = 1n << 28n;
const NET_HDR = 1n << 27n; // VHOST_NET_F_VIRTIO_NET_HDR: the kernel's, never offered

class FakeVhost extends RecordingVhost implements VhostNetOps {
  closed = false;
  constructor(kernelFeatures = VERSION_1 | EVENT_IDX | INDIRECT | NET_F_MRG_RXBUF | NET_HDR | ACCESS_PLATFORM) {
    super('/dev/vhost-net', kernelFeatures);
  }
  setNetBackend(i: number, fd: number): void {
    this.rec(`backend ${i} ${fd}`);
  }
  close(): void {
    this.closed = true;
    this.rec('close');
  }
}

function fakeTap(): TapInterface & { offloads: number[]; closed: boolean } {
  const tap = {
    name: 'tapv0',
    queues: [],
    fds: [TAP_FD],
    offloads: [] as number[],
    closed: false,
    setOffload(flags: number, done: (err: Error | null) => void) {
      tap.offloads.push(flags);
      done(null);
    },
    close() {
      tap.closed = true;
    },
  };
  return tap;
}

function rig(vhost = new FakeVhost()) {
  const tap = fakeTap();
  const device = KernelNetDevice.open({ tap, mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56], mtu: 1500, queueSize: 256, vhost });
  const host: ExternalQueueHost = {
    kickFd: (i) => 100 + i,
    callFd: 99,
    region: { fd: 7, guestAddress: BigInt(BASE), size: 1n << 20n, mappedAt: MAPPED_AT },
  };
  device.bindExternalQueues(host);
  const memory = new GuestMemory(BASE, new Uint8Array(1 << 20));
  const driver = new MockDriver(new MmioTransport(device, { memory, interrupt: new InterruptCounter() }), memory, new InterruptCounter());
  return { device, driver, vhost, tap };
}

describe('KernelNetDevice (vhost-net)', () => {
  it('serves the MAC, link up and MTU in its own config space', () => {
    const { driver } = rig();
    expect([0, 1, 2, 3, 4, 5].map((i) => driver.readConfig(i, 1))).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    expect(driver.readConfig(6, 2)).toBe(1);
    expect(driver.readConfig(10, 2)).toBe(1500);
  });

  it('offers the tap offloads and what the kernel takes, never a control queue or the kernel-only header bit', () => {
    const { device } = rig();
    for (const f of [NET_F_CSUM, NET_F_GUEST_CSUM, NET_F_GUEST_TSO4, NET_F_MAC, NET_F_STATUS, NET_F_MRG_RXBUF, EVENT_IDX, INDIRECT]) expect(device.features & f).toBe(f);
    expect(device.features & (NET_F_CTRL_VQ | NET_F_MQ | NET_HDR | ACCESS_PLATFORM)).toBe(0n);
    expect(rig(new FakeVhost(VERSION_1)).device.features & (NET_F_MRG_RXBUF | EVENT_IDX)).toBe(0n);
  });

  it('at DRIVER_OK gives the kernel the features it knows, our addresses, the eventfds, then the tap as backend', () => {
    const { driver, vhost, tap } = rig();
    driver.init();
    const q0 = driver.queue(0);
    const user = (gpa: number) => `0x${(MAPPED_AT + BigInt(gpa - BASE)).toString(16)}`;
    // The driver took the offloads too; the kernel gets only its own bits, and no ACCESS_PLATFORM.
    expect(vhost.features).toBe(VERSION_1 | EVENT_IDX | INDIRECT | NET_F_MRG_RXBUF);
    expect(vhost.calls.slice(0, 8)).toEqual([
      `features 0x${vhost.features.toString(16)}`,
      `mem 0x${BASE.toString(16)} 0x100000 0x${MAPPED_AT.toString(16)}`,
      'num 0 256',
      'base 0 0',
      `addr 0 ${user(q0.descTable)} ${user(q0.availRing)} ${user(q0.usedRing)}`,
      'kick 0 100',
      'call 0 99',
      'num 1 256',
    ]);
    expect(vhost.calls.slice(-2)).toEqual([`backend 0 ${TAP_FD}`, `backend 1 ${TAP_FD}`]);
    expect(tap.offloads.at(-1)).not.toBe(0); // large segments towards the guest, which takes them
  });

  it('answers InterruptStatus with the used-buffer bit while live (the kernel raises those interrupts)', () => {
    const { driver } = rig();
    driver.init();
    expect(driver.interruptStatus() & 1).toBe(1);
  });

  it('detaches the tap and waits for the rings on reset, and restarts on the next DRIVER_OK', () => {
    const { driver, vhost, device, tap } = rig();
    driver.init();
    driver.reset();
    expect(vhost.calls.slice(-4)).toEqual(['backend 0 -1', 'backend 1 -1', 'getbase 0', 'getbase 1']);
    expect(tap.offloads.at(-1)).toBe(0);
    driver.init();
    expect(vhost.calls.slice(-1)).toEqual([`backend 1 ${TAP_FD}`]);
    expect(driver.status() & (DRIVER_OK | DEVICE_NEEDS_RESET)).toBe(DRIVER_OK);
    expect(device.metrics).toMatchObject({ activations: 2, stops: 1 });
    device.close();
    expect(device.metrics.stops).toBe(2);
    expect(vhost.closed && tap.closed).toBe(true);
  });

  it('puts the device in NEEDS_RESET when the kernel refuses the setup, with no backend attached', () => {
    const vhost = new FakeVhost();
    vhost.failOn = 'mem';
    const { driver, device } = rig(vhost);
    driver.init();
    expect(driver.status() & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(device.metrics.failedActivations).toBe(1);
    expect(vhost.calls.some((c) => c.startsWith('backend'))).toBe(false);
  });
});
