import { describe, expect, it, vi } from 'vitest';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../lib/virtio/descriptor-chain.js';
import type { DeviceActivation } from '../../../lib/virtio/device.js';
import { InvalidChainError, QueueConfigError, QueueCorruptError } from '../../../lib/virtio/errors.js';
import { GuestMemory } from '../../../lib/virtio/guest-memory.js';
import { silentLogger } from '../../../lib/virtio/logger.js';
import { SplitQueue, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY } from '../../../lib/virtio/split-queue.js';
import { takeChain } from '../../../lib/virtio/take-chain.js';
import { GuestAllocator, MockQueue } from '../../../lib/virtio/testing/mock-queue.js';

const BASE = 0x8000_0000;
const MIB = 1 << 20;

function setup(size = 8, options: { eventIdx?: boolean; indirect?: boolean; memory?: number } = {}) {
  const memory = new GuestMemory(BASE, new Uint8Array(options.memory ?? MIB));
  const allocator = new GuestAllocator(memory);
  const driver = new MockQueue(memory, allocator, size);
  const queue = new SplitQueue(memory, driver.config({ eventIdx: options.eventIdx, indirect: options.indirect }));
  return { memory, allocator, driver, queue };
}

function invalidChain(fn: () => unknown): InvalidChainError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidChainError);
    return err as InvalidChainError;
  }
  throw new Error('expected an InvalidChainError');
}

function corrupt(fn: () => unknown): QueueCorruptError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(QueueCorruptError);
    return err as QueueCorruptError;
  }
  throw new Error('expected a QueueCorruptError');
}

describe('SplitQueue construction (virtio 1.2 §2.7 alignment and size)', () => {
  const memory = new GuestMemory(BASE, new Uint8Array(64 * 1024));
  const good = { size: 16, descTable: BASE, availRing: BASE + 0x1000, usedRing: BASE + 0x2000 };

  it('accepts rings that are aligned and inside the region', () => {
    expect(new SplitQueue(memory, good).size).toBe(16);
    expect(new SplitQueue(memory, { ...good, size: 1 }).size).toBe(1);
  });

  it.each([0, 3, 12, 17, -4, 1.5, 65536])('refuses queue size %d', (size) => {
    expect(() => new SplitQueue(memory, { ...good, size })).toThrow(QueueConfigError);
  });

  it('refuses a size above the queue maximum', () => {
    expect(() => new SplitQueue(memory, { ...good, size: 32, maxSize: 16 })).toThrow(/power of two <= 16/);
  });

  it.each([
    ['descTable', BASE + 8, 'QUEUE_RING_MISALIGNED'],
    ['availRing', BASE + 0x1001, 'QUEUE_RING_MISALIGNED'],
    ['usedRing', BASE + 0x2002, 'QUEUE_RING_MISALIGNED'],
    ['descTable', BASE - 0x1000, 'QUEUE_RING_OUT_OF_RANGE'],
    ['availRing', BASE + 64 * 1024 - 16, 'QUEUE_RING_OUT_OF_RANGE'],
    ['usedRing', BASE + 64 * 1024 - 100, 'QUEUE_RING_OUT_OF_RANGE'],
    ['usedRing', Number.POSITIVE_INFINITY, 'QUEUE_RING_MISALIGNED'],
    ['descTable', 0, 'QUEUE_RING_OUT_OF_RANGE'],
  ] as const)('refuses %s at %d (%s)', (field, gpa, code) => {
    try {
      new SplitQueue(memory, { ...good, [field]: gpa });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(QueueConfigError);
      expect((err as QueueConfigError).code).toBe(code);
    }
  });
});

