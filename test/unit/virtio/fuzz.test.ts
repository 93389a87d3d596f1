// Property tests: whatever a guest writes into its rings or its register window, the queue
// and the transport neither throw (other than the two typed guest-fault errors the queue
// reports to its device) nor reach a byte outside the shared region. The region sits inside
// a larger buffer whose guard bytes must come out untouched.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RngDevice } from '../../../lib/devices/rng/index.js';
import { InvalidChainError, QueueCorruptError } from '../../../lib/virtio/errors.js';
import { GuestMemory } from '../../../lib/virtio/guest-memory.js';
import * as R from '../../../lib/virtio/mmio-registers.js';
import { SplitQueue } from '../../../lib/virtio/split-queue.js';
import { GUARD_BYTE, MockDriver } from '../../../lib/virtio/testing/mock-driver.js';

const BASE = 0x4000_0000;
const SIZE = 64 * 1024;
const GUARD = 256;

function guardedRegion() {
  const backing = new Uint8Array(GUARD + SIZE + GUARD).fill(GUARD_BYTE);
  const region = backing.subarray(GUARD, GUARD + SIZE);
  region.fill(0);
  const intact = () =>
    backing.subarray(0, GUARD).every((b) => b === GUARD_BYTE) &&
    backing.subarray(GUARD + SIZE).every((b) => b === GUARD_BYTE);
  return { backing, memory: new GuestMemory(BASE, region), intact };
}

/** Addresses a hostile driver would try: inside, at the edges, just outside, absurd. */
const gpa = fc.oneof(
  fc.integer({ min: BASE, max: BASE + SIZE - 1 }).map(BigInt),
  fc.constantFrom(BASE - 1, BASE - 16, BASE + SIZE - 16, BASE + SIZE - 1, BASE + SIZE, 0).map(BigInt),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
);
const length = fc.oneof(
  fc.integer({ min: 0, max: 64 }),
  fc.integer({ min: 0, max: SIZE + 16 }),
  fc.constantFrom(0xffff_ffff, 0x8000_0000, 16 * 65536, SIZE),
);
const descriptor = fc.record({
  addr: gpa,
  len: length,
  flags: fc.integer({ min: 0, max: 7 }),
  next: fc.integer({ min: 0, max: 80 }),
});

const queueCase = fc.record({
  sizeLog2: fc.integer({ min: 0, max: 6 }),
  table: fc.array(descriptor, { minLength: 64, maxLength: 64 }),
  indirectTables: fc.array(fc.array(descriptor, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }),
  avail: fc.array(fc.integer({ min: 0, max: 70 }), { minLength: 64, maxLength: 64 }),
  availIdx: fc.oneof(fc.integer({ min: 0, max: 70 }), fc.integer({ min: 0, max: 0xffff })),
  eventIdx: fc.boolean(),
  indirect: fc.boolean(),
});

describe('fuzz: SplitQueue over random descriptor tables', () => {
  it('only ever reports typed guest faults, terminates, and keeps every view inside the region', () => {
    const seen = { chains: 0, invalid: 0, corrupt: 0 };
    fc.assert(
      fc.property(queueCase, (c) => {
        const { memory, intact } = guardedRegion();
        const size = 1 << c.sizeLog2;
        const desc = BASE;
        const avail = BASE + 0x1000;
        const used = BASE + 0x2000;
        const tables = BASE + 0x3000;
        // Indirect tables at known places, and some descriptors pointed at them.
        c.indirectTables.forEach((t, ti) =>
          t.forEach((d, i) => {
            const at = tables + ti * 0x100 + 16 * i;
            memory.writeU64(at, d.addr);
            memory.writeU32(at + 8, d.len);
            memory.writeU16(at + 12, d.flags);
            memory.writeU16(at + 14, d.next);
          }),
        );
        for (let i = 0; i < size; i += 1) {
          const d = c.table[i] as (typeof c.table)[number];
          const toTable = i % 3 === 0 && (d.flags & 4) !== 0;
          const at = desc + 16 * i;
          memory.writeU64(at, toTable ? BigInt(tables + (i % c.indirectTables.length) * 0x100) : d.addr);
          memory.writeU32(at + 8, toTable ? 16 * (c.indirectTables[i % c.indirectTables.length]?.length ?? 1) : d.len);
          memory.writeU16(at + 12, d.flags);
          memory.writeU16(at + 14, d.next);
          memory.writeU16(avail + 4 + 2 * i, c.avail[i] as number);
        }
        memory.writeU16(avail + 2, c.availIdx);
        const queue = new SplitQueue(memory, { size, descTable: desc, availRing: avail, usedRing: used, eventIdx: c.eventIdx, indirect: c.indirect });
        const regionStart = memory.bytes.byteOffset;
        const regionEnd = regionStart + memory.size;
        for (let step = 0; step < 2 * size + 2; step += 1) {
          let chain;
          try {
            chain = queue.pop();
          } catch (err) {
            if (err instanceof InvalidChainError) {
              seen.invalid += 1;
              expect(err.head).toBeLessThan(size);
              queue.addUsed(err.head, 0);
              continue;
            }
            expect(err).toBeInstanceOf(QueueCorruptError);
            seen.corrupt += 1;
            break;
          }
          if (!chain) break;
          seen.chains += 1;
          for (const v of [...chain.readable, ...chain.writable]) {
            expect(v.byteOffset).toBeGreaterThanOrEqual(regionStart);
            expect(v.byteOffset + v.length).toBeLessThanOrEqual(regionEnd);
          }
          for (const v of chain.writable) v.fill(0xee); // a device writing everything it may
          expect(chain.head).toBeLessThan(size);
          queue.addUsed(chain.head, chain.writableLength);
          queue.needsNotification();
        }
        queue.enableNotification();
        expect(intact()).toBe(true);
      }),
      { numRuns: 400 },
    );
    // The generator reaches all three outcomes, not just the easy rejections.
    expect(seen.chains).toBeGreaterThan(0);
    expect(seen.invalid).toBeGreaterThan(0);
    expect(seen.corrupt).toBeGreaterThan(0);
  });
});

