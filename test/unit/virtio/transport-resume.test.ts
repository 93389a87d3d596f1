// A transport that takes a live device over from a process that died: the driver stays bound,
// never resets, and its queues go on from where the ring says they are. Everything read back is
// untrusted.

import { describe, expect, it } from 'vitest';

import { BlkDevice } from '../../../lib/devices/blk/device.js';
import { RngDevice } from '../../../lib/devices/rng/device.js';
import type { DeviceStateStore, SavedDeviceState, TransportState } from '../../../lib/virtio/device-state.js';
import { StateMismatchError } from '../../../lib/virtio/device-state.js';
import * as R from '../../../lib/virtio/mmio-registers.js';
import { MmioTransport } from '../../../lib/virtio/mmio-transport.js';
import type { VirtioDevice } from '../../../lib/virtio/device.js';
import { MockDriver } from '../../../lib/virtio/testing/mock-driver.js';
import { DEVICE_NEEDS_RESET, DRIVER_OK } from '../../../lib/virtio/status.js';
import { addRead, addWrite, ManualEngine, pattern } from '../devices/blk/helpers.js';

/** Keeps what the transport saved, as JSON (what the state file holds). */
class MemoryStore implements DeviceStateStore {
  json = '';
  saves = 0;
  save(state: SavedDeviceState): void {
    this.json = JSON.stringify(state.transport);
    this.saves += 1;
  }
  get state(): Record<string, unknown> {
    return JSON.parse(this.json) as Record<string, unknown>;
  }
}

function liveDriver(): { driver: MockDriver; store: MemoryStore } {
  const store = new MemoryStore();
  const driver = MockDriver.create(new RngDevice(), { transport: { state: store } }).init();
  const q = driver.queue(0);
  q.add([{ length: 16, writable: true }]);
  q.add([{ length: 16, writable: true }]);
  driver.kick(0);
  expect(q.used()).toHaveLength(2);
  return { driver, store };
}

/** The device model a restarted daemon builds: a new device behind a new transport, same memory and interrupt. */
function restarted(driver: MockDriver, device: VirtioDevice = new RngDevice()): { transport: MmioTransport; store: MemoryStore } {
  const store = new MemoryStore();
  return { transport: new MmioTransport(device, { memory: driver.memory, interrupt: driver.interrupts, state: store }), store };
}

