// QueueWorker specified: what one notification may cost, how it yields and continues, how
// admission (rate limits, nothing to do) gates taking chains, asynchronous completions, corrupt
// rings, device bugs, and stop() waiting for in-flight work.

import { describe, expect, it } from 'vitest';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../lib/virtio/descriptor-chain.js';
import type { DeviceActivation } from '../../../lib/virtio/device.js';
import { GuestMemory } from '../../../lib/virtio/guest-memory.js';
import { silentLogger } from '../../../lib/virtio/logger.js';
import { LATER, QueueWorker, eventLoopScheduler, type ChainHandler, type LaterToken, type QueueWorkerOptions, type WorkerScheduler } from '../../../lib/virtio/queue-worker.js';
import { SplitQueue } from '../../../lib/virtio/split-queue.js';
import { ManualScheduler } from '../../../lib/virtio/testing/manual-scheduler.js';
import { GuestAllocator, MockQueue } from '../../../lib/virtio/testing/mock-queue.js';

const BASE = 0x4000_0000;

function rig(size = 64, handler: ChainHandler = { handle: () => 0 }, extra: Partial<QueueWorkerOptions> & { indirect?: boolean } = {}) {
  const memory = new GuestMemory(BASE, new Uint8Array(1 << 20));
  const driver = new MockQueue(memory, new GuestAllocator(memory), size);
  const queue = new SplitQueue(memory, driver.config({ indirect: extra.indirect ?? false }));
  const interrupts: number[] = [];
  const failures: string[] = [];
  const ringFaults: string[] = [];
  const activation: DeviceActivation = {
    memory,
    queues: [queue],
    features: 0n,
    notifyUsed: (q) => void interrupts.push(q),
    configChanged: () => {},
    fail: (reason) => {
      failures.push(reason);
      queue.close();
    },
    ringFault: (code) => void ringFaults.push(code),
    log: silentLogger,
  };
  const counters = { invalidChains: 0, queueYields: 0, rateLimitWaits: 0 };
  const scheduler = new ManualScheduler();
  const worker = new QueueWorker({ queue, queueIndex: 0, activation, handler, counters, scheduler, ...extra });
  const post = (n: number, length = 1) => {
    for (let i = 0; i < n; i += 1) driver.add([{ length, writable: true }]);
  };
  return { memory, driver, queue, worker, interrupts, failures, ringFaults, counters, scheduler, post };
}

/** A rig whose handler defers every chain; `tokens` holds what defer() gave, in take order. */
function deferringRig(size: number, extra: Partial<QueueWorkerOptions> = {}) {
  const tokens: LaterToken[] = [];
  const r: ReturnType<typeof rig> = rig(size, {
    handle: () => {
      tokens.push(r.worker.defer());
      return LATER;
    },
  }, extra);
  return { r, tokens };
}

