// MockDriver: the frontend driver of one virtio-mmio device, in TypeScript, for device
// tests. It does what Linux's virtio_mmio + virtio core do, through MmioTransport's
// register interface only: probe, reset, negotiate features, set up split queues in a
// Uint8Array acting as guest memory, DRIVER_OK, submit chains, kick, read used entries, and
// count interrupts. Shipped with the library so every device's tests use the same driver.
//
// Typical use:
//   const driver = MockDriver.create(new RngDevice());
//   driver.init();                                  // negotiate everything offered, all queues
//   const head = driver.queue(0).add([{ length: 64, writable: true }]);
//   driver.kick(0);
//   driver.queue(0).used();                         // [{ id: head, len: 64 }]
//   driver.interrupts.count;                        // 1
//
// Guard bytes surround the region (create({ guardBytes })) so tests can assert that the
// device never wrote outside it (guardsIntact()).

import type { VirtioDevice } from '../device.js';
import { GuestMemory } from '../guest-memory.js';
import { featureWord, VERSION_1 } from '../features.js';
import type { Logger } from '../logger.js';
import * as R from '../mmio-registers.js';
import { MmioTransport, type MmioTransportOptions } from '../mmio-transport.js';
import { ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK } from '../status.js';
import { GuestAllocator, MockDriverError, MockQueue } from './mock-queue.js';

export { GuestAllocator, MockDriverError, MockQueue } from './mock-queue.js';
export type { AddOptions, MockBuffer, RawDescriptor, UsedElement } from './mock-queue.js';

/** Stands in for the irqfd: counts signals. */
export class InterruptCounter {
  count = 0;
  signal(): void {
    this.count += 1;
  }
}

export interface MockDriverCreateOptions {
  /** Frontend GPA of the region (default 0x4000_0000, 8-aligned). */
  readonly base?: number;
  /** Region size in bytes (default 1 MiB). */
  readonly size?: number;
  /** Bytes of 0xA5 guard on each side of the region (default 64, rounded up to 8). */
  readonly guardBytes?: number;
  readonly log?: Logger;
  /** Extra transport options (hooks). */
  readonly transport?: Partial<Pick<MmioTransportOptions, 'onActivate' | 'onReset' | 'vendorId' | 'logLimit' | 'interruptStatusWord' | 'state'>>;
}

export interface InitOptions {
  /** Features to accept, or a function from the offer; default: everything offered. */
  readonly features?: bigint | ((offered: bigint) => bigint);
  /** Size of each queue to set up (default: each queue's maximum); 0 leaves a queue off. */
  readonly queueSizes?: readonly number[];
}

export const GUARD_BYTE = 0xa5;

export class MockDriver {
  private readonly queues = new Map<number, MockQueue>();

  constructor(
    readonly transport: MmioTransport,
    readonly memory: GuestMemory,
    readonly interrupts: InterruptCounter,
    readonly allocator: GuestAllocator = new GuestAllocator(memory),
    /** The whole buffer around the region, guards included (for guardsIntact). */
    readonly backing: Uint8Array = memory.bytes,
    private readonly guard = 0,
  ) {}

  /** A device behind a fresh transport, region and interrupt counter. */
  static create(device: VirtioDevice, options: MockDriverCreateOptions = {}): MockDriver {
    const base = options.base ?? 0x4000_0000;
    const size = options.size ?? 1 << 20;
    const guard = Math.ceil((options.guardBytes ?? 64) / 8) * 8;
    const backing = new Uint8Array(guard + size + guard).fill(GUARD_BYTE);
    const region = backing.subarray(guard, guard + size);
    region.fill(0);
    const memory = new GuestMemory(base, region);
    const interrupts = new InterruptCounter();
    const transport = new MmioTransport(device, {
      memory,
      interrupt: interrupts,
      ...(options.log ? { log: options.log } : {}),
      ...options.transport,
    });
    return new MockDriver(transport, memory, interrupts, new GuestAllocator(memory), backing, guard);
  }

  /**
   * The same driver, rings and buffers, now talking to `transport` (a device model another
   * process started: see MmioTransport.resume). The driver itself does nothing: it never noticed.
   */
  takeOver(transport: MmioTransport): MockDriver {
    const next = new MockDriver(transport, this.memory, this.interrupts, this.allocator, this.backing, this.guard);
    for (const [index, q] of this.queues) next.queues.set(index, q);
    return next;
  }

  /** True when no byte of the guard areas around the region changed. */
  guardsIntact(): boolean {
    const end = this.backing.length;
    for (let i = 0; i < this.guard; i += 1) {
      if (this.backing[i] !== GUARD_BYTE || this.backing[end - 1 - i] !== GUARD_BYTE) return false;
    }
    return true;
  }

  read(offset: number): number {
    return this.transport.read(offset, 4);
  }

  /** A Promise only when the write is a reset the device is still finishing (see MmioTransport). */
  write(offset: number, value: number): void | Promise<void> {
    return this.transport.write(offset, 4, value);
  }

  readConfig(offset: number, width: 1 | 2 | 4 = 4): number {
    return this.transport.read(R.MMIO_CONFIG + offset, width);
  }

  writeConfig(offset: number, width: 1 | 2 | 4, value: number): void {
    this.transport.write(R.MMIO_CONFIG + offset, width, value);
  }

  status(): number {
    return this.read(R.MMIO_STATUS);
  }

