import { describe, expect, it, vi } from 'vitest';
import type { DeviceActivation, VirtioDevice } from '../../../lib/virtio/device.js';
import {
  ACCESS_PLATFORM,
  IN_ORDER,
  RING_EVENT_IDX,
  RING_INDIRECT_DESC,
  VERSION_1,
} from '../../../lib/virtio/features.js';
import { GuestMemory } from '../../../lib/virtio/guest-memory.js';
import type { Logger } from '../../../lib/virtio/logger.js';
import * as R from '../../../lib/virtio/mmio-registers.js';
import { MmioTransport, type ActivationInfo } from '../../../lib/virtio/mmio-transport.js';
import {
  ACKNOWLEDGE,
  DEVICE_NEEDS_RESET,
  DRIVER,
  DRIVER_OK,
  FAILED,
  FEATURES_OK,
} from '../../../lib/virtio/status.js';
import { acceptOnly, MockDriver, MockDriverError, MockQueue } from '../../../lib/virtio/testing/mock-driver.js';

const A = ACKNOWLEDGE;
const AD = A | DRIVER;
const ADF = AD | FEATURES_OK;
const ADFO = ADF | DRIVER_OK;
const DEVICE_BIT_0 = 1n; // a device-specific feature

/** A device that records what the transport does to it. */
class TestDevice implements VirtioDevice {
  readonly deviceId = 42;
  readonly name = 'test';
  readonly features = DEVICE_BIT_0 | RING_EVENT_IDX | RING_INDIRECT_DESC;
  readonly queueMaxSizes = [16, 8];
  readonly config = Uint8Array.from([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc]);
  activations: DeviceActivation[] = [];
  notifies: number[] = [];
  resets = 0;
  configWrites: [number, number[]][] = [];
  activateImpl: (a: DeviceActivation) => void | Promise<void> = () => {};
  writeConfig?: (offset: number, data: Uint8Array) => boolean;

  activate(activation: DeviceActivation): void | Promise<void> {
    this.activations.push(activation);
    return this.activateImpl(activation);
  }

  queueNotify(index: number): void {
    this.notifies.push(index);
  }

  reset(): void {
    this.resets += 1;
  }

  get activation(): DeviceActivation {
    const a = this.activations.at(-1);
    if (!a) throw new Error('not activated');
    return a;
  }
}

function recordingLogger(): Logger & { warns: string[]; errors: string[] } {
  const warns: string[] = [];
  const errors: string[] = [];
  const log = {
    warns,
    errors,
    debug: () => {},
    info: () => {},
    warn: (_o: object, msg?: string) => {
      warns.push(msg ?? '');
    },
    error: (_o: object, msg?: string) => {
      errors.push(msg ?? '');
    },
    child: () => log,
  };
  return log;
}

function setup(options: { onActivate?: (info: ActivationInfo) => void; onReset?: () => void } = {}) {
  const device = new TestDevice();
  const log = recordingLogger();
  const driver = MockDriver.create(device, { log, transport: options });
  return { device, driver, transport: driver.transport, log };
}

describe('virtio-mmio identification registers (§4.2.2)', () => {
  it('reads magic "virt", version 2, the device id and our vendor id', () => {
    const { driver } = setup();
    expect(driver.read(R.MMIO_MAGIC_VALUE)).toBe(0x74726976);
    expect(driver.read(R.MMIO_VERSION)).toBe(2);
    expect(driver.read(R.MMIO_DEVICE_ID)).toBe(42);
    expect(driver.read(R.MMIO_VENDOR_ID)).toBe(R.BAO_VENDOR_ID);
    expect(driver.probe()).toEqual({ deviceId: 42, vendorId: 0x214f4142 });
  });

  it('shows every shared-memory region as absent (length -1)', () => {
    const { driver, transport } = setup();
    for (const sel of [0, 1, 7]) {
      driver.write(R.MMIO_SHM_SEL, sel);
      expect(driver.read(R.MMIO_SHM_LEN_LOW)).toBe(0xffffffff);
      expect(driver.read(R.MMIO_SHM_LEN_HIGH)).toBe(0xffffffff);
      expect(driver.read(R.MMIO_SHM_BASE_LOW)).toBe(0xffffffff);
      expect(driver.read(R.MMIO_SHM_BASE_HIGH)).toBe(0xffffffff);
    }
    expect(transport.stats.guestFaults).toBe(0);
  });

  it('reads QueueReset as 0 and refuses writes to it (RING_RESET is not offered)', () => {
    const { driver, transport } = setup();
    expect(driver.read(R.MMIO_QUEUE_RESET)).toBe(0);
    driver.write(R.MMIO_QUEUE_RESET, 1);
    expect(transport.stats.faults.QUEUE_RESET_UNSUPPORTED).toBe(1);
  });
});

