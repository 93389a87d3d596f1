import { describe, expect, it } from 'vitest';
import { RngDevice, VIRTIO_ID_RNG } from '../../../../lib/devices/rng/index.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../../lib/virtio/descriptor-chain.js';
import {
  ACCESS_PLATFORM,
  RING_EVENT_IDX,
  RING_INDIRECT_DESC,
  VERSION_1,
} from '../../../../lib/virtio/features.js';
import * as R from '../../../../lib/virtio/mmio-registers.js';
import { DEVICE_NEEDS_RESET, DRIVER_OK } from '../../../../lib/virtio/status.js';
import { acceptOnly, MockDriver } from '../../../../lib/virtio/testing/mock-driver.js';
import { ManualScheduler } from '../../../../lib/virtio/testing/manual-scheduler.js';

/** A deterministic entropy source that records the views it was asked to fill. */
function countingFill() {
  const views: Uint8Array[] = [];
  let next = 1;
  const fill = (view: Uint8Array) => {
    views.push(view);
    for (let i = 0; i < view.length; i += 1) view[i] = next++ & 0xff || 0x5a;
  };
  return { fill, views };
}

describe('virtio-rng device (virtio 1.2 §5.4)', () => {
  it('is device 4 with one request queue of 256, no config space, EVENT_IDX and INDIRECT_DESC', () => {
    const device = new RngDevice();
    const driver = MockDriver.create(device);
    expect(driver.probe().deviceId).toBe(VIRTIO_ID_RNG);
    expect(device.queueMaxSizes).toEqual([256]);
    expect(driver.deviceFeatures()).toBe(RING_EVENT_IDX | RING_INDIRECT_DESC | VERSION_1 | ACCESS_PLATFORM);
    expect(driver.readConfig(0, 1)).toBe(0);
    expect(driver.transport.stats.faults.CONFIG_ACCESS_INVALID).toBe(1);
  });

  it('fills a posted buffer with OS entropy, returns it with its length and interrupts the driver', () => {
    const driver = MockDriver.create(new RngDevice()).init();
    const q = driver.queue(0);
    const head = q.add([{ length: 64, writable: true }]);
    driver.kick(0);
    expect(q.used()).toEqual([{ id: head, len: 64 }]);
    const bytes = q.buffers(head)[0] ?? new Uint8Array();
    expect(bytes.some((b) => b !== 0)).toBe(true);
    expect(driver.interrupts.count).toBe(1);
    expect(driver.ackInterrupt()).toBe(R.INTERRUPT_VRING);
    expect(driver.guardsIntact()).toBe(true);
  });

  it('gives different bytes to different requests', () => {
    const driver = MockDriver.create(new RngDevice()).init();
    const q = driver.queue(0);
    const a = q.add([{ length: 32, writable: true }]);
    const b = q.add([{ length: 32, writable: true }]);
    driver.kick(0);
    expect(Buffer.from(q.buffers(a)[0] ?? []).equals(Buffer.from(q.buffers(b)[0] ?? []))).toBe(false);
  });

  it('writes straight into the guest buffers (the entropy source is handed views of guest memory)', () => {
    const { fill, views } = countingFill();
    const driver = MockDriver.create(new RngDevice({ fill })).init();
    const head = driver.queue(0).add([{ length: 16, writable: true }, { length: 8, writable: true }]);
    driver.kick(0);
    expect(views).toHaveLength(2);
    expect(views.every((v) => v.buffer === driver.memory.bytes.buffer)).toBe(true);
    expect(Array.from(driver.queue(0).buffers(head)[1] ?? [])).toEqual([17, 18, 19, 20, 21, 22, 23, 24]);
    expect(driver.queue(0).used()).toEqual([{ id: head, len: 24 }]);
  });

  it('serves indirect chains when INDIRECT_DESC is negotiated', () => {
    const driver = MockDriver.create(new RngDevice()).init();
    const head = driver.queue(0).add([{ length: 10, writable: true }, { length: 20, writable: true }], { indirect: true });
    driver.kick(0);
    expect(driver.queue(0).used()).toEqual([{ id: head, len: 30 }]);
  });

  it('caps the bytes written per request and leaves the rest of the buffer alone', () => {
    const { fill } = countingFill();
    const device = new RngDevice({ fill, maxBytesPerRequest: 100 });
    const driver = MockDriver.create(device).init();
    const head = driver.queue(0).add([{ length: 64, writable: true }, { length: 64, writable: true }]);
    driver.kick(0);
    expect(driver.queue(0).used()).toEqual([{ id: head, len: 100 }]);
    const second = driver.queue(0).buffers(head)[1] ?? new Uint8Array();
    expect(second.subarray(36).every((b) => b === 0)).toBe(true);
    expect(second.subarray(0, 36).every((b) => b !== 0)).toBe(true);
    expect(device.metrics.bytes).toBe(100);
  });

  it('refuses a request whose first descriptor is device-readable: length 0, nothing written, counted; serves the next', () => {
    const device = new RngDevice();
    const driver = MockDriver.create(device).init();
    const q = driver.queue(0);
    const readOnly = q.add([{ data: [1, 2, 3] }]);
    const mixed = q.add([{ data: [9] }, { length: 8, writable: true }]);
    const good = q.add([{ length: 8, writable: true }]);
    driver.kick(0);
    expect(q.used()).toEqual([
      { id: readOnly, len: 0 },
      { id: mixed, len: 0 },
      { id: good, len: 8 },
    ]);
    expect(Array.from(q.buffers(mixed)[1] ?? [])).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(device.metrics.readableRequests).toBe(2);
    expect(device.metrics.requests).toBe(1);
    expect(driver.status() & DEVICE_NEEDS_RESET).toBe(0); // a wrong request, not corrupt rings
  });

  it('returns a request with zero writable bytes with length 0 and counts it', () => {
    const device = new RngDevice();
    const driver = MockDriver.create(device).init();
    const q = driver.queue(0);
    const empty = q.add([{ length: 0, writable: true }]);
    driver.kick(0);
    expect(q.used()).toEqual([{ id: empty, len: 0 }]);
    expect(device.metrics.noWritableBuffer).toBe(1);
  });

  it('puts itself in NEEDS_RESET on a malformed chain (a buffer outside the region), counted by code, and serves nothing more', () => {
    const device = new RngDevice();
    const driver = MockDriver.create(device).init();
    const q = driver.queue(0);
    q.writeDescriptor(255, { addr: 0x1000, len: 64, flags: VIRTQ_DESC_F_WRITE });
    q.pushAvail(255);
    q.add([{ length: 4, writable: true }]);
    driver.kick(0);
    expect(q.used()).toEqual([]);
    expect(device.metrics.invalidChains).toBe(1);
    expect(driver.transport.stats.faults.CHAIN_BUFFER_OUT_OF_RANGE).toBe(1);
    expect(driver.status() & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    driver.kick(0);
    expect(q.used()).toEqual([]);
    expect(device.metrics.requests).toBe(0);
    expect(driver.guardsIntact()).toBe(true);
  });

  it('asks for a reset when the driver corrupts the ring (avail idx jumps)', () => {
    const driver = MockDriver.create(new RngDevice()).init({ queueSizes: [8] });
    driver.queue(0).setAvailIdx(200);
    driver.kick(0);
    expect(driver.status()).toBe(0x0f | DEVICE_NEEDS_RESET);
    expect(driver.interruptStatus() & R.INTERRUPT_CONFIG).toBe(R.INTERRUPT_CONFIG);
  });

  it('serves buffers posted before DRIVER_OK as soon as it is activated', () => {
    const driver = MockDriver.create(new RngDevice());
    driver.negotiate();
    const q = driver.setupQueue(0, 16);
    const head = q.add([{ length: 8, writable: true }]);
    driver.kick(0); // dropped: not live yet
    driver.driverOk();
    expect(driver.status() & DRIVER_OK).toBe(DRIVER_OK);
    expect(q.used()).toEqual([{ id: head, len: 8 }]);
  });

  it('drains a batch with one interrupt, taking kicks through the ioeventfd path too', () => {
    const device = new RngDevice();
    const driver = MockDriver.create(device).init();
    const q = driver.queue(0);
    for (let i = 0; i < 10; i += 1) q.add([{ length: 16, writable: true }]);
    driver.transport.queueNotify(0);
    expect(q.used()).toHaveLength(10);
    expect(driver.interrupts.count).toBe(1);
    expect(device.metrics).toMatchObject({ requests: 10, bytes: 160 });
  });

  it('publishes avail_event after each drain and honours used_event (EVENT_IDX)', () => {
    const driver = MockDriver.create(new RngDevice()).init({ features: acceptOnly(RING_EVENT_IDX) });
    const q = driver.queue(0);
    q.add([{ length: 1, writable: true }]);
    driver.kick(0);
    expect(q.availEvent()).toBe(1);
    expect(driver.interrupts.count).toBe(1);
    q.setUsedEvent(3); // interrupt me when entry 3 is used
    q.add([{ length: 1, writable: true }]);
    driver.kick(0);
    q.add([{ length: 1, writable: true }]);
    driver.kick(0);
    expect(driver.interrupts.count).toBe(1);
    q.add([{ length: 1, writable: true }]);
    driver.kick(0);
    expect(driver.interrupts.count).toBe(2);
    expect(q.availEvent()).toBe(4);
    expect(q.used()).toHaveLength(4);
  });

  it('works again after the driver unbinds and binds (reset, re-activation)', () => {
    const device = new RngDevice();
    const driver = MockDriver.create(device).init();
    driver.queue(0).add([{ length: 4, writable: true }]);
    driver.kick(0);
    driver.reset();
    driver.transport.queueNotify(0); // a stale ioeventfd kick while reset
    expect(device.metrics.resets).toBe(1);
    driver.init({ queueSizes: [32] });
    const head = driver.queue(0).add([{ length: 12, writable: true }]);
    driver.kick(0);
    expect(driver.queue(0).used()).toEqual([{ id: head, len: 12 }]);
    expect(device.metrics.activations).toBe(2);
  });

  it('is never activated when the driver did not enable its queue (DRIVER_OK does not stick)', () => {
    const device = new RngDevice();
    const driver = MockDriver.create(device).init({ queueSizes: [0] });
    driver.transport.queueNotify(0);
    expect(driver.status() & DRIVER_OK).toBe(0);
    expect(device.metrics.activations).toBe(0);
    expect(driver.interrupts.count).toBe(0);
  });
});

describe('virtio-rng bounds: a frontend cannot make it work without limit', () => {
  it('serves at most its budget of chains per kick, then yields to the event loop and continues', () => {
    const scheduler = new ManualScheduler();
    const device = new RngDevice({ scheduler, budget: { chains: 4 } });
    const driver = MockDriver.create(device).init({ queueSizes: [16] });
    const q = driver.queue(0);
    for (let i = 0; i < 10; i += 1) q.add([{ length: 8, writable: true }]);
    driver.kick(0);
    expect(q.used()).toHaveLength(4);
    expect(driver.interrupts.count).toBe(1);
    driver.kick(0); // a kick meanwhile does not skip the queue ahead of the event loop
    expect(q.used()).toHaveLength(0);
    expect(scheduler.turn()).toBe(1);
    expect(q.used()).toHaveLength(4);
    expect(scheduler.settle()).toBe(1);
    expect(q.used()).toHaveLength(2);
    expect(device.metrics).toMatchObject({ requests: 10, queueYields: 2 });
    expect(scheduler.pendingYields).toBe(0);
  });

  it('keeps a refilling frontend to the budget: each turn serves at most the budget, whatever it posts', () => {
    const scheduler = new ManualScheduler();
    const device = new RngDevice({ scheduler, budget: { chains: 8 } });
    const driver = MockDriver.create(device).init({ queueSizes: [32] });
    const q = driver.queue(0);
    for (let i = 0; i < 32; i += 1) q.add([{ length: 1, writable: true }]);
    driver.kick(0);
    for (let turn = 0; turn < 20; turn += 1) {
      const used = q.used();
      expect(used.length).toBeLessThanOrEqual(8);
      for (const _ of used) q.add([{ length: 1, writable: true }]); // refill what came back
      scheduler.turn();
    }
    expect(device.metrics.requests).toBeGreaterThanOrEqual(8 * 20);
  });

  it('refuses indirect tables longer than the queue (one kick used to walk 65,535 descriptors each)', () => {
    const device = new RngDevice();
    const driver = MockDriver.create(device, { size: 4 << 20 }).init({ queueSizes: [16] });
    const q = driver.queue(0);
    const raws = Array.from({ length: 65535 }, (_, i) => ({ addr: 0x4000_0000, len: 1, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: i + 1 }));
    q.writeDescriptor(0, { addr: q.writeIndirectTable(raws), len: 16 * raws.length, flags: VIRTQ_DESC_F_INDIRECT });
    q.pushAvail(0);
    driver.kick(0);
    expect(driver.transport.stats.faults.CHAIN_TOO_LONG).toBe(1);
    expect(driver.status() & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
  });

  it('rate-limits entropy: a request that finds the bucket empty waits (not dropped) until it refills', () => {
    const scheduler = new ManualScheduler();
    const device = new RngDevice({ scheduler, now: scheduler.now, bytesPerSecond: 1000, burstBytes: 100 });
    const driver = MockDriver.create(device).init({ queueSizes: [16] });
    const q = driver.queue(0);
    const first = q.add([{ length: 100, writable: true }]);
    const second = q.add([{ length: 50, writable: true }]);
    driver.kick(0);
    expect(q.used()).toEqual([{ id: first, len: 100 }]);
    expect(device.metrics.rateLimitWaits).toBe(1);
    expect(scheduler.pendingTimers).toBe(1);
    driver.kick(0); // kicks while throttled do not bypass the limit
    expect(q.used()).toEqual([]);
    scheduler.advance(1); // one byte's worth of tokens: enough to admit the waiting request
    expect(q.used()).toEqual([{ id: second, len: 50 }]);
    expect(device.metrics.bytes).toBe(150);
  });

  it('keeps the bucket across resets: reset/activate cycles do not refill it', () => {
    const scheduler = new ManualScheduler();
    const device = new RngDevice({ scheduler, now: scheduler.now, bytesPerSecond: 1000, burstBytes: 64 });
    const driver = MockDriver.create(device).init({ queueSizes: [16] });
    driver.queue(0).add([{ length: 64, writable: true }]);
    driver.kick(0);
    driver.init({ queueSizes: [16] });
    driver.queue(0).add([{ length: 64, writable: true }]);
    driver.kick(0);
    expect(driver.queue(0).used()).toEqual([]);
    expect(device.metrics.bytes).toBe(64);
  });

  it('is quiet when its reset returns: no timer or continuation left to touch the old rings', () => {
    const scheduler = new ManualScheduler();
    const device = new RngDevice({ scheduler, now: scheduler.now, bytesPerSecond: 1000, burstBytes: 10, budget: { chains: 1 } });
    const driver = MockDriver.create(device).init({ queueSizes: [16] });
    const q = driver.queue(0);
    for (let i = 0; i < 3; i += 1) q.add([{ length: 10, writable: true }]);
    driver.kick(0);
    const before = Buffer.from(driver.memory.bytes);
    expect(driver.reset()).toBeUndefined();
    scheduler.settle();
    scheduler.advance(10_000);
    expect(Buffer.from(driver.memory.bytes).equals(before)).toBe(true);
  });
});