describe('SplitQueue.pop', () => {
  it('returns null while the driver has made nothing available', () => {
    const { queue } = setup();
    expect(queue.pop()).toBeNull();
    expect(queue.hasAvailable()).toBe(false);
  });

  it('returns a direct chain as zero-copy views, readable buffers before writable ones', () => {
    const { driver, queue } = setup();
    const head = driver.add([{ data: [1, 2, 3] }, { data: [4] }, { length: 5, writable: true }, { length: 7, writable: true }]);
    expect(queue.hasAvailable()).toBe(true);
    const chain = queue.pop();
    expect(chain).not.toBeNull();
    if (!chain) return;
    expect(chain.head).toBe(head);
    expect(chain.readable.map((b) => Array.from(b))).toEqual([[1, 2, 3], [4]]);
    expect(chain.writable.map((b) => b.length)).toEqual([5, 7]);
    expect(chain.readableLength).toBe(4);
    expect(chain.writableLength).toBe(12);
    chain.writable[1]?.fill(9);
    expect(Array.from(driver.buffers(head)[3] ?? [])).toEqual([9, 9, 9, 9, 9, 9, 9]);
    expect(queue.pop()).toBeNull();
  });

  it('returns chains in avail-ring order', () => {
    const { driver, queue } = setup();
    const heads = [driver.add([{ data: [1] }]), driver.add([{ data: [2] }]), driver.add([{ data: [3] }])];
    expect([queue.pop()?.head, queue.pop()?.head, queue.pop()?.head]).toEqual(heads);
  });

  it('follows an indirect table when VIRTIO_F_INDIRECT_DESC was negotiated', () => {
    const { driver, queue } = setup(8, { indirect: true });
    const head = driver.add([{ data: [7, 7] }, { length: 3, writable: true }, { length: 4, writable: true }], {
      indirect: true,
    });
    const chain = queue.pop();
    expect(chain?.head).toBe(head);
    expect(chain?.readable.map((b) => Array.from(b))).toEqual([[7, 7]]);
    expect(chain?.writableLength).toBe(7);
  });

  it('accepts a chain that uses every descriptor of the table', () => {
    const { driver, queue } = setup(4);
    driver.add([{ data: [1] }, { data: [2] }, { length: 1, writable: true }, { length: 1, writable: true }]);
    expect(queue.pop()?.readable.length).toBe(2);
  });

  it('accepts zero-length buffers inside the region', () => {
    const { driver, queue } = setup();
    driver.add([{ length: 0 }, { length: 0, writable: true }]);
    const chain = queue.pop();
    expect(chain?.readableLength).toBe(0);
    expect(chain?.writable.length).toBe(1);
  });

  it('accepts overlapping buffers (the spec does not forbid them; they stay inside the region)', () => {
    const { driver, queue } = setup();
    const buf = BASE + 0x8000;
    driver.writeDescriptor(0, { addr: buf, len: 64, flags: VIRTQ_DESC_F_NEXT, next: 1 });
    driver.writeDescriptor(1, { addr: buf + 32, len: 64, flags: VIRTQ_DESC_F_WRITE });
    driver.pushAvail(0);
    expect(queue.pop()?.writableLength).toBe(64);
  });

  it('wraps its free-running indices past 65535', () => {
    const { driver, queue } = setup(4);
    let returned = 0;
    for (let i = 0; i < 70_000; i += 1) {
      driver.add([{ length: 1, writable: true }]);
      const chain = queue.pop();
      if (!chain) throw new Error(`no chain at ${i}`);
      queue.addUsed(chain.head, 1);
      returned += driver.used().length;
    }
    expect(returned).toBe(70_000);
    expect(queue.nextAvail).toBe(70_000 & 0xffff);
    expect(queue.nextUsed).toBe(70_000 & 0xffff);
  });
});