describe('feature negotiation (§2.2, §3.1.1, §6)', () => {
  it('offers the device features plus VERSION_1 and ACCESS_PLATFORM, as two 32-bit words', () => {
    const { driver } = setup();
    expect(driver.deviceFeatures()).toBe(DEVICE_BIT_0 | RING_EVENT_IDX | RING_INDIRECT_DESC | VERSION_1 | ACCESS_PLATFORM);
  });

  it('reads 0 for feature words beyond the second', () => {
    const { driver } = setup();
    driver.write(R.MMIO_DEVICE_FEATURES_SEL, 2);
    expect(driver.read(R.MMIO_DEVICE_FEATURES)).toBe(0);
    driver.write(R.MMIO_DEVICE_FEATURES_SEL, 0xffffffff);
    expect(driver.read(R.MMIO_DEVICE_FEATURES)).toBe(0);
  });

  it('sets FEATURES_OK for a subset of the offer that includes VERSION_1', () => {
    const { driver, transport } = setup();
    expect(driver.negotiate(acceptOnly(RING_EVENT_IDX))).toBe(VERSION_1 | RING_EVENT_IDX);
    expect(driver.status()).toBe(ADF);
    expect(transport.features).toBe(VERSION_1 | RING_EVENT_IDX);
  });

  it('does not let FEATURES_OK stick without VERSION_1 (no legacy interface)', () => {
    const { driver, transport } = setup();
    expect(() => driver.negotiate(DEVICE_BIT_0)).toThrow(MockDriverError);
    expect(driver.status()).toBe(AD);
    expect(transport.stats.faults.FEATURES_REJECTED).toBe(1);
  });

  it('does not let FEATURES_OK stick with a feature that was not offered', () => {
    const { driver } = setup();
    expect(() => driver.negotiate(VERSION_1 | IN_ORDER)).toThrow(MockDriverError);
    expect(driver.status()).toBe(AD);
  });

  it('ignores driver feature writes before DRIVER or after FEATURES_OK', () => {
    const { driver, transport } = setup();
    driver.write(R.MMIO_DRIVER_FEATURES, 1);
    expect(transport.stats.faults.FEATURES_LOCKED).toBe(1);
    driver.negotiate(acceptOnly(0n));
    driver.write(R.MMIO_DRIVER_FEATURES_SEL, 0);
    driver.write(R.MMIO_DRIVER_FEATURES, 1);
    expect(transport.stats.faults.FEATURES_LOCKED).toBe(2);
    expect(transport.features).toBe(VERSION_1);
  });

  it('refuses feature bits in words beyond the second', () => {
    const { driver, transport } = setup();
    driver.addStatus(A);
    driver.addStatus(DRIVER);
    driver.write(R.MMIO_DRIVER_FEATURES_SEL, 2);
    driver.write(R.MMIO_DRIVER_FEATURES, 0);
    driver.write(R.MMIO_DRIVER_FEATURES, 4);
    expect(transport.stats.faults.FEATURES_SEL_OUT_OF_RANGE).toBe(1);
  });
});

describe('device status through the Status register (§2.1, table-driven)', () => {
  const cases: [name: string, writes: number[], status: number, faults?: number][] = [
    ['the initialisation sequence up to FEATURES_OK', [A, AD, ADF], ADF],
    ['a repeated write', [A, A, AD, AD], AD],
    ['skipping DRIVER', [A, A | FEATURES_OK], A, 1],
    ['skipping ACKNOWLEDGE', [DRIVER], 0, 1],
    ['FEATURES_OK before DRIVER', [A, ADF], A, 1],
    ['clearing a bit', [A, AD, A], AD, 1],
    ['FAILED at any point', [A, AD, AD | FAILED], AD | FAILED],
    ['anything after FAILED but reset', [A, A | FAILED, AD | FAILED], A | FAILED, 1],
    ['reset after FAILED', [A, A | FAILED, 0, A], A],
    ['reset from DRIVER_OK', [A, AD, ADF, ADFO, 0], 0],
    ['unknown bits', [A, A | 0x10], A, 1],
    ['DEVICE_NEEDS_RESET alone, which is no reset', [A, AD, DEVICE_NEEDS_RESET], AD, 1],
    ['DEVICE_NEEDS_RESET with the status it had', [A, AD, AD | DEVICE_NEEDS_RESET], AD],
  ];
  it.each(cases)('%s', (_name, writes, status, faults = 0) => {
    const { driver, transport } = setup();
    for (const w of writes) {
      if (w === ADF) driver.writeDriverFeatures(VERSION_1);
      driver.write(R.MMIO_STATUS, w);
    }
    expect(driver.status()).toBe(status);
    expect(transport.stats.faults.STATUS_TRANSITION ?? 0).toBe(faults);
  });

  it('ignores DRIVER_OK out of order as a counted fault: no NEEDS_RESET, and the right order still works', () => {
    const { driver, device, transport } = setup();
    driver.addStatus(A);
    driver.addStatus(DRIVER);
    driver.addStatus(DRIVER_OK);
    expect(driver.status()).toBe(AD);
    expect(device.activations).toHaveLength(0);
    expect(transport.stats.faults.STATUS_TRANSITION).toBe(1);
    expect(transport.stats.needsReset).toBe(0);
    driver.writeDriverFeatures(VERSION_1);
    driver.addStatus(FEATURES_OK);
    driver.setupQueue(0, 4);
    driver.driverOk();
    expect(driver.status()).toBe(ADFO);
    expect(device.activations).toHaveLength(1);
  });

  it('does not let DRIVER_OK stick while no queue is ready: the device never activates with nothing to serve', () => {
    const { driver, device, transport } = setup();
    driver.negotiate();
    driver.driverOk();
    expect(driver.status()).toBe(ADF);
    expect(device.activations).toHaveLength(0);
    expect(transport.stats.faults.DRIVER_OK_REFUSED).toBe(1);
    driver.setupQueue(1, 8);
    driver.driverOk();
    expect(driver.status()).toBe(ADFO);
    expect(device.activations).toHaveLength(1);
  });

  it('never activates while DEVICE_NEEDS_RESET is set', () => {
    const { driver, device, transport } = setup();
    driver.negotiate();
    driver.setupQueue(0, 4);
    transport.enterNeedsReset('broken before DRIVER_OK');
    driver.driverOk();
    expect(driver.status()).toBe(ADF | DEVICE_NEEDS_RESET);
    expect(device.activations).toHaveLength(0);
    expect(transport.stats.faults.DRIVER_OK_REFUSED).toBe(1);
  });

  it('does not reset a live device when the driver writes DEVICE_NEEDS_RESET (0x40) alone', () => {
    const { driver, device, transport } = setup();
    driver.init();
    const resets = device.resets;
    driver.write(R.MMIO_STATUS, DEVICE_NEEDS_RESET);
    expect(driver.status()).toBe(ADFO);
    expect(transport.active).toBe(true);
    expect(device.resets).toBe(resets);
    expect(transport.stats.faults.STATUS_TRANSITION).toBe(1);
  });

  it('serves no kick after the driver set FAILED, and stops the queues', () => {
    const { driver, device, transport } = setup();
    driver.init({ queueSizes: [8, 0] });
    driver.kick(0);
    expect(device.notifies).toEqual([0]);
    driver.addStatus(FAILED);
    driver.kick(0);
    transport.queueNotify(0);
    expect(device.notifies).toEqual([0]);
    expect(transport.stats.droppedNotifies).toBe(2);
    expect(device.activation.queues[0]?.closed).toBe(true);
    driver.queue(0).add([{ length: 4, writable: true }]);
    expect(transport.serveUnkicked()).toBe(0);
    expect(transport.serveUnkicked()).toBe(0);
  });
});

