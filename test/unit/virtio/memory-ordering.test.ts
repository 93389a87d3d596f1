// The split queue's memory-ordering contract (see the banner of lib/virtio/split-queue.ts):
// ring indices go through Atomics (ldar/stlr on arm64, mov/xchg on x86_64), everything
// else through plain accesses placed on the right side of them.

import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GuestMemory } from '../../../lib/virtio/guest-memory.js';
import { SplitQueue } from '../../../lib/virtio/split-queue.js';
import { GuestAllocator, MockQueue } from '../../../lib/virtio/testing/mock-queue.js';

const BASE = 0x4000_0000;

type Event = [op: string, index: number];

function traced(): { queue: SplitQueue; driver: MockQueue; memory: GuestMemory; events: Event[]; start(): void } {
  const memory = new GuestMemory(BASE, new Uint8Array(64 * 1024));
  const driver = new MockQueue(memory, new GuestAllocator(memory), 8);
  const queue = new SplitQueue(memory, driver.config({ eventIdx: true }));
  const events: Event[] = [];
  const start = () => {
    const load = Atomics.load.bind(Atomics);
    const store = Atomics.store.bind(Atomics);
    vi.spyOn(Atomics, 'load').mockImplementation(((a: Uint16Array, i: number) => {
      if (a === memory.u16) events.push(['atomic-load', i]);
      return load(a, i);
    }) as typeof Atomics.load);
    vi.spyOn(Atomics, 'store').mockImplementation(((a: Uint16Array, i: number, v: number) => {
      if (a === memory.u16) events.push(['atomic-store', i]);
      return store(a, i, v);
    }) as typeof Atomics.store);
    for (const name of ['getUint16', 'getUint32', 'setUint32'] as const) {
      const original = DataView.prototype[name] as unknown as (...args: number[]) => number | undefined;
      vi.spyOn(DataView.prototype, name).mockImplementation(function (this: DataView, ...args: number[]) {
        if (this === memory.view) events.push([`plain-${name}`, args[0] ?? -1]);
        return original.apply(this, args);
      } as never);
    }
  };
  return { queue, driver, memory, events, start };
}

