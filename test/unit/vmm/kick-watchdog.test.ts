// KickWatchdog: when and how often the daemon looks at the rings for buffers no kick announced.
// Kicks that arrive are its normal case: it glances rarely. Once kicks go missing it polls fast,
// until none has gone missing for the hold time.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { KickWatchdog } from '../../../lib/vmm/kick-watchdog.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function watchdog(finds: () => number) {
  const calls: { at: number }[] = [];
  const missed: number[] = [];
  const dog = new KickWatchdog({
    idleMs: 50,
    fastMs: 2,
    holdMs: 1000,
    now: () => Date.now(),
    serve: () => {
      calls.push({ at: Date.now() });
      return finds();
    },
    onMissed: (n) => missed.push(n),
  });
  return { dog, calls, missed };
}

describe('KickWatchdog', () => {
  it('looks every idle period while kicks arrive as they should', () => {
    const start = Date.now();
    const { dog, calls, missed } = watchdog(() => 0);
    dog.start();
    vi.advanceTimersByTime(200);
    expect(calls.map((c) => c.at - start)).toEqual([50, 100, 150, 200]);
    expect(missed).toEqual([]);
    expect(dog.polling).toBe(false);
    dog.stop();
  });

  it('polls fast once it has found unannounced work, and reports it', () => {
    let work = 1;
    const { dog, calls, missed } = watchdog(() => {
      const n = work;
      work = 0;
      return n;
    });
    dog.start();
    vi.advanceTimersByTime(50);
    expect(missed).toEqual([1]);
    expect(dog.polling).toBe(true);
    vi.advanceTimersByTime(10);
    expect(calls).toHaveLength(6);
    dog.stop();
  });

  it('goes back to the idle period when no kick has gone missing for the hold time', () => {
    let work = 1;
    const { dog, calls } = watchdog(() => {
      const n = work;
      work = 0;
      return n;
    });
    dog.start();
    vi.advanceTimersByTime(50 + 1000);
    expect(dog.polling).toBe(false);
    const before = calls.length;
    vi.advanceTimersByTime(100);
    expect(calls.length - before).toBeLessThanOrEqual(3);
    dog.stop();
  });

  it('stops looking when stopped, and start is idempotent', () => {
    const { dog, calls } = watchdog(() => 0);
    dog.start();
    dog.start();
    vi.advanceTimersByTime(50);
    expect(calls).toHaveLength(1);
    dog.stop();
    vi.advanceTimersByTime(500);
    expect(calls).toHaveLength(1);
  });

  it('refuses periods that are not positive', () => {
    expect(() => new KickWatchdog({ serve: () => 0, fastMs: 0 })).toThrow(/fastMs/);
    expect(() => new KickWatchdog({ serve: () => 0, idleMs: Number.NaN })).toThrow(/idleMs/);
  });
});