describe('SplitQueue.pop with hostile descriptor chains: the chain is skipped, carrying its head', () => {
  const cases: [string, (d: MockQueue) => void, string, boolean?][] = [
    [
      'a buffer starting outside the region',
      (d) => d.writeDescriptor(0, { addr: BASE - 16, len: 8 }),
      'CHAIN_BUFFER_OUT_OF_RANGE',
    ],
    [
      'a buffer running past the end of the region',
      (d) => d.writeDescriptor(0, { addr: BASE + MIB - 4, len: 8 }),
      'CHAIN_BUFFER_OUT_OF_RANGE',
    ],
    [
      'a buffer whose 64-bit address is beyond 2^53',
      (d) => d.writeDescriptor(0, { addr: 0xffff_ffff_0000_0000n + BigInt(BASE), len: 8 }),
      'CHAIN_BUFFER_OUT_OF_RANGE',
    ],
    [
      'a length that wraps the address space',
      (d) => d.writeDescriptor(0, { addr: BASE + 16, len: 0xffff_fff0 }),
      'CHAIN_BUFFER_OUT_OF_RANGE',
    ],
    [
      'a zero-length buffer at an address outside the region',
      (d) => d.writeDescriptor(0, { addr: 0x10, len: 0 }),
      'CHAIN_BUFFER_OUT_OF_RANGE',
    ],
    [
      'a loop between two descriptors',
      (d) => {
        d.writeDescriptor(0, { addr: BASE + 0x8000, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 1 });
        d.writeDescriptor(1, { addr: BASE + 0x8000, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 0 });
      },
      'CHAIN_TOO_LONG',
    ],
    [
      'a descriptor pointing at itself',
      (d) => d.writeDescriptor(0, { addr: BASE + 0x8000, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 0 }),
      'CHAIN_TOO_LONG',
    ],
    [
      'a next index beyond the queue size',
      (d) => d.writeDescriptor(0, { addr: BASE + 0x8000, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 8 }),
      'CHAIN_NEXT_OUT_OF_RANGE',
    ],
    [
      'a readable descriptor after a writable one',
      (d) => {
        d.writeDescriptor(0, { addr: BASE + 0x8000, len: 8, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: 1 });
        d.writeDescriptor(1, { addr: BASE + 0x8000, len: 8 });
      },
      'CHAIN_READABLE_AFTER_WRITABLE',
    ],
    [
      'an indirect descriptor when INDIRECT_DESC was not negotiated',
      (d) => d.writeDescriptor(0, { addr: d.writeIndirectTable([{ addr: BASE, len: 8 }]), len: 16, flags: VIRTQ_DESC_F_INDIRECT }),
      'CHAIN_INDIRECT_NOT_NEGOTIATED',
      false,
    ],
    [
      'an indirect table inside an indirect table',
      (d) => {
        const inner = d.writeIndirectTable([{ addr: BASE, len: 8 }]);
        const outer = d.writeIndirectTable([{ addr: inner, len: 16, flags: VIRTQ_DESC_F_INDIRECT }]);
        d.writeDescriptor(0, { addr: outer, len: 16, flags: VIRTQ_DESC_F_INDIRECT });
      },
      'CHAIN_INDIRECT_NESTED',
    ],
    [
      'an indirect descriptor with NEXT set',
      (d) => {
        const table = d.writeIndirectTable([{ addr: BASE, len: 8 }]);
        d.writeDescriptor(0, { addr: table, len: 16, flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, next: 1 });
      },
      'CHAIN_INDIRECT_WITH_NEXT',
    ],
    [
      'an indirect table whose length is not a multiple of 16',
      (d) => d.writeDescriptor(0, { addr: d.writeIndirectTable([{ addr: BASE, len: 8 }]), len: 20, flags: VIRTQ_DESC_F_INDIRECT }),
      'CHAIN_INDIRECT_BAD_LENGTH',
    ],
    [
      'an empty indirect table',
      (d) => d.writeDescriptor(0, { addr: d.writeIndirectTable([]), len: 0, flags: VIRTQ_DESC_F_INDIRECT }),
      'CHAIN_INDIRECT_BAD_LENGTH',
    ],
    [
      'an indirect table with more than 65535 entries',
      (d) => d.writeDescriptor(0, { addr: BASE, len: 16 * 65536, flags: VIRTQ_DESC_F_INDIRECT }),
      'CHAIN_INDIRECT_BAD_LENGTH',
    ],
    [
      'an indirect table outside the region',
      (d) => d.writeDescriptor(0, { addr: BASE + MIB - 16, len: 32, flags: VIRTQ_DESC_F_INDIRECT }),
      'CHAIN_INDIRECT_OUT_OF_RANGE',
    ],
    [
      'a loop inside an indirect table',
      (d) => {
        const table = d.writeIndirectTable([
          { addr: BASE + 0x8000, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 1 },
          { addr: BASE + 0x8000, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 0 },
        ]);
        d.writeDescriptor(0, { addr: table, len: 32, flags: VIRTQ_DESC_F_INDIRECT });
      },
      'CHAIN_TOO_LONG',
    ],
    [
      'a next index beyond the indirect table',
      (d) => {
        const table = d.writeIndirectTable([{ addr: BASE + 0x8000, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 1 }]);
        d.writeDescriptor(0, { addr: table, len: 16, flags: VIRTQ_DESC_F_INDIRECT });
      },
      'CHAIN_NEXT_OUT_OF_RANGE',
    ],
    [
      'an indirect table longer than the queue (a chain is at most queue-size long, tables included)',
      (d) => {
        const raws = Array.from({ length: 9 }, (_, i) => ({ addr: BASE, len: 1, flags: i < 8 ? VIRTQ_DESC_F_NEXT : 0, next: i + 1 }));
        d.writeDescriptor(0, { addr: d.writeIndirectTable(raws), len: 16 * raws.length, flags: VIRTQ_DESC_F_INDIRECT });
      },
      'CHAIN_TOO_LONG',
    ],
    [
      'direct and indirect descriptors adding up to more than the queue size',
      (d) => {
        const raws = Array.from({ length: 8 }, (_, i) => ({ addr: BASE, len: 1, flags: i < 7 ? VIRTQ_DESC_F_NEXT : 0, next: i + 1 }));
        d.writeDescriptor(0, { addr: BASE + 0x8000, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 1 });
        d.writeDescriptor(1, { addr: d.writeIndirectTable(raws), len: 16 * raws.length, flags: VIRTQ_DESC_F_INDIRECT });
      },
      'CHAIN_TOO_LONG',
    ],
  ];

  it('accepts an indirect table of exactly the queue size', () => {
    const { driver, queue } = setup(8, { indirect: true });
    const raws = Array.from({ length: 8 }, (_, i) => ({ addr: BASE, len: 1, flags: i < 7 ? VIRTQ_DESC_F_NEXT : 0, next: i + 1 }));
    driver.writeDescriptor(0, { addr: driver.writeIndirectTable(raws), len: 16 * raws.length, flags: VIRTQ_DESC_F_INDIRECT });
    driver.pushAvail(0);
    expect(queue.pop()?.readable).toHaveLength(8);
  });

  it('refuses buffers whose lengths add up to more than 2^32-1 bytes', () => {
    // 4097 descriptors each covering the whole 1 MiB region, in a queue large enough to hold them.
    const { driver, queue } = setup(8192, { indirect: true, memory: MIB });
    const raws = Array.from({ length: 4097 }, (_, i) => ({
      addr: BASE,
      len: MIB,
      flags: VIRTQ_DESC_F_WRITE | (i < 4096 ? VIRTQ_DESC_F_NEXT : 0),
      next: i + 1,
    }));
    driver.writeDescriptor(0, { addr: driver.writeIndirectTable(raws), len: 16 * raws.length, flags: VIRTQ_DESC_F_INDIRECT });
    driver.pushAvail(0);
    expect(invalidChain(() => queue.pop()).code).toBe('CHAIN_TOTAL_LENGTH_OVERFLOW');
  });

  it.each(cases)('refuses %s', (_name, write, code, indirect = true) => {
    const { driver, queue } = setup(8, { indirect });
    write(driver);
    driver.pushAvail(0);
    const err = invalidChain(() => queue.pop());
    expect(err.code).toBe(code);
    expect(err.head).toBe(0);
    // The queue only reports it (what to do is take-chain.ts's policy); its state stays sound.
    queue.addUsed(err.head, 0);
    expect(driver.used()).toEqual([{ id: 0, len: 0 }]);
    const next = driver.add([{ length: 4, writable: true }]);
    expect(queue.pop()?.head).toBe(next);
  });
});

