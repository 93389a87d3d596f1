import { describe, expect, it } from 'vitest';
import type { VirtioDevice } from '../../../lib/virtio/device.js';
import { VERSION_1 } from '../../../lib/virtio/features.js';
import * as R from '../../../lib/virtio/mmio-registers.js';
import { ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK } from '../../../lib/virtio/status.js';
import { acceptOnly, GuestAllocator, MockDriver, MockDriverError } from '../../../lib/virtio/testing/mock-driver.js';

function device(): VirtioDevice {
  return {
    deviceId: 7,
    name: 'dummy',
    features: 1n,
    queueMaxSizes: [8, 4],
    config: new Uint8Array(4),
    activate: () => {},
    queueNotify: () => {},
    reset: () => {},
  };
}

describe('MockDriver (the shipped frontend-driver double)', () => {
  it('initialises a device the way Linux does: probe, negotiate, queues, DRIVER_OK', () => {
    const driver = MockDriver.create(device()).init({ features: acceptOnly(0n), queueSizes: [4, 0] });
    expect(driver.status()).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(driver.transport.features).toBe(VERSION_1);
    expect(driver.queue(0).size).toBe(4);
    expect(() => driver.queue(1)).toThrow(MockDriverError);
  });

  it('places every ring inside the region with the alignment of §2.7', () => {
    const driver = MockDriver.create(device()).init();
    const q = driver.queue(0);
    expect(q.descTable % 16).toBe(0);
    expect(q.availRing % 2).toBe(0);
    expect(q.usedRing % 4).toBe(0);
    expect(driver.memory.contains(q.usedRing, 6 + 8 * q.size)).toBe(true);
  });

  it('refuses to set up a queue the device does not have', () => {
    const driver = MockDriver.create(device());
    driver.negotiate();
    expect(() => driver.setupQueue(5)).toThrow(/does not exist/);
  });

  it('reports the device refusing FEATURES_OK', () => {
    expect(() => MockDriver.create(device()).negotiate(1n)).toThrow(/FEATURES_OK/);
  });

  it('counts interrupts and acknowledges them like vm_interrupt', () => {
    const driver = MockDriver.create(device()).init();
    driver.transport.enterNeedsReset('test');
    expect(driver.interrupts.count).toBe(1);
    expect(driver.ackInterrupt()).toBe(R.INTERRUPT_CONFIG);
    expect(driver.interruptStatus()).toBe(0);
  });

  it('keeps guard bytes around the region and notices when they change', () => {
    const driver = MockDriver.create(device(), { guardBytes: 16 });
    expect(driver.guardsIntact()).toBe(true);
    driver.backing[3] = 0;
    expect(driver.guardsIntact()).toBe(false);
  });

  it('runs out of guest memory loudly rather than overlapping allocations', () => {
    const driver = MockDriver.create(device(), { size: 4096 });
    const alloc = new GuestAllocator(driver.memory);
    expect(alloc.alloc(4000)).toBe(driver.memory.base);
    expect(() => alloc.alloc(200)).toThrow(MockDriverError);
  });
});