describe('QueueWorker: bounded work per notification', () => {
  it('serves everything available in one run when it fits the budget, with one interrupt, and re-arms', () => {
    const r = rig(64);
    r.post(10);
    r.worker.kick();
    expect(r.driver.used()).toHaveLength(10);
    expect(r.interrupts).toEqual([0]);
    expect(r.driver.usedFlags()).toBe(0); // notifications enabled again
    expect(r.scheduler.pendingYields).toBe(0);
  });

  it('serves at most 64 chains per run by default, then yields to the event loop and continues', () => {
    const r = rig(256);
    r.post(200);
    r.worker.kick();
    expect(r.driver.used()).toHaveLength(64);
    expect(r.driver.usedFlags()).toBe(1); // no kicks needed meanwhile: the worker comes back
    expect(r.scheduler.turn()).toBe(1);
    expect(r.driver.used()).toHaveLength(64);
    r.scheduler.settle();
    expect(r.driver.used()).toHaveLength(72);
    expect(r.counters.queueYields).toBe(3);
    expect(r.interrupts).toHaveLength(4); // one per run
  });

  it('never takes more chains per run than the queue holds, even from a driver that refills as it goes', () => {
    let r: ReturnType<typeof rig>;
    let handled = 0;
    r = rig(4, {
      handle: () => {
        handled += 1;
        r.driver.used();
        r.post(1);
        return 0;
      },
    }, { budget: { chains: 1000 } });
    r.post(3);
    r.worker.kick();
    expect(handled).toBe(4);
    expect(r.scheduler.pendingYields).toBe(1);
  });

  it('stops on its descriptor budget too: long chains make shorter runs', () => {
    const seen: number[] = [];
    const r = rig(64, { handle: (c) => (seen.push(c.writable.length), 0) }, { budget: { descriptors: 16 } });
    for (let i = 0; i < 6; i += 1) r.driver.add(Array.from({ length: 8 }, () => ({ length: 1, writable: true })));
    r.worker.kick();
    expect(seen).toEqual([8, 8]);
    r.scheduler.settle();
    expect(seen).toHaveLength(6);
  });

  it('stops on its byte budget too: readable bytes plus what handle() wrote', () => {
    const r = rig(64, { handle: (c) => c.writableLength }, { budget: { bytes: 1000 } });
    r.post(10, 300);
    r.worker.kick();
    expect(r.driver.used()).toHaveLength(4); // 4 x 300 crosses 1000 on the fourth
    r.scheduler.settle();
    expect(r.driver.used()).toHaveLength(6);
  });

  it('stops on its time budget too: chains dearer than their counts say make shorter runs', () => {
    // Each chain costs 0.3 ms of the clock. The clock starts at the fourth chain (1.2 ms) and
    // is looked at every fourth after it: at the eighth, 2.4 ms >= 1.2 + 1, so the run yields.
    let clock: ManualScheduler | undefined;
    const r = rig(64, { handle: () => ((clock!.time += 0.3), 0) });
    clock = r.scheduler;
    r.post(40);
    r.worker.kick();
    expect(r.driver.used()).toHaveLength(8);
    expect(r.counters.queueYields).toBe(1);
    r.scheduler.turn(); // the continuation: the same bound again
    expect(r.driver.used()).toHaveLength(8);
    r.scheduler.settle();
    expect(r.driver.used()).toHaveLength(24);
  });

  it('a run of fewer than four chains never reads the clock, and timeMs Infinity never does', () => {
    let reads = 0;
    const counting = (): WorkerScheduler => {
      const base = new ManualScheduler();
      return { yield: (fn) => base.yield(fn), after: (fn, ms) => base.after(fn, ms), now: () => ((reads += 1), base.time) };
    };
    const short = rig(64, { handle: () => 0 }, { scheduler: counting() });
    short.post(3);
    short.worker.kick();
    expect(short.driver.used()).toHaveLength(3);
    expect(reads).toBe(0);

    const long = rig(256, { handle: () => 0 }, { scheduler: counting(), budget: { timeMs: Infinity } });
    long.post(200);
    long.worker.kick();
    expect(long.driver.used()).toHaveLength(64);
    expect(reads).toBe(0);
  });

  it('does not let kicks skip ahead of the yield: a kick while a continuation is due does nothing', () => {
    let handled = 0;
    const r = rig(64, { handle: () => (handled += 1, 0) }, { budget: { chains: 2 } });
    r.post(6);
    r.worker.kick();
    for (let i = 0; i < 100; i += 1) r.worker.kick();
    expect(handled).toBe(2);
  });

  it('with the event-loop scheduler, lets other work run between its runs (a flood does not hold the loop)', async () => {
    const r = rig(256, undefined, { scheduler: eventLoopScheduler, budget: { chains: 8 } });
    r.post(256);
    const order: string[] = [];
    const other = new Promise<void>((resolve) =>
      setImmediate(() => {
        order.push(`other device served after ${r.worker.stats.chains} chains`);
        resolve();
      }),
    );
    r.worker.kick();
    await other;
    for (let turns = 0; r.worker.stats.chains < 256 && turns < 1000; turns += 1) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(order).toEqual(['other device served after 8 chains']);
    expect(r.failures).toEqual([]);
    expect(r.worker.stats.chains).toBe(256);
  });

  it('re-checks after re-arming, so buffers posted as the queue drained are not left waiting', () => {
    let r: ReturnType<typeof rig>;
    let once = true;
    r = rig(64, {
      handle: () => {
        if (once) {
          once = false;
          r.post(1); // the driver adds one while the device works
        }
        return 0;
      },
    });
    r.post(1);
    r.worker.kick();
    expect(r.driver.used()).toHaveLength(2);
  });
});