describe('queue setup registers (§4.2.3.2)', () => {
  function negotiated() {
    const s = setup();
    s.driver.negotiate();
    return s;
  }

  it('shows each queue maximum, and 0 for queues that do not exist', () => {
    const { driver, transport } = negotiated();
    const max = (i: number) => {
      driver.write(R.MMIO_QUEUE_SEL, i);
      return driver.read(R.MMIO_QUEUE_NUM_MAX);
    };
    expect([max(0), max(1)]).toEqual([16, 8]);
    expect(max(2)).toBe(0);
    expect(driver.read(R.MMIO_QUEUE_READY)).toBe(0);
    expect(transport.stats.faults.QUEUE_SEL_OUT_OF_RANGE).toBe(1);
  });

  it.each([0, 3, 32, 0xffffffff])('ignores QueueNum %d (not a power of two <= max)', (n) => {
    const { driver, device, transport } = negotiated();
    driver.write(R.MMIO_QUEUE_SEL, 0);
    driver.write(R.MMIO_QUEUE_NUM, n);
    expect(transport.stats.faults.QUEUE_NUM_INVALID).toBe(1);
    const rings = new MockQueue(driver.memory, driver.allocator, 16);
    driver.programQueueAddresses(rings.descTable, rings.availRing, rings.usedRing);
    driver.write(R.MMIO_QUEUE_READY, 1);
    driver.driverOk();
    expect(device.activation.queues[0]?.size).toBe(16); // QueueNum kept its default, the maximum
  });

  it('refuses queue setup before FEATURES_OK', () => {
    const { driver, transport } = setup();
    driver.addStatus(A | DRIVER);
    driver.write(R.MMIO_QUEUE_NUM, 8);
    driver.write(R.MMIO_QUEUE_DESC_LOW, 0x1000);
    driver.write(R.MMIO_QUEUE_READY, 1);
    expect(transport.stats.faults.QUEUE_SETUP_LOCKED).toBe(3);
    expect(driver.read(R.MMIO_QUEUE_READY)).toBe(0);
  });

  it('refuses changes to a queue while it is ready, but lets the driver take it back before DRIVER_OK', () => {
    const { driver, transport } = negotiated();
    driver.setupQueue(0, 8);
    driver.write(R.MMIO_QUEUE_NUM, 4);
    driver.write(R.MMIO_QUEUE_DESC_LOW, 0);
    expect(transport.stats.faults.QUEUE_SETUP_LOCKED).toBe(2);
    driver.write(R.MMIO_QUEUE_READY, 0);
    expect(driver.read(R.MMIO_QUEUE_READY)).toBe(0);
    driver.write(R.MMIO_QUEUE_NUM, 4);
    expect(transport.stats.faults.QUEUE_SETUP_LOCKED).toBe(2);
  });

  it('refuses queue setup after DRIVER_OK, including disabling a live queue', () => {
    const { driver, transport } = setup();
    driver.init({ queueSizes: [8, 0] });
    driver.write(R.MMIO_QUEUE_SEL, 1);
    driver.write(R.MMIO_QUEUE_NUM, 4);
    driver.write(R.MMIO_QUEUE_READY, 1);
    driver.write(R.MMIO_QUEUE_SEL, 0);
    driver.write(R.MMIO_QUEUE_READY, 0);
    expect(transport.stats.faults.QUEUE_SETUP_LOCKED).toBe(3);
    expect(driver.read(R.MMIO_QUEUE_READY)).toBe(1);
  });

  it("accepts the QueueReady=0 writes of Linux's vm_del_vq after a reset, silently", () => {
    const { driver, transport } = setup();
    driver.init();
    driver.write(R.MMIO_STATUS, 0); // virtio_reset_device
    for (const i of [0, 1]) {
      driver.write(R.MMIO_QUEUE_SEL, i);
      driver.write(R.MMIO_QUEUE_READY, 0);
      expect(driver.read(R.MMIO_QUEUE_READY)).toBe(0);
    }
    driver.addStatus(ACKNOWLEDGE); // virtio_dev_remove acknowledges the device again
    expect(transport.stats.guestFaults).toBe(0);
  });

  it('refuses setup writes to a queue that does not exist', () => {
    const { driver, transport } = negotiated();
    driver.write(R.MMIO_QUEUE_SEL, 5);
    driver.write(R.MMIO_QUEUE_NUM, 4);
    driver.write(R.MMIO_QUEUE_READY, 1);
    expect(transport.stats.faults.QUEUE_SEL_OUT_OF_RANGE).toBe(3);
  });
});

