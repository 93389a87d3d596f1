// KernelVsockDevice behind a real MmioTransport, with a recording double of /dev/vhost-vsock:
// the CID is claimed at open, the offer is what both sides handle, and DRIVER_OK hands the
// kernel the driver's features (without ACCESS_PLATFORM), our mapping's addresses and the
// notification eventfds; reset stops it and waits for its rings; re-activation restarts it.
// (The kernel itself is exercised in test/qemu/vhost-vsock.test.ts.)

import { describe, expect, it } from 'vitest';

import { KernelVsockDevice, type VhostVsockOps } from '../../../lib/vhost/kernel/vsock-device.js';
import type { ExternalQueueHost } from '../../../lib/virtio/device.js';
import { ACCESS_PLATFORM, VERSION_1 } from '../../../lib/virtio/features.js';
import { GuestMemory } from '../../../lib/virtio/guest-memory.js';
import { MmioTransport } from '../../../lib/virtio/mmio-transport.js';
import { DEVICE_NEEDS_RESET, DRIVER_OK } from '../../../lib/virtio/status.js';
import { InterruptCounter, MockDriver } from '../../../lib/virtio/testing/mock-driver.js';
import { RecordingVhost } from './recording-vhost.js';

const BASE = 0x4000_0000;
const MAPPED_AT = 0x7f12_3400_0000n;
const EVENT_IDX = 1n << 29n;
const INDIRECT = 1n << 28n;
const SEQPACKET = 1n << 1n;
const LOG_ALL = 1n << 26n;

class FakeVhost extends RecordingVhost implements VhostVsockOps {
  running = false;
  constructor(kernelFeatures = VERSION_1 | EVENT_IDX | INDIRECT | SEQPACKET | LOG_ALL | ACCESS_PLATFORM) {
    super('/dev/vhost-vsock', kernelFeatures);
  }
  setGuestCid(cid: bigint): void {
    this.rec(`cid ${cid}`);
  }
  setRunning(r: boolean): void {
    this.running = r;
    this.rec(`running ${r}`);
  }
  close(): void {
    this.rec('close');
  }
}

function rig(vhost = new FakeVhost()) {
  const device = KernelVsockDevice.open({ guestCid: 3n, vhost });
  const host: ExternalQueueHost = {
    kickFd: (i) => 100 + i,
    callFd: 99,
    region: { fd: 7, guestAddress: BigInt(BASE), size: 1n << 20n, mappedAt: MAPPED_AT },
  };
  device.bindExternalQueues(host);
  const memory = new GuestMemory(BASE, new Uint8Array(1 << 20));
  const driver = new MockDriver(new MmioTransport(device, { memory, interrupt: new InterruptCounter() }), memory, new InterruptCounter());
  return { device, driver, vhost };
}

describe('KernelVsockDevice', () => {
  it('claims the CID at open and serves it in the config space', () => {
    const { driver, vhost } = rig();
    expect(vhost.calls).toEqual(['cid 3']);
    expect(driver.readConfig(0)).toBe(3);
    expect(driver.readConfig(4)).toBe(0);
  });

  it('offers what both it and the kernel handle; vhost-only bits are not offered', () => {
    const { device } = rig();
    expect(device.features).toBe(EVENT_IDX | INDIRECT | SEQPACKET);
    expect(rig(new FakeVhost(VERSION_1 | EVENT_IDX)).device.features).toBe(EVENT_IDX);
  });

  it('at DRIVER_OK gives the kernel the driver features without ACCESS_PLATFORM, our addresses, the eventfds, then runs it', () => {
    const { driver, vhost } = rig();
    driver.init({ features: (offered) => offered & ~SEQPACKET });
    const q0 = driver.queue(0);
    const user = (gpa: number) => `0x${(MAPPED_AT + BigInt(gpa - BASE)).toString(16)}`;
    expect(vhost.features).toBe(VERSION_1 | EVENT_IDX | INDIRECT);
    expect(vhost.calls.slice(1, 9)).toEqual([
      `features 0x${(VERSION_1 | EVENT_IDX | INDIRECT).toString(16)}`,
      `mem 0x${BASE.toString(16)} 0x100000 0x${MAPPED_AT.toString(16)}`,
      'num 0 1024',
      'base 0 0',
      `addr 0 ${user(q0.descTable)} ${user(q0.availRing)} ${user(q0.usedRing)}`,
      'kick 0 100',
      'call 0 99',
      'num 1 1024',
    ]);
    expect(vhost.calls.at(-1)).toBe('running true');
    expect(vhost.calls.some((c) => c.includes(' 2 '))).toBe(false); // the event queue stays ours
  });

  it('stops the kernel device and waits for its rings on reset, and restarts it on the next DRIVER_OK', () => {
    const { driver, vhost } = rig();
    driver.init();
    driver.reset();
    expect(vhost.calls.slice(-3)).toEqual(['running false', 'getbase 0', 'getbase 1']);
    driver.init();
    expect(vhost.running).toBe(true);
    expect(driver.status() & (DRIVER_OK | DEVICE_NEEDS_RESET)).toBe(DRIVER_OK);
  });

  it('puts the device in NEEDS_RESET when the kernel refuses the setup', () => {
    const vhost = new FakeVhost();
    vhost.failOn = 'mem';
    const { driver, device } = rig(vhost);
    driver.init();
    expect(driver.status() & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(device.metrics.failedActivations).toBe(1);
    expect(vhost.running).toBe(false);
  });
});