  /** Linux's virtio_add_status: read, OR, write back. */
  addStatus(bits: number): void {
    this.write(R.MMIO_STATUS, this.status() | bits);
  }

  /** Check MagicValue and Version 2; returns DeviceID and VendorID. */
  probe(): { deviceId: number; vendorId: number } {
    if (this.read(R.MMIO_MAGIC_VALUE) !== R.MAGIC_VALUE) throw new MockDriverError('bad magic value');
    if (this.read(R.MMIO_VERSION) !== R.MMIO_VERSION_2) throw new MockDriverError('not a virtio-mmio v2 device');
    return { deviceId: this.read(R.MMIO_DEVICE_ID), vendorId: this.read(R.MMIO_VENDOR_ID) };
  }

  /**
   * Write status 0 and forget the queues (the driver's rings are abandoned). Returns the
   * transport's Promise when the device's reset is still finishing: await it before reusing
   * the memory, as a vCPU would be held on that write.
   */
  reset(): void | Promise<void> {
    const pending = this.write(R.MMIO_STATUS, 0);
    this.queues.clear();
    this.allocator.reset();
    return pending;
  }

  deviceFeatures(): bigint {
    let features = 0n;
    for (const sel of [1, 0]) {
      this.write(R.MMIO_DEVICE_FEATURES_SEL, sel);
      features = (features << 32n) | BigInt(this.read(R.MMIO_DEVICE_FEATURES));
    }
    return features;
  }

  writeDriverFeatures(features: bigint): void {
    for (const sel of [0, 1]) {
      this.write(R.MMIO_DRIVER_FEATURES_SEL, sel);
      this.write(R.MMIO_DRIVER_FEATURES, featureWord(features, sel));
    }
  }

  /**
   * Reset, ACKNOWLEDGE, DRIVER, accept features, FEATURES_OK and read it back (§3.1.1).
   * Returns the accepted set; throws MockDriverError if the device refused it.
   */
  negotiate(accept: bigint | ((offered: bigint) => bigint) = (offered) => offered): bigint {
    this.reset();
    this.addStatus(ACKNOWLEDGE);
    this.addStatus(DRIVER);
    const offered = this.deviceFeatures();
    const features = typeof accept === 'function' ? accept(offered) : accept;
    this.writeDriverFeatures(features);
    this.addStatus(FEATURES_OK);
    if ((this.status() & FEATURES_OK) === 0) throw new MockDriverError('device refused the features (FEATURES_OK did not stick)');
    return features;
  }

  /** Allocate rings for queue `index`, program its registers and set QueueReady. */
  setupQueue(index: number, size?: number): MockQueue {
    this.write(R.MMIO_QUEUE_SEL, index);
    if (this.read(R.MMIO_QUEUE_READY) !== 0) throw new MockDriverError(`queue ${index} is already ready`);
    const max = this.read(R.MMIO_QUEUE_NUM_MAX);
    if (max === 0) throw new MockDriverError(`queue ${index} does not exist`);
    const n = size ?? max;
    const q = new MockQueue(this.memory, this.allocator, n);
    this.write(R.MMIO_QUEUE_NUM, n);
    this.programQueueAddresses(q.descTable, q.availRing, q.usedRing);
    this.write(R.MMIO_QUEUE_READY, 1);
    this.queues.set(index, q);
    return q;
  }

  /** Write the three ring addresses of the selected queue (hostile tests call it directly). */
  programQueueAddresses(desc: number, driver: number, device: number): void {
    const pairs = [
      [R.MMIO_QUEUE_DESC_LOW, desc],
      [R.MMIO_QUEUE_DRIVER_LOW, driver],
      [R.MMIO_QUEUE_DEVICE_LOW, device],
    ] as const;
    for (const [low, gpa] of pairs) {
      this.write(low, gpa % 2 ** 32);
      this.write(low + 4, Math.floor(gpa / 2 ** 32));
    }
  }

  driverOk(): void {
    this.addStatus(DRIVER_OK);
  }

  /** The whole initialisation of §3.1.1: probe, negotiate, set up queues, DRIVER_OK. */
  init(options: InitOptions = {}): this {
    this.probe();
    this.negotiate(options.features ?? ((offered) => offered));
    const count = this.transport.device.queueMaxSizes.length;
    for (let i = 0; i < count; i += 1) {
      const size = options.queueSizes?.[i];
      if (size !== 0) this.setupQueue(i, size);
    }
    this.driverOk();
    return this;
  }

  /** The driver side of queue `index` (after setupQueue/init). */
  queue(index: number): MockQueue {
    const q = this.queues.get(index);
    if (!q) throw new MockDriverError(`queue ${index} was not set up`);
    return q;
  }

  /** QueueNotify through the register (the path an ioeventfd short-cuts). */
  kick(index: number): void {
    this.write(R.MMIO_QUEUE_NOTIFY, index);
  }

  interruptStatus(): number {
    return this.read(R.MMIO_INTERRUPT_STATUS);
  }

  /** What Linux's vm_interrupt does: read InterruptStatus and acknowledge it. */
  ackInterrupt(): number {
    const status = this.interruptStatus();
    this.write(R.MMIO_INTERRUPT_ACK, status);
    return status;
  }
}

/** Features a minimal modern driver accepts: VERSION_1 plus what `wanted` names. */
export function acceptOnly(wanted: bigint): (offered: bigint) => bigint {
  return (offered) => offered & (wanted | VERSION_1);
}
