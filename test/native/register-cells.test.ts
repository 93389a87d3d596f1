// Register cells as the native ATTACH thread sees them (native/cells.cc, through the addon's
// answerCell, the same lookup without the COMPLETE ioctl): the table format written by
// lib/dispatcher/register-cells.ts, the three actions, what misses, and the hot registers of a
// real transport answered from the transport's own InterruptStatus word.

import { describe, expect, it } from 'vitest';

import { CellKind, RegisterCellTable } from '../../lib/dispatcher/index.js';
import { loadAddon } from '../../lib/native.js';
import { IoOp } from '../../lib/uapi/constants.js';
import type { DeviceActivation, VirtioDevice } from '../../lib/virtio/device.js';
import * as R from '../../lib/virtio/mmio-registers.js';
import { MockDriver } from '../../lib/virtio/testing/mock-driver.js';
import { HotRegisters } from '../../lib/vmm/hot-registers.js';

const addon = loadAddon();
const BASE = 0x1_0a00_3e00; // above 4 GiB: both address words matter

describe('a register cell table', () => {
  it('answers a READ of a read cell with its value word, and counts the hit', () => {
    const t = new RegisterCellTable();
    const w = t.allocate(0x1234);
    const n = t.add(BASE + 0x60, 4, CellKind.Read, w);
    expect(addon.answerCell(t.buffer, BASE + 0x60, IoOp.Read, 4, 0)).toBe(0x1234);
    Atomics.store(w.words, w.index, -1);
    expect(addon.answerCell(t.buffer, BASE + 0x60, IoOp.Read, 4, 0)).toBe(0xffffffff);
    expect(t.hits(n)).toBe(2);
  });

  it('clears exactly the written bits on a clear-bits cell, and stores on a store cell', () => {
    const t = new RegisterCellTable();
    const w = t.allocate(0b1011);
    t.add(BASE + 0x64, 4, CellKind.ClearBits, w);
    const s = t.allocate(0);
    t.add(BASE + 0x30, 4, CellKind.Store, s);
    // The echoed value of a WRITE is what the guest wrote (the COMPLETE echoes it).
    expect(addon.answerCell(t.buffer, BASE + 0x64, IoOp.Write, 4, 0b0011)).toBe(0b0011);
    expect(Atomics.load(w.words, w.index)).toBe(0b1000);
    expect(addon.answerCell(t.buffer, BASE + 0x30, IoOp.Write, 4, 0x1_0000_0007n)).not.toBeNull();
    expect(Atomics.load(s.words, s.index)).toBe(7); // the width's bytes only
    expect(t.totalHits).toBe(2);
  });

  it('misses on another address, width or op, and when disabled, touching nothing', () => {
    const t = new RegisterCellTable();
    const w = t.allocate(5);
    t.add(BASE + 0x60, 4, CellKind.Read, w);
    expect(addon.answerCell(t.buffer, BASE + 0x64, IoOp.Read, 4, 0)).toBeNull();
    expect(addon.answerCell(t.buffer, BASE + 0x60 - 0x1_0000_0000, IoOp.Read, 4, 0)).toBeNull(); // high word differs
    expect(addon.answerCell(t.buffer, BASE + 0x60, IoOp.Read, 2, 0)).toBeNull();
    expect(addon.answerCell(t.buffer, BASE + 0x60, IoOp.Write, 4, 0)).toBeNull();
    expect(addon.answerCell(t.buffer, BASE + 0x60, 2, 4, 0)).toBeNull(); // neither READ nor WRITE
    t.disable();
    expect(addon.answerCell(t.buffer, BASE + 0x60, IoOp.Read, 4, 0)).toBeNull();
    expect(Atomics.load(w.words, w.index)).toBe(5);
    expect(t.hits(0)).toBe(0);
  });

  it('refuses cells it cannot describe', () => {
    const t = new RegisterCellTable({ maxCells: 1, valueWords: 1 });
    const w = t.allocate();
    expect(() => t.allocate()).toThrow(/value words/);
    expect(() => t.add(BASE, 8, CellKind.Read, w)).toThrow(/wide/);
    expect(() => t.add(BASE, 4, CellKind.Read, new RegisterCellTable().allocate())).toThrow(/another table/);
    t.add(BASE, 4, CellKind.Read, w);
    expect(() => t.add(BASE + 4, 4, CellKind.Read, w)).toThrow(/cells are in use/);
  });
});

