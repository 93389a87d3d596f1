// InterruptStatus in a shared word (MmioTransportOptions.interruptStatusWord): another thread may
// answer the frontend's InterruptStatus reads and InterruptACK writes from it (lib/vmm's hot
// registers), so the transport must set a bit before it signals the interrupt, and must change
// the word only atomically so that neither side's change is undone by the other's. Here the
// "other thread" is played with Atomics on the same word; no addon.

import { describe, expect, it } from 'vitest';

import type { DeviceActivation, VirtioDevice } from '../../../lib/virtio/device.js';
import * as R from '../../../lib/virtio/mmio-registers.js';
import { MockDriver } from '../../../lib/virtio/testing/mock-driver.js';

/** Returns every buffer at once with 1 byte written, and tells the driver. */
class EchoDevice implements VirtioDevice {
  readonly deviceId = 4;
  readonly name = 'echo';
  readonly features = 0n;
  readonly queueMaxSizes = [8];
  readonly config = new Uint8Array(0);
  activation: DeviceActivation | undefined;
  activate(a: DeviceActivation): void {
    this.activation = a;
  }
  queueNotify(index: number): void {
    const q = this.activation?.queues[index];
    for (let chain = q?.pop(); chain; chain = q?.pop()) q?.addUsed(chain.head, 1);
    this.activation?.notifyUsed(index);
  }
  reset(): void {
    this.activation = undefined;
  }
}

function setup() {
  const words = new Int32Array(4);
  const word = { words, index: 2 };
  const device = new EchoDevice();
  const driver = MockDriver.create(device, { transport: { interruptStatusWord: word } });
  driver.init();
  /** What the native thread does on an InterruptStatus read and an InterruptACK write. */
  const other = {
    read: () => Atomics.load(words, 2) >>> 0,
    ack: (bits: number) => void Atomics.and(words, 2, ~bits),
  };
  return { words, driver, device, transport: driver.transport, other };
}

describe('InterruptStatus in a shared word', () => {
  it('is the transport\u2019s InterruptStatus: the word and the register read agree', () => {
    const { transport, driver, words } = setup();
    expect(transport.interruptStatus).toBe(0);
    Atomics.or(words, 2, R.INTERRUPT_VRING);
    expect(driver.read(R.MMIO_INTERRUPT_STATUS)).toBe(R.INTERRUPT_VRING);
    driver.write(R.MMIO_INTERRUPT_ACK, R.INTERRUPT_VRING);
    expect(Atomics.load(words, 2)).toBe(0);
  });

  it('has the bit set before the interrupt is signalled (a read the interrupt causes sees it)', () => {
    const { driver, transport, other } = setup();
    const seenAtSignal: number[] = [];
    const interrupts = driver.interrupts;
    const count = interrupts.signal.bind(interrupts);
    interrupts.signal = () => {
      seenAtSignal.push(other.read());
      count();
    };
    driver.queue(0).add([{ length: 16, writable: true }]);
    driver.kick(0);
    expect(transport.stats.usedInterrupts).toBe(1);
    expect(seenAtSignal).toEqual([R.INTERRUPT_VRING]);
  });

  it('keeps a bit raised after the frontend read InterruptStatus when the ACK names only what it read', () => {
    const { driver, device, transport, other } = setup();
    driver.queue(0).add([{ length: 16, writable: true }]);
    driver.kick(0);
    const read = other.read(); // vm_interrupt: read ...
    expect(read).toBe(R.INTERRUPT_VRING);
    device.activation?.configChanged(); // ... a config change lands in between ...
    other.ack(read); // ... and ACK what was read
    expect(transport.interruptStatus).toBe(R.INTERRUPT_CONFIG); // not lost
    expect(driver.read(R.MMIO_INTERRUPT_STATUS)).toBe(R.INTERRUPT_CONFIG);
  });

  it('is cleared by a reset, in the word', () => {
    const { driver, words } = setup();
    Atomics.or(words, 2, R.INTERRUPT_VRING | R.INTERRUPT_CONFIG);
    driver.write(R.MMIO_STATUS, 0);
    expect(Atomics.load(words, 2)).toBe(0);
  });
});