describe('SplitQueue.pop with a corrupt ring: nothing after it can be trusted', () => {
  it('reports an avail idx that moved by more than the queue size', () => {
    const { driver, queue } = setup(8);
    driver.setAvailIdx(9);
    expect(corrupt(() => queue.pop()).code).toBe('QUEUE_AVAIL_IDX_JUMP');
    expect(queue.hasAvailable()).toBe(true); // so the next pop reports it again
  });

  it('reports an avail idx that moved backwards', () => {
    const { driver, queue } = setup(8);
    driver.add([{ length: 1, writable: true }]);
    queue.pop();
    driver.setAvailIdx(0);
    expect(corrupt(() => queue.pop()).code).toBe('QUEUE_AVAIL_IDX_JUMP');
  });

  it('reports a head index beyond the queue size', () => {
    const { driver, queue } = setup(8);
    driver.pushAvail(8);
    expect(corrupt(() => queue.pop()).code).toBe('QUEUE_HEAD_OUT_OF_RANGE');
  });
});

describe('SplitQueue.addUsed', () => {
  it('publishes the element, then the used idx', () => {
    const { driver, queue } = setup();
    const a = driver.add([{ length: 8, writable: true }]);
    const b = driver.add([{ length: 8, writable: true }]);
    queue.pop();
    queue.pop();
    queue.addUsed(b, 3);
    expect(driver.usedIdx()).toBe(1);
    queue.addUsed(a, 8);
    expect(driver.used()).toEqual([
      { id: b, len: 3 },
      { id: a, len: 8 },
    ]);
  });

  it('throws on a head that cannot be a descriptor index (a device bug, not a guest fault)', () => {
    const { queue } = setup();
    expect(() => queue.addUsed(8, 0)).toThrow(RangeError);
    expect(() => queue.addUsed(-1, 0)).toThrow(RangeError);
  });

  it('does nothing once the queue is closed, and pop returns null', () => {
    const { driver, queue } = setup();
    driver.add([{ length: 1, writable: true }]);
    queue.close();
    expect(queue.closed).toBe(true);
    expect(queue.pop()).toBeNull();
    queue.addUsed(0, 1);
    expect(driver.usedIdx()).toBe(0);
    expect(queue.needsNotification()).toBe(false);
    expect(queue.enableNotification()).toBe(false);
  });
});