describe('split queue memory ordering', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('loads the avail idx with Atomics before reading the ring entry and the descriptors (acquire)', () => {
    const { queue, driver, events, start } = traced();
    driver.add([{ data: [1, 2] }, { length: 4, writable: true }]);
    start();
    queue.pop();
    const availIdxCell = (driver.availRing + 2 - BASE) / 2;
    expect(events[0]).toEqual(['atomic-load', availIdxCell]);
    expect(events.slice(1).every(([op]) => op.startsWith('plain-'))).toBe(true);
    expect(events.length).toBeGreaterThan(3);
  });

  it('writes the used element with plain stores, then stores the used idx with Atomics (release)', () => {
    const { queue, driver, events, start } = traced();
    driver.add([{ length: 4, writable: true }]);
    const chain = queue.pop();
    start();
    queue.addUsed(chain?.head ?? 0, 4);
    const usedIdxCell = (driver.usedRing + 2 - BASE) / 2;
    expect(events).toEqual([
      ['plain-setUint32', driver.usedRing + 4 - BASE],
      ['plain-setUint32', driver.usedRing + 8 - BASE],
      ['atomic-store', usedIdxCell],
    ]);
  });

  it('reads used_event with Atomics after the used idx store, a seq-cst store/load pair (full barrier)', () => {
    const { queue, driver, events, start } = traced();
    driver.add([{ length: 4, writable: true }]);
    const chain = queue.pop();
    start();
    queue.addUsed(chain?.head ?? 0, 4);
    queue.needsNotification();
    const usedEventCell = (driver.availRing + 4 + 2 * 8 - BASE) / 2;
    expect(events.at(-2)?.[0]).toBe('atomic-store');
    expect(events.at(-1)).toEqual(['atomic-load', usedEventCell]);
  });

  it('stores avail_event with Atomics before re-loading the avail idx with Atomics', () => {
    const { queue, driver, events, start } = traced();
    start();
    queue.enableNotification();
    expect(events).toEqual([
      ['atomic-store', (driver.usedRing + 4 + 8 * 8 - BASE) / 2],
      ['atomic-load', (driver.availRing + 2 - BASE) / 2],
    ]);
  });

  it('never shows a consumer a half-published chain while a producer thread publishes concurrently', async () => {
    const size = 8;
    const total = 20_000;
    const sab = new SharedArrayBuffer(64 * 1024);
    const memory = new GuestMemory(BASE, new Uint8Array(sab));
    const layout = { desc: 0, avail: 0x100, used: 0x200, buffers: 0x1000, stride: 256 };
    const queue = new SplitQueue(memory, {
      size,
      descTable: BASE + layout.desc,
      availRing: BASE + layout.avail,
      usedRing: BASE + layout.used,
    });
    // The producer is the frontend driver: fill a buffer, write its descriptor and avail entry
    // with plain stores, publish with Atomics.store (its virtio_wmb + idx write).
    const producer = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { sab, size, total, base, layout } = workerData;
      const bytes = new Uint8Array(sab);
      const view = new DataView(sab);
      const cells = new Uint16Array(sab);
      const availIdxCell = (layout.avail + 2) / 2;
      const usedIdxCell = (layout.used + 2) / 2;
      let bad = 0;
      let seen = 0;
      for (let seq = 0; seq < total; seq++) {
        while (((seq - Atomics.load(cells, usedIdxCell)) & 0xffff) >= size) {}
        // check used elements the consumer published, in order
        const usedIdx = Atomics.load(cells, usedIdxCell);
        while (seen !== usedIdx) {
          const at = layout.used + 4 + 8 * (seen % size);
          if (view.getUint32(at + 4, true) !== (seen & 0xffff) + 1) bad++;
          if (view.getUint32(at, true) !== (seen % size)) bad++;
          seen = (seen + 1) & 0xffff;
        }
        const d = seq % size;
        const addr = layout.buffers + d * layout.stride;
        const len = 8 + (seq % 200);
        bytes.fill(seq & 0xff, addr, addr + len);
        view.setUint32(addr, seq, true);
        view.setBigUint64(layout.desc + 16 * d, BigInt(base + addr), true);
        view.setUint32(layout.desc + 16 * d + 8, len, true);
        view.setUint16(layout.desc + 16 * d + 12, 0, true);
        view.setUint16(layout.avail + 4 + 2 * (seq % size), d, true);
        Atomics.store(cells, availIdxCell, (seq + 1) & 0xffff);
      }
      parentPort.postMessage({ bad });
    `;
    const worker = new Worker(producer, { eval: true, workerData: { sab, size, total, base: BASE, layout } });
    const result = new Promise<{ bad: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    let torn = 0;
    const deadline = Date.now() + 30_000;
    for (let seq = 0; seq < total; ) {
      const chain = queue.pop();
      if (!chain) {
        if (Date.now() > deadline) throw new Error(`consumer starved at ${seq}`);
        continue;
      }
      const buffer = chain.readable[0];
      const len = 8 + (seq % 200);
      if (!buffer || buffer.length !== len || chain.readableLength !== len) torn += 1;
      else {
        const dv = new DataView(buffer.buffer, buffer.byteOffset, buffer.length);
        if (dv.getUint32(0, true) !== seq) torn += 1;
        for (let i = 4; i < len; i += 1) if (buffer[i] !== (seq & 0xff)) torn += 1;
      }
      queue.addUsed(chain.head, (seq & 0xffff) + 1);
      seq += 1;
    }
    const { bad } = await result;
    await worker.terminate();
    expect(torn).toBe(0);
    expect(bad).toBe(0);
  }, 40_000);

  // What the claim in split-queue.ts rests on, checked on this host's V8.
  it('compiles Atomics.store to a full-barrier store and Atomics.load to an acquire load on this host', (ctx) => {
    const expected: Record<string, { store: RegExp; load: RegExp }> = {
      x64: { store: /xchgw/, load: /movzxwl/ },
      arm64: { store: /stlrh/, load: /ldarh/ },
    };
    const want = expected[process.arch];
    if (!want) {
      console.warn(`skipped: no expectation for ${process.arch}`);
      ctx.skip();
      return;
    }
    const disassemble = (builtin: string) =>
      spawnSync(process.execPath, ['--print-builtin-code', `--print-builtin-code-filter=${builtin}`, '-e', '0'], {
        encoding: 'utf8',
        timeout: 20_000,
      }).stdout ?? '';
    const store = disassemble('AtomicsStore');
    const load = disassemble('AtomicsLoad');
    if (!/^0x/m.test(store) || !/^0x/m.test(load)) {
      console.warn('skipped: this node binary cannot disassemble its builtins (--print-builtin-code printed nothing)');
      ctx.skip();
      return;
    }
    expect(store).toMatch(want.store);
    expect(load).toMatch(want.load);
  }, 30_000);
});