describe('QueueWorker: work on other queues before the interrupt', () => {
  it('calls beforeInterrupt after a run that served chains, before that run raises its interrupt', () => {
    const events: string[] = [];
    const r = rig(64, { handle: () => 0 }, { beforeInterrupt: () => void events.push(`before, interrupts so far ${r.interrupts.length}`) });
    r.post(3);
    r.worker.kick();
    expect(events).toEqual(['before, interrupts so far 0']);
    expect(r.interrupts).toEqual([0]);
  });

  it('does not call it for a run that found nothing, nor after the device failed', () => {
    let calls = 0;
    const r = rig(64, { handle: () => { throw new Error('device bug'); } }, { beforeInterrupt: () => void (calls += 1) });
    r.worker.kick(); // nothing available
    expect(calls).toBe(0);
    r.post(1);
    r.worker.kick();
    expect(r.failures).toEqual(['device queue handler threw']);
    expect(calls).toBe(0);
  });

  it('once per run, at each budget yield too (each run raises its own interrupt)', () => {
    let calls = 0;
    const r = rig(256, { handle: () => 0 }, { beforeInterrupt: () => void (calls += 1) });
    r.post(100);
    r.worker.kick();
    expect(calls).toBe(1);
    r.scheduler.turn();
    expect(calls).toBe(2);
    expect(r.interrupts).toEqual([0, 0]);
  });
});

describe('QueueWorker: admission', () => {
  it("'idle' ends the run without taking a chain; kick() resumes", () => {
    let input = 0;
    const r = rig(64, { admit: () => (input > 0 ? 'now' : 'idle'), handle: () => ((input -= 1), 1) });
    r.post(3);
    r.worker.kick();
    expect(r.driver.used()).toEqual([]);
    input = 2;
    r.worker.kick();
    expect(r.driver.used().map((u) => u.len)).toEqual([1, 1]);
  });

  it('a wait in ms ends the run and the worker wakes itself then (rate limits); kicks meanwhile do not bypass it', () => {
    let tokens = 1;
    const r = rig(64, { admit: () => (tokens > 0 ? 'now' : 5), handle: () => ((tokens -= 1), 0) });
    r.post(3);
    r.worker.kick();
    expect(r.driver.used()).toHaveLength(1);
    expect(r.counters.rateLimitWaits).toBe(1);
    tokens = 1;
    r.worker.kick();
    expect(r.driver.used()).toHaveLength(0);
    r.scheduler.advance(5);
    expect(r.driver.used()).toHaveLength(1);
  });

  it('does not arm a wake-up when there is nothing to take anyway', () => {
    const r = rig(64, { admit: () => 5, handle: () => 0 });
    r.worker.kick();
    expect(r.scheduler.pendingTimers).toBe(0);
  });
});