describe('interrupt suppression without EVENT_IDX (VIRTQ_AVAIL_F_NO_INTERRUPT, §2.7.7)', () => {
  it('asks for an interrupt after new used entries only', () => {
    const { driver, queue } = setup();
    expect(queue.needsNotification()).toBe(false); // nothing used yet
    driver.add([{ length: 1, writable: true }]);
    queue.addUsed(queue.pop()?.head ?? 0, 1);
    expect(queue.needsNotification()).toBe(true);
    expect(queue.needsNotification()).toBe(false);
  });

  it('asks for none while the driver sets NO_INTERRUPT', () => {
    const { driver, queue } = setup();
    driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
    driver.add([{ length: 1, writable: true }]);
    queue.addUsed(queue.pop()?.head ?? 0, 1);
    expect(queue.needsNotification()).toBe(false);
  });

  it('sets and clears VIRTQ_USED_F_NO_NOTIFY around a drain', () => {
    const { driver, queue } = setup();
    queue.disableNotification();
    expect(driver.usedFlags()).toBe(VIRTQ_USED_F_NO_NOTIFY);
    expect(queue.enableNotification()).toBe(false);
    expect(driver.usedFlags()).toBe(0);
  });
});

describe('interrupt suppression with EVENT_IDX (§2.7.10)', () => {
  function used(driver: MockQueue, queue: SplitQueue, n: number) {
    for (let i = 0; i < n; i += 1) {
      driver.add([{ length: 1, writable: true }]);
      queue.addUsed(queue.pop()?.head ?? 0, 1);
    }
    driver.used();
  }

  it('interrupts only when the used idx passes used_event', () => {
    const { driver, queue } = setup(8, { eventIdx: true });
    expect(queue.needsNotification()).toBe(false); // nothing used yet
    used(driver, queue, 1); // used idx 1: entry 0 used, and used_event is 0 (the zeroed ring)
    expect(queue.needsNotification()).toBe(true);
    driver.setUsedEvent(2); // "interrupt me when entry 2 has been used", i.e. used idx goes past 2
    used(driver, queue, 1); // used idx 2: entry 1 used, event 2 not passed
    expect(queue.needsNotification()).toBe(false);
    used(driver, queue, 1); // used idx 3: entry 2 used
    expect(queue.needsNotification()).toBe(true);
    used(driver, queue, 2);
    expect(queue.needsNotification()).toBe(false); // event 2 already behind
  });

  it('interrupts once for a batch that crosses used_event', () => {
    const { driver, queue } = setup(8, { eventIdx: true });
    driver.setUsedEvent(4);
    used(driver, queue, 6);
    expect(queue.needsNotification()).toBe(true);
    expect(queue.needsNotification()).toBe(false);
  });

  it('ignores VIRTQ_AVAIL_F_NO_INTERRUPT', () => {
    const { driver, queue } = setup(8, { eventIdx: true });
    driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
    driver.setUsedEvent(0);
    used(driver, queue, 1);
    expect(queue.needsNotification()).toBe(true);
  });

  it('publishes avail_event when notifications are re-enabled, and reports buffers that raced in', () => {
    const { driver, queue } = setup(8, { eventIdx: true });
    driver.add([{ length: 1, writable: true }]);
    driver.add([{ length: 1, writable: true }]);
    queue.pop();
    expect(queue.enableNotification()).toBe(true);
    expect(driver.availEvent()).toBe(1);
    queue.pop();
    expect(queue.enableNotification()).toBe(false);
    expect(driver.availEvent()).toBe(2);
    queue.disableNotification(); // a no-op with EVENT_IDX
    expect(driver.usedFlags()).toBe(0);
  });
});