describe('resuming a live device in a new process', () => {
  it('the driver keeps its device: no reset, and buffers made available while no process ran are served', () => {
    const { driver, store } = liveDriver();
    // While no daemon runs the driver posts another buffer; its kick goes nowhere.
    const q = driver.queue(0);
    const head = q.add([{ length: 32, writable: true }]);
    const interruptsBefore = driver.interrupts.count;

    const next = restarted(driver);
    expect(next.transport.resume(store.state)).toBe('active');
    const after = driver.takeOver(next.transport);

    expect(after.status() & DRIVER_OK).toBe(DRIVER_OK);
    expect(next.transport.stats.resets).toBe(0);
    expect(q.used()).toEqual([{ id: head, len: 32 }]);
    // An interrupt tells the driver to reap what completed.
    expect(driver.interrupts.count).toBeGreaterThan(interruptsBefore);
    expect(after.interruptStatus() & R.INTERRUPT_VRING).toBe(R.INTERRUPT_VRING);
    // And it goes on as before: kicks are served by the new device.
    const later = q.add([{ length: 8, writable: true }]);
    after.kick(0);
    expect(q.used()).toEqual([{ id: later, len: 8 }]);
    // The new process saved its state as soon as it took over.
    expect(next.store.saves).toBeGreaterThan(0);
  });

  it('a reset by the driver after the takeover works as usual', () => {
    const { driver, store } = liveDriver();
    const next = restarted(driver);
    next.transport.resume(store.state);
    const after = driver.takeOver(next.transport);
    void after.reset();
    expect(after.status()).toBe(0);
    expect(next.store.state['status']).toBe(0);
  });

  it('a driver half-way through setup keeps its registers and finishes setup with the new process', () => {
    const store = new MemoryStore();
    const driver = MockDriver.create(new RngDevice(), { transport: { state: store } });
    driver.probe();
    driver.negotiate();
    driver.setupQueue(0);
    const next = restarted(driver);
    expect(next.transport.resume(store.state)).toBe('setup');
    const after = driver.takeOver(next.transport);
    after.driverOk();
    expect(after.status() & DRIVER_OK).toBe(DRIVER_OK);
    const q = after.queue(0);
    const head = q.add([{ length: 4, writable: true }]);
    after.kick(0);
    expect(q.used()).toEqual([{ id: head, len: 4 }]);
  });

  it('rings the frontend rewrote inconsistently put that device alone in NEEDS_RESET', () => {
    const { driver, store } = liveDriver();
    const q = driver.queue(0);
    q.setAvailIdx((q.usedIdx() + q.size + 1) & 0xffff);
    const next = restarted(driver);
    next.transport.resume(store.state);
    expect(next.transport.status & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(next.transport.active).toBe(false);
  });
});

describe('resuming a block device: the requests in flight are re-submitted', () => {
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const blk = (engine: ManualEngine) => new BlkDevice({ capacityBytes: 1 << 20, serial: 'resume', queueSize: 16, engine });

  it('requests the dead process had taken are done again by the next one, each given back once, in order', async () => {
    const store = new MemoryStore();
    const first = new ManualEngine(0x11);
    const driver = MockDriver.create(blk(first), { size: 1 << 20, transport: { state: store } }).init();
    const q = driver.queue(0);
    const done = addWrite(q, 0, pattern(512, 1));
    driver.kick(0);
    first.ops[0]!.complete();
    await turn();
    expect(q.used().map((u) => u.id)).toEqual([done]);
    // Three more in flight; the last two finish, the first does not: nothing of them is published.
    const heads = [addWrite(q, 8, pattern(512, 2)), addRead(q, 16, 512), addWrite(q, 24, pattern(512, 3))];
    driver.kick(0);
    first.ops[2]!.complete();
    first.ops[3]!.complete();
    await turn();
    expect(q.used()).toEqual([]);

    // The process dies here. The next one resumes and re-submits exactly those three.
    const second = new ManualEngine(0x22);
    const next = restarted(driver, blk(second));
    expect(next.transport.resume(store.state)).toBe('active');
    const after = driver.takeOver(next.transport);
    expect(second.ops.map((o) => [o.op, o.offset])).toEqual([
      ['write', 8 * 512],
      ['read', 16 * 512],
      ['write', 24 * 512],
    ]);
    for (const op of second.ops) op.complete();
    await turn();
    expect(q.used().map((u) => u.id)).toEqual(heads);
    expect(Buffer.from(q.buffers(heads[1]!)[1]!).every((b) => b === 0x22)).toBe(true); // read again by the new process
    expect(next.transport.stats.resets).toBe(0);
    // And it goes on.
    const later = addRead(q, 0, 512);
    after.kick(0);
    second.ops[3]!.complete();
    await turn();
    expect(q.used().map((u) => u.id)).toEqual([later]);
  });
});

describe('saved state that does not fit is discarded, and nothing is changed', () => {
  const cases: [string, (s: Record<string, unknown>) => void][] = [
    ['another device type', (s) => (s['deviceId'] = 3)],
    ['other offered features', (s) => (s['offered'] = '1')],
    ['accepted features outside the offer', (s) => (s['driverFeatures'] = 'ffffffffffffffff')],
    ['a queue size that is not a power of two', (s) => ((s['queues'] as Record<string, unknown>[])[0]!['size'] = 3)],
    ['a queue larger than its maximum', (s) => ((s['queues'] as Record<string, unknown>[])[0]!['size'] = 1 << 20)],
    ['a negative ring address', (s) => ((s['queues'] as Record<string, unknown>[])[0]!['desc'] = -16)],
    ['a status no driver can reach', (s) => (s['status'] = 0x0c)],
    ['a status wider than a byte', (s) => (s['status'] = 0x1_0f)],
    ['another format version', (s) => (s['version'] = 99)],
    ['other queues', (s) => (s['queueMaxSizes'] = [256, 256])],
    ['a missing field', (s) => delete s['generation']],
  ];
  for (const [what, spoil] of cases) {
    it(what, () => {
      const { driver, store } = liveDriver();
      const state = store.state;
      spoil(state);
      const next = restarted(driver);
      expect(() => next.transport.resume(state)).toThrow(StateMismatchError);
      expect(next.transport.status).toBe(0);
      expect(next.transport.active).toBe(false);
    });
  }

  it('not an object at all', () => {
    const { driver } = liveDriver();
    for (const junk of [null, 7, 'x', []]) expect(() => restarted(driver).transport.resume(junk)).toThrow(StateMismatchError);
  });

  it('a live state for a device that cannot take in-flight work over', () => {
    const { driver, store } = liveDriver();
    const device = new RngDevice();
    Object.defineProperty(device, 'resumesFromUsed', { value: false });
    const next = restarted(driver, device);
    expect(() => next.transport.resume(store.state as unknown as TransportState)).toThrow(/cannot take over/);
  });
});