describe('QueueWorker: asynchronous completion and stop()', () => {
  it('completes a chain when its Promise settles, batching the interrupt per microtask', async () => {
    const settle: ((n: number) => void)[] = [];
    const r = rig(64, { handle: () => new Promise<number>((resolve) => settle.push(resolve)) });
    r.post(3);
    r.worker.kick();
    expect(r.worker.inFlight).toBe(3);
    expect(r.driver.used()).toEqual([]);
    settle[2]!(7);
    settle[0]!(5);
    await Promise.resolve();
    await Promise.resolve();
    expect(r.driver.used().map((u) => u.len)).toEqual([7, 5]); // completion order, not take order
    expect(r.interrupts).toEqual([0]);
    settle[1]!(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(r.worker.inFlight).toBe(0);
  });

  it('inOrder: publishes in take order, an early completion (or a synchronous one) waiting for those taken before it', async () => {
    const settle: ((n: number) => void)[] = [];
    let n = 0;
    const r = rig(64, { handle: () => (n++ === 2 ? 9 : new Promise<number>((resolve) => settle.push(resolve))) }, { inOrder: true });
    r.post(4); // chain 2 completes at once, the others later
    r.worker.kick();
    const ids = r.driver.used().map((u) => u.id);
    expect(ids).toEqual([]); // chain 2 waits behind 0 and 1
    settle[1]!(7);
    settle[2]!(8); // chain 3
    await new Promise((resolve) => setImmediate(resolve));
    expect(r.driver.used()).toEqual([]); // 0 still in flight: nothing published
    expect(r.driver.usedIdx()).toBe(0);
    settle[0]!(5);
    await new Promise((resolve) => setImmediate(resolve));
    expect(r.driver.used().map((u) => u.len)).toEqual([5, 7, 9, 8]);
    expect(r.interrupts).toEqual([0]);
    // Empty again: a synchronous completion is published at once.
    n = 2;
    r.post(1);
    r.worker.kick();
    expect(r.driver.used().map((u) => u.len)).toEqual([9]);
  });

  it('inOrder: what was taken and not published is exactly the avail entries from the used index on', async () => {
    const settle = new Map<number, (n: number) => void>();
    const r = rig(16, { handle: (chain) => new Promise<number>((resolve) => settle.set(chain.head, resolve)) }, { inOrder: true });
    r.post(6);
    r.worker.kick();
    const heads = [...settle.keys()];
    for (const h of [heads[3]!, heads[0]!, heads[5]!, heads[1]!]) settle.get(h)!(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(r.driver.used().map((u) => u.id)).toEqual([heads[0], heads[1]]);
    expect(r.driver.usedIdx()).toBe(2); // a successor takes avail[2..6) again: heads 2..5
  });

  it('stop() returns undefined when nothing is in flight', () => {
    const r = rig();
    r.post(2);
    r.worker.kick();
    expect(r.worker.stop()).toBeUndefined();
  });

  it('stop() takes no more chains, aborts the signal, and settles only once in-flight chains have', async () => {
    const settle: ((n: number) => void)[] = [];
    const signals: AbortSignal[] = [];
    let r: ReturnType<typeof rig>;
    r = rig(64, {
      handle: () => {
        signals.push(r.worker.signal);
        return new Promise<number>((resolve) => settle.push(resolve));
      },
    });
    r.post(2);
    r.worker.kick();
    const stopped = r.worker.stop();
    expect(stopped).toBeInstanceOf(Promise);
    expect(signals[0]!.aborted).toBe(true);
    let done = false;
    void stopped!.then(() => {
      done = true;
    });
    settle[0]!(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toBe(false);
    settle[1]!(1);
    await stopped;
    expect(r.driver.used()).toEqual([]); // completions after stop() are not published
    r.post(1);
    r.worker.kick();
    expect(r.worker.stats.chains).toBe(2);
    expect(r.worker.signal.aborted).toBe(true);
  });

  it('deferred: complete(token, length) publishes the chain then, in completion order, one interrupt per microtask', async () => {
    const { r, tokens } = deferringRig(64);
    r.post(3);
    r.worker.kick();
    expect(r.worker.inFlight).toBe(3);
    expect(r.interrupts).toEqual([]);
    r.worker.complete(tokens[2]!, 7);
    r.worker.complete(tokens[0]!, 5);
    expect(r.driver.used().map((u) => u.len)).toEqual([7, 5]); // published at once, in completion order
    expect(r.interrupts).toEqual([]); // the interrupt waits for the end of the turn's work
    await Promise.resolve();
    expect(r.interrupts).toEqual([0]);
    r.worker.complete(tokens[1]!, 1);
    r.worker.complete(tokens[1]!, 1); // twice: nothing more
    expect(r.worker.inFlight).toBe(0);
    expect(r.driver.usedIdx()).toBe(3);
  });

  it('deferred: a complete() inside handle() (an engine that finished at once) is published with the run, one interrupt', () => {
    let r: ReturnType<typeof rig>;
    r = rig(64, {
      handle: () => {
        r.worker.complete(r.worker.defer(), 3);
        return LATER;
      },
    });
    r.post(2);
    r.worker.kick();
    expect(r.driver.used().map((u) => u.len)).toEqual([3, 3]);
    expect(r.worker.inFlight).toBe(0);
    expect(r.interrupts).toEqual([0]);
  });

  it('deferred with inOrder: an early completion waits for the chains taken before it', () => {
    const { r, tokens } = deferringRig(64, { inOrder: true });
    r.post(3);
    r.worker.kick();
    r.worker.complete(tokens[1]!, 8);
    r.worker.complete(tokens[2]!, 9);
    expect(r.driver.used()).toEqual([]);
    r.worker.complete(tokens[0]!, 7);
    expect(r.driver.used().map((u) => u.len)).toEqual([7, 8, 9]);
    expect(r.worker.inFlight).toBe(0);
  });

  it('deferred: a head the driver posts again while it is in flight is two chains, each completed by its own token', () => {
    const { r, tokens } = deferringRig(8, { inOrder: true });
    r.post(1);
    r.worker.kick();
    const head = tokens[0]!.head;
    r.driver.pushAvail(head); // hostile: the same head again, before the device gave it back
    r.worker.kick();
    expect(tokens.map((t) => t.head)).toEqual([head, head]);
    r.worker.complete(tokens[1]!, 2);
    expect(r.driver.used()).toEqual([]); // the first take is still in flight
    r.worker.complete(tokens[0]!, 1);
    expect(r.driver.used()).toEqual([{ id: head, len: 1 }, { id: head, len: 2 }]);
  });

  it('deferred: handle() may not answer LATER without defer(); defer() is for handle() only', () => {
    const r = rig(64, { handle: () => LATER });
    r.post(1);
    r.worker.kick();
    expect(r.failures).toEqual(['device queue handler threw']);
    expect(() => rig().worker.defer()).toThrow(/for handle/);
  });

  it('deferred: a handler that throws after defer() fails the device and leaves nothing in flight', () => {
    let r: ReturnType<typeof rig>;
    r = rig(64, {
      handle: () => {
        r.worker.defer();
        throw new Error('bug');
      },
    });
    r.post(1);
    r.worker.kick();
    expect(r.failures).toHaveLength(1);
    expect(r.worker.inFlight).toBe(0);
    expect(r.worker.stop()).toBeUndefined();
  });

  it('deferred: stop() settles once every deferred chain was completed, and publishes none of them', async () => {
    const { r, tokens } = deferringRig(64, { inOrder: true });
    r.post(2);
    r.worker.kick();
    const stopped = r.worker.stop();
    expect(stopped).toBeInstanceOf(Promise);
    let done = false;
    void stopped!.then(() => {
      done = true;
    });
    r.worker.complete(tokens[0]!, 1);
    await Promise.resolve();
    expect(done).toBe(false);
    r.worker.complete(tokens[1]!, 1);
    await stopped;
    expect(r.driver.used()).toEqual([]);
  });

  it('stop() cancels a pending continuation and wake-up', () => {
    const r = rig(64, undefined, { budget: { chains: 1 } });
    r.post(3);
    r.worker.kick();
    r.worker.stop();
    r.scheduler.settle();
    expect(r.worker.stats.chains).toBe(1);
  });
});

describe('QueueWorker: faults', () => {
  it('a malformed chain fails the device, counted by code, and the worker takes nothing more', () => {
    const r = rig(8);
    r.driver.writeDescriptor(7, { addr: BASE + 0x8000, len: 1, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: 7 });
    r.driver.pushAvail(7);
    r.post(1);
    r.worker.kick();
    expect(r.ringFaults).toEqual(['CHAIN_TOO_LONG']);
    expect(r.failures).toHaveLength(1);
    expect(r.counters.invalidChains).toBe(1);
    expect(r.driver.used()).toEqual([]);
  });

  it('a handler that throws is a device bug: the device is failed, nothing escapes, from a continuation too', () => {
    let n = 0;
    const r = rig(64, {
      handle: () => {
        n += 1;
        if (n === 3) throw new Error('bug');
        return 0;
      },
    }, { budget: { chains: 2 } });
    r.post(5);
    expect(() => r.worker.kick()).not.toThrow();
    expect(() => r.scheduler.settle()).not.toThrow();
    expect(r.failures).toEqual(['device queue handler threw']);
    expect(r.worker.isStopped).toBe(true);
  });

  it('a rejected completion fails the device', async () => {
    const r = rig(64, { handle: () => Promise.reject(new Error('io')) });
    r.post(1);
    r.worker.kick();
    await new Promise((resolve) => setImmediate(resolve));
    expect(r.failures).toEqual(['device queue handler threw']);
  });
});

describe('QueueWorker property: whatever the frontend writes, one run does bounded work', () => {
  it('never serves more than the chain budget, nor much more than the descriptor budget, per run; never throws', async () => {
    const fc = (await import('fast-check')).default;
    const descriptor = fc.record({
      addr: fc.oneof(fc.integer({ min: BASE, max: BASE + 0xffff }), fc.constantFrom(0, BASE - 16, BASE + (1 << 20))),
      len: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(16 * 8, 16 * 64, 0xffff_fff0)),
      flags: fc.integer({ min: 0, max: 7 }),
      next: fc.integer({ min: 0, max: 70 }),
    });
    fc.assert(
      fc.property(
        fc.record({
          sizeLog2: fc.integer({ min: 0, max: 6 }),
          table: fc.array(descriptor, { minLength: 64, maxLength: 64 }),
          avail: fc.array(fc.integer({ min: 0, max: 70 }), { minLength: 64, maxLength: 64 }),
          availIdx: fc.integer({ min: 0, max: 0xffff }),
          chains: fc.integer({ min: 1, max: 80 }),
          descriptors: fc.integer({ min: 1, max: 200 }),
        }),
        (c) => {
          const size = 1 << c.sizeLog2;
          const perRun: number[][] = [];
          let current: number[] = [];
          const r = rig(size, { handle: (chain) => (current.push(chain.readable.length + chain.writable.length), 0) }, {
            budget: { chains: c.chains, descriptors: c.descriptors },
            indirect: true,
          });
          for (let i = 0; i < size; i += 1) r.driver.writeDescriptor(i, c.table[i]!);
          for (let i = 0; i < size; i += 1) r.driver.pushAvail(c.avail[i]!, false);
          r.driver.setAvailIdx(c.availIdx);
          expect(() => r.worker.kick()).not.toThrow();
          perRun.push(current);
          for (let turn = 0; turn < 100 && r.scheduler.pendingYields > 0; turn += 1) {
            current = [];
            expect(() => r.scheduler.turn()).not.toThrow();
            perRun.push(current);
          }
          for (const run of perRun) {
            expect(run.length).toBeLessThanOrEqual(Math.min(c.chains, size));
            const descriptors = run.reduce((a, n) => a + n, 0);
            expect(descriptors).toBeLessThan(c.descriptors + size + 1);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