const registerOffsets = [
  0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038, 0x044, 0x050, 0x060, 0x064,
  0x070, 0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0a4, 0x0ac, 0x0b0, 0x0b4, 0x0b8, 0x0bc, 0x0c0, 0x0fc, 0x100,
];
const access = fc.record({
  write: fc.boolean(),
  offset: fc.oneof(
    fc.constantFrom(...registerOffsets),
    fc.integer({ min: -8, max: 0x300 }),
    fc.constantFrom(Number.NaN, 2 ** 40, 1.5),
  ),
  width: fc.oneof(fc.constant(4), fc.constantFrom(1, 2, 3, 8, 0)),
  value: fc.oneof(
    fc.integer({ min: 0, max: 0x100 }),
    fc.constantFrom(0, 1, 2, 3, 0x0b, 0x0f, 0x8f, 0x4f, 0xffff_ffff, 2 ** 40, -1),
    fc.integer({ min: 0, max: 0xffff_ffff }),
    fc.integer({ min: BASE, max: BASE + 2 * SIZE }),
  ),
});

describe('fuzz: MmioTransport under random register accesses (with virtio-rng behind it)', () => {
  it('never throws, answers zero-extended values, and never writes outside the region', () => {
    const seen = { activations: 0, served: 0, faults: 0 };
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(access, { maxLength: 200 }),
        fc.uint8Array({ minLength: 0, maxLength: 1024 }),
        (initFirst, accesses, garbage) => {
          const device = new RngDevice({ queueSize: 64 });
          const driver = MockDriver.create(device, { size: SIZE, guardBytes: GUARD });
          const t = driver.transport;
          if (initFirst) {
            driver.init({ queueSizes: [16] });
            const q = driver.queue(0);
            for (let i = 0; i < 8; i += 1) q.add([{ length: 32 + i, writable: true }]);
            // Random bytes over the descriptor table (avail idx stays sane) or over everything.
            const at = garbage.length % 2 === 0 ? q.descTable - driver.memory.base : 0;
            driver.memory.bytes.set(garbage.subarray(0, at === 0 ? garbage.length : 16 * 16), at);
          }
          for (const a of accesses) {
            if (a.write) {
              t.write(a.offset, a.width, a.value);
            } else {
              const v = t.read(a.offset, a.width);
              expect(Number.isInteger(v)).toBe(true);
              expect(v).toBeGreaterThanOrEqual(0);
              expect(v).toBeLessThan(a.width >= 4 ? 2 ** 32 : 2 ** (8 * Math.max(a.width, 1)));
            }
            if (a.offset === R.MMIO_QUEUE_NOTIFY) t.queueNotify(a.value % 3);
          }
          t.queueNotify(0);
          expect(driver.guardsIntact()).toBe(true);
          const faults = Object.values(t.stats.faults).reduce((s, n) => s + (n ?? 0), 0);
          expect(faults).toBe(t.stats.guestFaults);
          seen.activations += t.stats.activations;
          seen.served += device.metrics.requests + device.metrics.invalidChains + device.metrics.noWritableBuffer;
          seen.faults += t.stats.guestFaults;
        },
      ),
      { numRuns: 400 },
    );
    expect(seen.activations).toBeGreaterThan(0);
    expect(seen.faults).toBeGreaterThan(0);
    expect(seen.served).toBeGreaterThan(0);
    console.info(`register fuzz: ${seen.activations} activations, ${seen.served} requests handled, ${seen.faults} faults`);
  });
});