describe('takeChain (the shared device loop body)', () => {
  function activation(): DeviceActivation & { failures: string[]; ringFaults: string[] } {
    const failures: string[] = [];
    const ringFaults: string[] = [];
    return {
      failures,
      ringFaults,
      memory: new GuestMemory(0, new Uint8Array(8)),
      queues: [],
      features: 0n,
      notifyUsed: () => {},
      configChanged: () => {},
      fail: (reason: string) => {
        failures.push(reason);
      },
      ringFault: (code) => {
        ringFaults.push(code);
      },
      log: silentLogger,
    };
  }

  it('returns the next chain as it is', () => {
    const { driver, queue } = setup();
    const head = driver.add([{ length: 2, writable: true }]);
    const act = activation();
    expect(takeChain(queue, 0, act, { invalidChains: 0 })?.head).toBe(head);
    expect(takeChain(queue, 0, act, { invalidChains: 0 })).toBeNull();
    expect(act.failures).toEqual([]);
  });

  it('treats a malformed chain as corrupt rings (as QEMU): counted by code, the device failed, the queue closed, nothing returned', () => {
    const { driver, queue } = setup();
    driver.writeDescriptor(7, { addr: 0, len: 8 }); // the mock hands out 7 last
    driver.pushAvail(7);
    driver.add([{ length: 2, writable: true }]);
    const counters = { invalidChains: 0 };
    const act = activation();
    expect(takeChain(queue, 0, act, counters)).toBeNull();
    expect(counters.invalidChains).toBe(1);
    expect(act.ringFaults).toEqual(['CHAIN_BUFFER_OUT_OF_RANGE']);
    expect(act.failures).toHaveLength(1);
    expect(act.failures[0]).toMatch(/malformed descriptor chain/);
    expect(queue.closed).toBe(true);
    expect(driver.used()).toEqual([]); // no used entry: the driver must reset
    expect(takeChain(queue, 0, act, counters)).toBeNull(); // the good chain behind it is not served
  });

  it('fails the activation on a corrupt ring (avail idx jump), counted by code, and returns null', () => {
    const { driver, queue } = setup();
    driver.setAvailIdx(100);
    const act = activation();
    expect(takeChain(queue, 0, act, { invalidChains: 0 })).toBeNull();
    expect(act.failures).toHaveLength(1);
    expect(act.ringFaults).toEqual(['QUEUE_AVAIL_IDX_JUMP']);
  });
});