describe('the hand-off timing block of a cell table', () => {
  it('counts each delivery in the hand-off and JS-turn histograms the native side fills, read back as percentiles', () => {
    const t = new RegisterCellTable({ maxCells: 1, valueWords: 1, timing: true });
    expect(t.handOffTiming()).toEqual({ handoff: { n: 0, p50Us: 0, p90Us: 0, p99Us: 0, maxUs: 0 }, turn: { n: 0, p50Us: 0, p90Us: 0, p99Us: 0, maxUs: 0 } });
    const q = 1_000_000_000n;
    for (let i = 0; i < 9; i += 1) addon.recordDelivery(t.buffer, q, q + 100_000n, q + 110_000n); // 100 us, 10 us
    addon.recordDelivery(t.buffer, q, q + 2_000_000n, q + 2_001_000n); // 2 ms, 1 us
    const timing = t.handOffTiming();
    expect(timing?.handoff.n).toBe(10);
    // Bucket lower bounds, 4 per octave: 100 us falls in [98.3, 114.7) us, 2 ms in [1835, 2097) us, 10 us in [8.2, 10.2) us.
    expect(timing?.handoff.p50Us).toBeCloseTo(98.3, 1);
    expect(timing?.handoff.p90Us).toBeCloseTo(98.3, 1);
    expect(timing?.handoff.maxUs).toBeCloseTo(1835.0, 1);
    expect(timing?.turn.p50Us).toBeCloseTo(8.2, 1);
    expect(timing?.turn.maxUs).toBeCloseTo(8.2, 1);
  });

  it('times one batch in `every`: the others carry no queued time, so neither thread reads the clock for them', () => {
    const sampled = new RegisterCellTable({ maxCells: 1, valueWords: 1, timing: { every: 4 } });
    const marks = Array.from({ length: 9 }, () => addon.markQueued(sampled.buffer));
    expect(marks.map((m) => m !== 0n)).toEqual([true, false, false, false, true, false, false, false, true]);
    const every = new RegisterCellTable({ maxCells: 1, valueWords: 1, timing: true });
    expect(Array.from({ length: 3 }, () => addon.markQueued(every.buffer) !== 0n)).toEqual([true, true, true]);
    const plain = new RegisterCellTable({ maxCells: 1, valueWords: 1 });
    expect(addon.markQueued(plain.buffer)).toBe(0n);
    expect(() => new RegisterCellTable({ timing: { every: 0 } })).toThrow(/timing.every/);
  });

  it('ignores deliveries without a queued time or with times out of order, and tables without a timing block', () => {
    const t = new RegisterCellTable({ maxCells: 1, valueWords: 1, timing: true });
    addon.recordDelivery(t.buffer, 0, 5, 6);
    addon.recordDelivery(t.buffer, 10, 5, 6);
    expect(t.handOffTiming()?.handoff.n).toBe(0);
    const plain = new RegisterCellTable({ maxCells: 1, valueWords: 1 });
    addon.recordDelivery(plain.buffer, 1, 2, 3);
    expect(plain.handOffTiming()).toBeUndefined();
    expect([...plain.words].every((w) => w === 0)).toBe(true);
  });
});

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
  reset(): void {}
}

describe('the hot registers of a device model', () => {
  function setup() {
    const hot = new HotRegisters(BASE);
    const device = new EchoDevice();
    const driver = MockDriver.create(device, { transport: { interruptStatusWord: hot.interruptStatus } });
    hot.publish(driver.transport);
    const native = (offset: number, op: number, value = 0) => addon.answerCell(hot.table.buffer, BASE + offset, op, 4, value);
    return { hot, device, driver, native };
  }

  it('answers the probe\u2019s constants as the transport does', () => {
    const { driver, native } = setup();
    for (const off of [R.MMIO_MAGIC_VALUE, R.MMIO_VERSION, R.MMIO_DEVICE_ID, R.MMIO_VENDOR_ID]) {
      expect(native(off, IoOp.Read)).toBe(driver.read(off));
    }
  });

  it('reads the interrupt the transport raised, and its ACK clears it in the transport', () => {
    const { driver, device, native, hot } = setup();
    driver.init();
    driver.queue(0).add([{ length: 4, writable: true }]);
    driver.kick(0);
    expect(driver.interrupts.count).toBe(1);
    const status = native(R.MMIO_INTERRUPT_STATUS, IoOp.Read);
    expect(status).toBe(R.INTERRUPT_VRING);
    device.activation?.configChanged(); // raised between the frontend's read and its ACK
    native(R.MMIO_INTERRUPT_ACK, IoOp.Write, status ?? 0);
    expect(driver.transport.interruptStatus).toBe(R.INTERRUPT_CONFIG);
    expect(native(R.MMIO_INTERRUPT_STATUS, IoOp.Read)).toBe(R.INTERRUPT_CONFIG);
    expect(hot.hits).toBe(3);
  });

  it('leaves every other register to JS', () => {
    const { native } = setup();
    for (const off of [R.MMIO_DEVICE_FEATURES, R.MMIO_QUEUE_NUM_MAX, R.MMIO_STATUS, R.MMIO_CONFIG_GENERATION, R.MMIO_CONFIG]) {
      expect(native(off, IoOp.Read)).toBeNull();
    }
    for (const off of [R.MMIO_QUEUE_SEL, R.MMIO_STATUS, R.MMIO_QUEUE_NOTIFY, R.MMIO_INTERRUPT_STATUS]) {
      expect(native(off, IoOp.Write, 1)).toBeNull();
    }
  });
});
