// EventFd and FdPoller against the real kernel: counters, semaphore mode, non-blocking reads,
// poll wake-ups on the event loop, idempotent close.

import { describe, expect, it } from 'vitest';

import { EventFd, FdPoller, HandleClosedError } from '../../lib/dispatcher/index.js';
import { fdCount } from './leaks.js';

const nextTick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

describe('EventFd', () => {
  it('round-trips: writes add to the counter, a read returns and resets it', () => {
    const e = EventFd.create();
    e.write(3);
    e.write(4n);
    expect(e.read()).toBe(7n);
    expect(e.read()).toBeNull();
    e.close();
  });

  it('starts from initval and signal() adds one', () => {
    const e = EventFd.create({ initval: 5 });
    e.signal();
    expect(e.read()).toBe(6n);
    e.close();
  });

  it('in semaphore mode reads one at a time', () => {
    const e = EventFd.create({ semaphore: true, initval: 2 });
    expect(e.read()).toBe(1n);
    expect(e.read()).toBe(1n);
    expect(e.read()).toBeNull();
    e.close();
  });

  it('refuses increments outside [1, 2^64-2]', () => {
    const e = EventFd.create();
    expect(() => e.write(0)).toThrow(/increment/);
    expect(() => e.write(0xffffffffffffffffn)).toThrow(/increment/);
    e.close();
  });

  it('closes once, gives its fd back, and refuses use afterwards', () => {
    const before = fdCount();
    const e = EventFd.create();
    expect(fdCount()).toBe(before + 1);
    e.close();
    e.close();
    expect(fdCount()).toBe(before);
    expect(e.closed).toBe(true);
    expect(() => e.fd).toThrow(HandleClosedError);
    expect(() => e.signal()).toThrow(expect.objectContaining({ code: 'HANDLE_CLOSED' }));
  });
});

describe('polling an eventfd', () => {
  it('wakes the callback on the event loop each time the counter becomes non-zero', async () => {
    const e = EventFd.create();
    const seen: bigint[] = [];
    e.poll(() => {
      const v = e.read();
      if (v !== null) seen.push(v);
    });
    await nextTick();
    expect(seen).toEqual([]);
    e.write(2);
    await nextTick();
    e.signal();
    await nextTick();
    expect(seen).toEqual([2n, 1n]);
    e.close();
  });

  it('stops calling after stop(), resumes after start(), and close() is idempotent', async () => {
    const e = EventFd.create();
    let calls = 0;
    const p = new FdPoller(e.fd, () => {
      calls++;
      e.read();
    }).start();
    expect(p.active).toBe(true);
    p.stop();
    e.signal();
    await nextTick();
    expect(calls).toBe(0);
    p.start();
    await nextTick();
    expect(calls).toBe(1);
    p.close();
    p.close();
    expect(p.closed).toBe(true);
    expect(() => p.start()).toThrow(expect.objectContaining({ code: 'HANDLE_CLOSED' }));
    e.close();
  });

  it('closing the EventFd closes its poller first', () => {
    const e = EventFd.create();
    const p = e.poll(() => {});
    e.close();
    expect(p.closed).toBe(true);
  });

  it('refuses a second poller on the same EventFd', () => {
    const e = EventFd.create();
    e.poll(() => {});
    expect(() => e.poll(() => {})).toThrow(/already polled/);
    e.close();
  });
});