describe('activation at DRIVER_OK (§3.1.1)', () => {
  it('hands the device its queues, memory and accepted features, then calls onActivate', () => {
    const infos: ActivationInfo[] = [];
    const { driver, device, transport } = setup({ onActivate: (info) => infos.push(info) });
    driver.init({ features: acceptOnly(RING_EVENT_IDX), queueSizes: [8, 0] });
    expect(device.activations).toHaveLength(1);
    const a = device.activation;
    expect(a.features).toBe(VERSION_1 | RING_EVENT_IDX);
    expect(a.queues[0]?.size).toBe(8);
    expect(a.queues[0]?.eventIdx).toBe(true);
    expect(a.queues[0]?.indirect).toBe(false);
    expect(a.queues[1]).toBeUndefined();
    expect(a.memory).toBe(driver.memory);
    expect(infos).toEqual([{ queues: [0], features: VERSION_1 | RING_EVENT_IDX }]);
    expect(transport.active).toBe(true);
    expect(transport.stats.activations).toBe(1);
  });

  it('resolves the memory through a function when given one', () => {
    const device = new TestDevice();
    const memory = new GuestMemory(0x1000_0000, new Uint8Array(1 << 16));
    const resolve = vi.fn(() => memory);
    const transport = new MmioTransport(device, { memory: resolve, interrupt: { signal: () => {} } });
    const driver = new MockDriver(transport, memory, { count: 0, signal() {} });
    driver.init({ queueSizes: [4, 4] });
    expect(resolve).toHaveBeenCalledOnce();
    expect(device.activation.memory).toBe(memory);
  });

  it('puts the device in NEEDS_RESET when a ring lies outside the region', () => {
    const { driver, device, transport } = setup();
    driver.negotiate();
    driver.write(R.MMIO_QUEUE_SEL, 0);
    driver.write(R.MMIO_QUEUE_NUM, 8);
    driver.programQueueAddresses(0x1000, 0x2000, 0x3000); // below the region base
    driver.write(R.MMIO_QUEUE_READY, 1);
    driver.driverOk();
    expect(driver.status()).toBe(ADFO | DEVICE_NEEDS_RESET);
    expect(device.activations).toHaveLength(0);
    expect(transport.stats.faults.QUEUE_CONFIG_INVALID).toBe(1);
    expect(driver.interruptStatus()).toBe(R.INTERRUPT_CONFIG);
    expect(driver.interrupts.count).toBe(1);
  });

  it('puts the device in NEEDS_RESET when a ring is misaligned or its address is beyond 2^53', () => {
    for (const [desc, avail, used] of [
      [0x4000_0008, 0x4000_1000, 0x4000_2000],
      [0x4000_0000, 0x4000_1001, 0x4000_2000],
      [0x4000_0000, 0x4000_1000, 0xffff_ffff_0000_0000],
    ] as const) {
      const { driver } = setup();
      driver.negotiate();
      driver.write(R.MMIO_QUEUE_SEL, 0);
      driver.programQueueAddresses(desc, avail, used);
      driver.write(R.MMIO_QUEUE_READY, 1);
      driver.driverOk();
      expect(driver.status() & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    }
  });

  it('puts the device in NEEDS_RESET when activate() throws or rejects', async () => {
    const sync = setup();
    sync.device.activateImpl = () => {
      throw new Error('boom');
    };
    sync.driver.init();
    expect(sync.driver.status()).toBe(ADFO | DEVICE_NEEDS_RESET);

    const later = setup();
    later.device.activateImpl = () => Promise.reject(new Error('later boom'));
    later.driver.init();
    await new Promise((r) => setImmediate(r));
    expect(later.driver.status()).toBe(ADFO | DEVICE_NEEDS_RESET);
  });

  it('does not call onActivate when the device failed during activation', () => {
    const onActivate = vi.fn();
    const { driver, device } = setup({ onActivate });
    device.activateImpl = (a) => a.fail('no backend');
    driver.init();
    expect(onActivate).not.toHaveBeenCalled();
  });
});

describe('queue notifications', () => {
  it('delivers QueueNotify writes and ioeventfd kicks for enabled queues to the device', () => {
    const { driver, device, transport } = setup();
    driver.init({ queueSizes: [8, 0] });
    driver.kick(0);
    transport.queueNotify(0);
    expect(device.notifies).toEqual([0, 0]);
    expect(transport.stats.notifies).toBe(2);
  });

  it('drops kicks before DRIVER_OK and kicks for queues that are not enabled', () => {
    const { driver, device, transport } = setup();
    driver.kick(0);
    driver.init({ queueSizes: [8, 0] });
    transport.queueNotify(1);
    transport.queueNotify(7);
    expect(device.notifies).toEqual([]);
    expect(transport.stats.droppedNotifies).toBe(3);
  });

  it('counts a QueueNotify naming a queue that does not exist as a guest fault', () => {
    const { driver, transport } = setup();
    driver.init();
    driver.kick(9);
    expect(transport.stats.faults.QUEUE_NOTIFY_INVALID).toBe(1);
  });

  it('puts the device in NEEDS_RESET when its queue handler throws', () => {
    const { driver, device } = setup();
    driver.init();
    device.queueNotify = () => {
      throw new Error('handler bug');
    };
    driver.kick(0);
    expect(driver.status() & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
  });
});

describe('serving buffers no kick announced (serveUnkicked, the kick watchdog\u2019s look)', () => {
  /** What a device does with a chain it was told about: take it, then ask for the next kick. */
  const takeAndRearm = (device: TestDevice, index: number): void => {
    const q = device.activation.queues[index]!;
    while (q.pop() !== null);
    q.enableNotification();
  };

  it('serves a queue whose avail idx moved without the kick the device asked for, a call after noting it, and counts it', () => {
    const { driver, device, transport } = setup();
    driver.init();
    driver.queue(1).add([{ length: 8, writable: true }]);
    expect(transport.serveUnkicked()).toBe(0);
    expect(device.notifies).toEqual([]);
    expect(transport.serveUnkicked()).toBe(1);
    expect(device.notifies).toEqual([1]);
    expect(transport.stats.missedKicks).toBe(1);
  });

  it('leaves alone queues the device has looked at since their last change', () => {
    const { driver, device, transport } = setup();
    driver.init();
    expect(transport.serveUnkicked()).toBe(0);
    driver.queue(0).add([{ length: 8, writable: true }]);
    driver.kick(0);
    expect(transport.serveUnkicked()).toBe(0);
    expect(device.notifies).toEqual([0]);
    expect(transport.stats.missedKicks).toBe(0);
  });

  it('never overtakes a slow kick: one arriving before the next call settles it', () => {
    const { driver, device, transport } = setup();
    driver.init();
    driver.queue(0).add([{ length: 8, writable: true }]);
    expect(transport.serveUnkicked()).toBe(0);
    driver.kick(0);
    expect(transport.serveUnkicked()).toBe(0);
    expect(device.notifies).toEqual([0]);
    expect(transport.stats.missedKicks).toBe(0);
  });

  it('owes nothing when the driver owed no kick: the device did not re-arm (EVENT_IDX avail_event behind)', () => {
    const { driver, device, transport } = setup();
    driver.init();
    driver.queue(0).add([{ length: 8, writable: true }]);
    driver.kick(0); // the device looks but neither takes the chain nor moves avail_event
    driver.queue(0).add([{ length: 8, writable: true }]);
    expect(transport.serveUnkicked()).toBe(0);
    expect(transport.serveUnkicked()).toBe(0);
    takeAndRearm(device, 0);
    driver.queue(0).add([{ length: 8, writable: true }]);
    transport.serveUnkicked();
    expect(transport.serveUnkicked()).toBe(1);
  });

  it('owes nothing while the device has set VIRTQ_USED_F_NO_NOTIFY (no EVENT_IDX)', () => {
    const { driver, device, transport } = setup();
    driver.init({ features: acceptOnly(0n) });
    const q = device.activation.queues[0]!;
    q.disableNotification();
    driver.queue(0).add([{ length: 8, writable: true }]);
    expect(transport.serveUnkicked()).toBe(0);
    expect(transport.serveUnkicked()).toBe(0);
    q.enableNotification();
    transport.serveUnkicked();
    expect(transport.serveUnkicked()).toBe(1);
  });

  it('takes activate() as the device\u2019s first look: buffers made available before DRIVER_OK are not missed kicks', () => {
    const { driver, device, transport } = setup();
    driver.probe();
    driver.negotiate((offered) => offered);
    driver.setupQueue(0);
    driver.setupQueue(1);
    driver.queue(0).add([{ length: 8, writable: true }]);
    driver.driverOk();
    expect(transport.serveUnkicked()).toBe(0);
    expect(transport.serveUnkicked()).toBe(0);
    expect(device.notifies).toEqual([]);
  });

  it('does nothing before DRIVER_OK, after a reset or in NEEDS_RESET', () => {
    const { driver, device, transport } = setup();
    expect(transport.serveUnkicked()).toBe(0);
    driver.init();
    driver.queue(0).add([{ length: 8, writable: true }]);
    expect(transport.serveUnkicked()).toBe(0); // noted
    device.activation.fail('test');
    expect(transport.serveUnkicked()).toBe(0);
    driver.reset();
    expect(transport.serveUnkicked()).toBe(0);
    expect(device.notifies).toEqual([]);
  });
});

describe('interrupts (§4.2.2 InterruptStatus, bao-abi §3.8)', () => {
  it('sets the VRING bit before signalling a used-buffer interrupt, and InterruptACK clears it', () => {
    const { driver, device, transport } = setup();
    driver.init({ queueSizes: [8, 0] });
    const seen: number[] = [];
    const signal = driver.interrupts.signal.bind(driver.interrupts);
    driver.interrupts.signal = () => {
      seen.push(transport.interruptStatus);
      signal();
    };
    const head = driver.queue(0).add([{ length: 4, writable: true }]);
    const q = device.activation.queues[0];
    const chain = q?.pop();
    q?.addUsed(chain?.head ?? -1, 4);
    device.activation.notifyUsed(0);
    expect(seen).toEqual([R.INTERRUPT_VRING]);
    expect(driver.queue(0).used()).toEqual([{ id: head, len: 4 }]);
    expect(driver.ackInterrupt()).toBe(R.INTERRUPT_VRING);
    expect(driver.interruptStatus()).toBe(0);
    expect(transport.stats.usedInterrupts).toBe(1);
  });

  it('does not signal when nothing new was used or the driver suppressed it', () => {
    const { driver, device } = setup();
    driver.init({ features: acceptOnly(RING_EVENT_IDX), queueSizes: [8, 0] });
    const q = device.activation.queues[0];
    driver.queue(0).setUsedEvent(1); // interrupt me once entry 1 is used
    for (let i = 0; i < 3; i += 1) {
      driver.queue(0).add([{ length: 1, writable: true }]);
      q?.addUsed(q.pop()?.head ?? -1, 1);
      device.activation.notifyUsed(0);
    }
    expect(driver.interrupts.count).toBe(1); // at used idx 2 only
    device.activation.notifyUsed(0);
    expect(driver.interrupts.count).toBe(1);
  });

  it('counts kicks, interrupts and suppressed publications per queue', () => {
    const { driver, device, transport } = setup();
    driver.init({ features: acceptOnly(RING_EVENT_IDX), queueSizes: [8, 8] });
    const q = device.activation.queues[1];
    driver.queue(1).setUsedEvent(1);
    for (let i = 0; i < 3; i += 1) {
      driver.queue(1).add([{ length: 1, writable: true }]);
      driver.kick(1);
      q?.addUsed(q.pop()?.head ?? -1, 1);
      device.activation.notifyUsed(1);
    }
    expect(transport.stats.notifiesByQueue).toEqual([0, 3]);
    expect(transport.stats.usedInterruptsByQueue).toEqual([0, 1]);
    expect(transport.stats.usedSuppressedByQueue).toEqual([0, 2]);
  });

  it('bumps ConfigGeneration and raises the config interrupt on a config change', () => {
    const { driver, device, transport } = setup();
    driver.init();
    expect(driver.read(R.MMIO_CONFIG_GENERATION)).toBe(0);
    device.activation.configChanged();
    expect(driver.read(R.MMIO_CONFIG_GENERATION)).toBe(1);
    expect(driver.interruptStatus()).toBe(R.INTERRUPT_CONFIG);
    expect(transport.stats.configInterrupts).toBe(1);
  });
});

describe('DEVICE_NEEDS_RESET (§2.1.2)', () => {
  it('is set by activation.fail(), raises the config interrupt, and stops the queues', () => {
    const { driver, device, transport, log } = setup();
    driver.init({ queueSizes: [8, 0] });
    driver.queue(0).add([{ length: 4, writable: true }]);
    device.activation.fail('guest corrupted the ring', { queue: 0 });
    expect(driver.status()).toBe(ADFO | DEVICE_NEEDS_RESET);
    expect(driver.interruptStatus()).toBe(R.INTERRUPT_CONFIG);
    expect(driver.interrupts.count).toBe(1);
    expect(device.activation.queues[0]?.pop()).toBeNull();
    expect(log.errors).toHaveLength(1);
    device.activation.fail('again');
    expect(transport.stats.needsReset).toBe(1);
    driver.kick(0);
    expect(device.notifies).toEqual([0]); // the transport still forwards; the closed queue is empty
  });

  it('is kept when the driver writes its status back, and cleared by a reset', () => {
    const { driver, device } = setup();
    driver.init();
    device.activation.fail('x');
    driver.addStatus(FAILED);
    expect(driver.status()).toBe(ADFO | DEVICE_NEEDS_RESET | FAILED);
    driver.write(R.MMIO_STATUS, 0);
    expect(driver.status()).toBe(0);
  });
});

describe('reset (status 0) and re-activation', () => {
  it('resets the device, forgets the queues and the negotiated state, and calls onReset', () => {
    const onReset = vi.fn();
    const { driver, device, transport } = setup({ onReset });
    driver.init({ queueSizes: [8, 4] });
    const old = device.activation;
    device.activation.configChanged();
    driver.reset();
    expect(device.resets).toBeGreaterThanOrEqual(2); // one at negotiate(), one now
    expect(onReset).toHaveBeenCalled();
    expect(transport.active).toBe(false);
    expect(transport.features).toBe(0n);
    expect(driver.interruptStatus()).toBe(0);
    driver.write(R.MMIO_QUEUE_SEL, 0);
    expect(driver.read(R.MMIO_QUEUE_READY)).toBe(0);
    expect(old.queues[0]?.closed).toBe(true);
    // The old activation is dead: nothing it does reaches the new driver.
    const count = driver.interrupts.count;
    old.notifyUsed(0);
    old.configChanged();
    old.fail('stale');
    expect(driver.interrupts.count).toBe(count);
    expect(driver.status()).toBe(0);
  });

  it('serves a second driver after unbind/bind, with fresh queues', () => {
    const { driver, device } = setup();
    driver.init({ queueSizes: [8, 0] });
    driver.queue(0).add([{ length: 4, writable: true }]);
    device.activation.queues[0]?.pop();
    driver.init({ queueSizes: [4, 0] });
    expect(device.activations).toHaveLength(2);
    const q = device.activation.queues[0];
    expect(q?.size).toBe(4);
    expect(q?.nextAvail).toBe(0);
    const head = driver.queue(0).add([{ length: 2, writable: true }]);
    expect(q?.pop()?.head).toBe(head);
  });

  it('logs a device reset that throws or rejects, and still resets the transport', async () => {
    const { driver, device, log } = setup();
    driver.init();
    device.reset = () => {
      throw new Error('sync');
    };
    driver.reset();
    expect(driver.status()).toBe(0);
    device.reset = () => Promise.reject(new Error('async'));
    driver.reset();
    await new Promise((r) => setImmediate(r));
    expect(log.errors).toEqual(['device reset failed', 'device reset failed']);
  });
});

describe('reset waits for the device: the Status=0 write completes only once the device is quiet', () => {
  /** A device initialised by the driver, whose next reset takes until finish(). */
  function deferredReset(init: Parameters<MockDriver['init']>[0] = {}) {
    const onReset = vi.fn();
    const s = setup({ onReset });
    s.driver.init(init);
    onReset.mockClear();
    let finish: () => void = () => {};
    s.device.reset = () => {
      s.device.resets += 1;
      return new Promise<void>((resolve) => {
        finish = resolve;
      });
    };
    return { ...s, onReset, finish: () => finish() };
  }

  it('returns undefined for a device whose reset is immediate', () => {
    const { driver } = setup();
    driver.init();
    expect(driver.write(R.MMIO_STATUS, 0)).toBeUndefined();
    expect(driver.transport.resetInProgress).toBe(false);
  });

  it('returns a Promise while the device finishes, settling after it', async () => {
    const { driver, transport, finish } = deferredReset();
    const pending = driver.write(R.MMIO_STATUS, 0);
    expect(pending).toBeInstanceOf(Promise);
    expect(transport.resetInProgress).toBe(true);
    let settled = false;
    void pending?.then(() => {
      settled = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    finish();
    await pending;
    expect(settled).toBe(true);
    expect(transport.resetInProgress).toBe(false);
  });

  it('answers other accesses meanwhile as a device in reset: registers read as after reset, writes refused, kicks dropped', async () => {
    const { driver, transport, device, finish } = deferredReset({ queueSizes: [8, 0] });
    const pending = driver.write(R.MMIO_STATUS, 0);
    expect(driver.status()).toBe(0);
    expect(transport.stats.resets).toBe(1); // the one at negotiate(); this one is not done
    expect(driver.write(R.MMIO_STATUS, A)).toBeUndefined();
    expect(driver.status()).toBe(0);
    expect(transport.stats.faults.RESET_IN_PROGRESS).toBe(1);
    transport.queueNotify(0);
    expect(device.notifies).toEqual([]);
    expect(driver.write(R.MMIO_STATUS, 0)).toBe(pending); // a second reset waits for the same
    finish();
    await pending;
    expect(transport.stats.resets).toBe(2);
    device.reset = () => {};
    driver.init({ queueSizes: [4, 0] });
    expect(transport.active).toBe(true);
  });

  it('calls onReset only once the device is quiet', async () => {
    const { driver, onReset, finish } = deferredReset();
    const pending = driver.write(R.MMIO_STATUS, 0);
    await new Promise((r) => setImmediate(r));
    expect(onReset).not.toHaveBeenCalled();
    finish();
    await pending;
    expect(onReset).toHaveBeenCalledOnce();
  });

  it('settles (never rejects) when the device reset rejects, and logs it', async () => {
    const { driver, device, log } = setup();
    driver.init();
    device.reset = () => Promise.reject(new Error('disk gone'));
    await expect(driver.write(R.MMIO_STATUS, 0)).resolves.toBeUndefined();
    expect(log.errors).toEqual(['device reset failed']);
  });
});

describe('bad register accesses are guest faults: logged, counted, ignored, reads give 0', () => {
  const reads: [string, number, number][] = [
    ['an 8-bit register read', R.MMIO_MAGIC_VALUE, 1],
    ['a 16-bit register read', R.MMIO_STATUS, 2],
    ['a 64-bit register read', R.MMIO_MAGIC_VALUE, 8],
    ['a misaligned register read', 0x002, 4],
    ['a read of an unknown register', 0x018, 4],
    ['a read of the gap before config space', 0x0f8, 4],
    ['a read past the window', 0x200, 4],
    ['a read at a negative offset', -4, 4],
    ['a read at a fractional offset', 1.5, 4],
    ['a read of write-only QueueNotify', R.MMIO_QUEUE_NOTIFY, 4],
    ['a read of write-only InterruptACK', R.MMIO_INTERRUPT_ACK, 4],
    ['a read of write-only QueueDescLow', R.MMIO_QUEUE_DESC_LOW, 4],
  ];
  it.each(reads)('%s', (_name, offset, width) => {
    const { transport, driver } = setup();
    driver.init();
    expect(transport.read(offset, width)).toBe(0);
    expect(transport.stats.guestFaults).toBe(1);
    expect(driver.status()).toBe(ADFO);
  });

  const writes: [string, number, number, number][] = [
    ['an 8-bit status write', R.MMIO_STATUS, 1, 0],
    ['a 16-bit status write', R.MMIO_STATUS, 2, 0],
    ['a 64-bit status write', R.MMIO_STATUS, 8, 0],
    ['a misaligned write', 0x072, 4, 0],
    ['a write to an unknown register', 0x01c, 4, 1],
    ['a write past the window', 0x400, 4, 1],
    ['a write to MagicValue', R.MMIO_MAGIC_VALUE, 4, 0],
    ['a write to DeviceFeatures', R.MMIO_DEVICE_FEATURES, 4, 0xffffffff],
    ['a write to QueueNumMax', R.MMIO_QUEUE_NUM_MAX, 4, 1],
    ['a write to InterruptStatus', R.MMIO_INTERRUPT_STATUS, 4, 3],
    ['a write to ConfigGeneration', R.MMIO_CONFIG_GENERATION, 4, 7],
    ['a write to SHMLenLow', R.MMIO_SHM_LEN_LOW, 4, 7],
  ];
  it.each(writes)('%s', (_name, offset, width, value) => {
    const { transport, driver, device } = setup();
    driver.init();
    transport.write(offset, width, value);
    expect(transport.stats.guestFaults).toBe(1);
    expect(driver.status()).toBe(ADFO);
    expect(device.resets).toBe(1); // only the one at negotiate()
  });

  it('rate-limits its log in time per device model, counting every fault and summarising what it dropped', () => {
    let now = 0;
    const timers: (() => void)[] = [];
    const device = new TestDevice();
    const log = recordingLogger();
    const driver = MockDriver.create(device, {
      log,
      transport: { logLimit: { linesPerSecond: 10, burst: 20, summaryMs: 5000, now: () => now, setTimer: (fn) => void timers.push(fn) } },
    });
    const transport = driver.transport;
    for (let i = 0; i < 2000; i += 1) transport.read(0x018, 4);
    expect(transport.stats.faults.UNKNOWN_REGISTER).toBe(2000);
    expect(log.warns).toHaveLength(20); // the burst, within the same instant
    now += 1000; // one second later: ten more lines
    for (let i = 0; i < 2000; i += 1) transport.read(0x018, 4);
    expect(log.warns).toHaveLength(30);
    expect(timers).toHaveLength(1); // one summary armed, however many were dropped
    timers[0]!();
    expect(log.warns.at(-1)).toBe('3970 similar log lines suppressed');
    expect(transport.stats.faults.UNKNOWN_REGISTER).toBe(4000);
  });

  it('limits activation and reset lines too: a reset/activate storm logs about ten lines a second', () => {
    let now = 0;
    const device = new TestDevice();
    const lines: string[] = [];
    const log: Logger = {
      debug: () => {},
      info: (_o, m) => void lines.push(m ?? ''),
      warn: (_o, m) => void lines.push(m ?? ''),
      error: (_o, m) => void lines.push(m ?? ''),
      child: () => log,
    };
    const driver = MockDriver.create(device, { log, transport: { logLimit: { now: () => now, setTimer: () => {} } } });
    for (let i = 0; i < 500; i += 1) {
      driver.init({ queueSizes: [2, 0] });
      now += 1; // 500 cycles in half a second
    }
    expect(driver.transport.stats.activations).toBe(500);
    expect(lines.length).toBeLessThanOrEqual(20 + 5);
  });

  it('gives each device model its own log budget', () => {
    const now = 0;
    const log = recordingLogger();
    const a = MockDriver.create(new TestDevice(), { log, transport: { logLimit: { now: () => now, setTimer: () => {} } } });
    const b = MockDriver.create(new TestDevice(), { log, transport: { logLimit: { now: () => now, setTimer: () => {} } } });
    for (let i = 0; i < 100; i += 1) a.transport.read(0x018, 4);
    b.transport.read(0x018, 4);
    expect(log.warns).toHaveLength(21);
  });

  it('masks write values to the access width', () => {
    const { transport, driver } = setup();
    transport.write(R.MMIO_STATUS, 4, 0x1_0000_0001); // the hypervisor passes the whole register
    expect(driver.status()).toBe(A);
  });
});

describe('device configuration space at 0x100 (§4.2.2.2)', () => {
  it('reads 8-, 16- and 32-bit aligned fields little-endian', () => {
    const { driver } = setup();
    expect(driver.readConfig(0, 1)).toBe(0x11);
    expect(driver.readConfig(3, 1)).toBe(0x44);
    expect(driver.readConfig(2, 2)).toBe(0x4433);
    expect(driver.readConfig(4, 4)).toBe(0x88776655);
    expect(driver.readConfig(8, 4)).toBe(0xccbbaa99);
  });

  it('reads a 64-bit field as two 32-bit halves', () => {
    const { driver } = setup();
    const value = BigInt(driver.readConfig(0, 4)) | (BigInt(driver.readConfig(4, 4)) << 32n);
    expect(value).toBe(0x8877665544332211n);
  });

  it.each([
    ['a 64-bit access', 0, 8],
    ['a misaligned 16-bit access', 1, 2],
    ['a misaligned 32-bit access', 2, 4],
    ['a 3-byte access', 0, 3],
    ['an access past the end of the config space', 12, 1],
    ['an access straddling the end', 10, 4],
  ] as const)('refuses %s', (_name, offset, width) => {
    const { transport } = setup();
    expect(transport.read(R.MMIO_CONFIG + offset, width)).toBe(0);
    transport.write(R.MMIO_CONFIG + offset, width, 0);
    expect(transport.stats.faults.CONFIG_ACCESS_INVALID).toBe(2);
  });

  it('refuses writes to a read-only config space', () => {
    const { driver, device, transport } = setup();
    driver.writeConfig(0, 1, 0xff);
    expect(transport.stats.faults.CONFIG_READ_ONLY).toBe(1);
    expect(device.config[0]).toBe(0x11);
  });

  it('passes writes to a device that accepts them, little-endian and masked to the width', () => {
    const { driver, device, transport } = setup();
    device.writeConfig = (offset, data) => {
      device.configWrites.push([offset, Array.from(data)]);
      return offset !== 8;
    };
    driver.writeConfig(4, 4, 0x01020304);
    driver.writeConfig(2, 2, 0x1abcd);
    driver.writeConfig(8, 1, 1);
    expect(device.configWrites).toEqual([
      [4, [4, 3, 2, 1]],
      [2, [0xcd, 0xab]],
      [8, [1]],
    ]);
    expect(transport.stats.faults.CONFIG_WRITE_REFUSED).toBe(1);
  });
});

