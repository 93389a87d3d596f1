// virtio-console behind the real MmioTransport, driven by the shipped MockDriver (the
// frontend-driver double): what Linux's virtio_console sees at probe and on its first I/O.

import { describe, expect, it } from 'vitest';

import { ConsoleDevice, VIRTIO_CONSOLE_F_EMERG_WRITE, type ConsoleBackend } from '../../../../lib/devices/console/index.js';
import { RING_EVENT_IDX, VERSION_1 } from '../../../../lib/virtio/features.js';
import { MockDriver } from '../../../../lib/virtio/testing/mock-driver.js';

/** Minimal in-memory backend: records output, lets the test type input. */
function memoryBackend() {
  let events: Parameters<ConsoleBackend['start']>[0] | undefined;
  const out: string[] = [];
  const backend: ConsoleBackend = {
    kind: 'stdio',
    description: 'memory',
    stats: { discardedBytes: 0 },
    start: (e) => void (events = e),
    write: (chunk, done) => {
      out.push(Buffer.from(chunk).toString());
      done(null);
      return true;
    },
    pauseInput: () => {},
    resumeInput: () => {},
    close: async () => {},
  };
  return { backend, out, type: (s: string) => events?.data(Buffer.from(s)) };
}

describe('console behind MmioTransport', () => {
  it('probes as device 3 with the config space bao-virtio-dm exposes', () => {
    const driver = MockDriver.create(new ConsoleDevice({ backend: memoryBackend().backend }));
    expect(driver.probe().deviceId).toBe(3);
    expect([driver.readConfig(0, 2), driver.readConfig(2, 2), driver.readConfig(4, 4)]).toEqual([80, 25, 1]);
  });

  it('round-trips data with EVENT_IDX negotiated, raising interrupts for used buffers', () => {
    const m = memoryBackend();
    const driver = MockDriver.create(new ConsoleDevice({ backend: m.backend }));
    const accepted = driver.negotiate((offered) => offered);
    expect(accepted & (VERSION_1 | RING_EVENT_IDX | VIRTIO_CONSOLE_F_EMERG_WRITE)).toBe(VERSION_1 | RING_EVENT_IDX | VIRTIO_CONSOLE_F_EMERG_WRITE);
    driver.setupQueue(0, 64);
    driver.setupQueue(1, 64);
    driver.driverOk();

    const rx = driver.queue(0).add([{ length: 32, writable: true }]);
    driver.kick(0);
    driver.queue(1).add([{ data: Buffer.from('Welcome to Bao\n') }]);
    driver.kick(1);
    expect(m.out.join('')).toBe('Welcome to Bao\n');
    m.type('uname -a\n');
    expect(Buffer.from(driver.queue(0).buffers(rx)[0]!.subarray(0, 9)).toString()).toBe('uname -a\n');
    expect(driver.queue(0).used()).toEqual([{ id: rx, len: 9 }]);
    expect(driver.interrupts.count).toBeGreaterThanOrEqual(2);
    expect(driver.ackInterrupt() & 1).toBe(1);
  });

  it('prints an emergency write before the queues are up', () => {
    const m = memoryBackend();
    const driver = MockDriver.create(new ConsoleDevice({ backend: m.backend }));
    driver.negotiate((offered) => offered);
    driver.writeConfig(8, 4, 0x21);
    expect(m.out.join('')).toBe('!');
  });

  it('keeps working after the driver resets and re-initialises (unbind/bind)', () => {
    const m = memoryBackend();
    const driver = MockDriver.create(new ConsoleDevice({ backend: m.backend }));
    driver.init();
    driver.queue(1).add([{ data: Buffer.from('one ') }]);
    driver.kick(1);
    driver.reset();
    driver.init();
    driver.queue(1).add([{ data: Buffer.from('two') }]);
    driver.kick(1);
    expect(m.out.join('')).toBe('one two');
    expect(driver.guardsIntact()).toBe(true);
  });

  it('writes nothing into the old rings once the reset write has completed; input waits for the new ones', () => {
    const m = memoryBackend();
    const driver = MockDriver.create(new ConsoleDevice({ backend: m.backend }));
    driver.init({ queueSizes: [16, 16] });
    driver.queue(0).add([{ length: 32, writable: true }]);
    driver.kick(0);
    expect(driver.reset()).toBeUndefined(); // the device was quiet at once: the write completes now
    const before = Buffer.from(driver.memory.bytes);
    m.type('typed after the reset');
    expect(Buffer.from(driver.memory.bytes).equals(before)).toBe(true);
    driver.init({ queueSizes: [16, 16] });
    const rx = driver.queue(0).add([{ length: 64, writable: true }]);
    driver.kick(0);
    expect(driver.queue(0).used()).toEqual([{ id: rx, len: 21 }]);
    expect(driver.guardsIntact()).toBe(true);
  });

  it('goes to NEEDS_RESET on a malformed transmit chain, counted by code in the transport stats, and works again after a reset', () => {
    const m = memoryBackend();
    const driver = MockDriver.create(new ConsoleDevice({ backend: m.backend }));
    driver.init({ queueSizes: [16, 16] });
    const tx = driver.queue(1);
    tx.writeDescriptor(3, { addr: 0x10, len: 4 }); // outside the region
    tx.pushAvail(3);
    driver.kick(1);
    expect(driver.status() & 0x40).toBe(0x40);
    expect(driver.transport.stats.faults.CHAIN_BUFFER_OUT_OF_RANGE).toBe(1);
    driver.reset();
    driver.init({ queueSizes: [16, 16] });
    driver.queue(1).add([{ data: Buffer.from('back') }]);
    driver.kick(1);
    expect(m.out.join('')).toBe('back');
  });
});
