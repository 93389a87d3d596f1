// KickWatchdog: when and how often the daemon looks at the rings for buffers no kick announced.
// Kicks that arrive are its normal case: it glances rarely, and ever more rarely while it finds
// nothing (idle costs nothing). Once kicks go missing it polls fast, until none has gone missing
// for the hold time.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { KickWatchdog } from '../../../lib/vmm/kick-watchdog.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function watchdog(finds: () => number, pending: () => boolean = () => false, dormant: () => boolean = () => false) {
  const calls: { at: number }[] = [];
  const missed: number[] = [];
  const dog = new KickWatchdog({
    idleMs: 50,
    fastMs: 2,
    holdMs: 1000,
    maxIdleMs: 400,
    now: () => Date.now(),
    pending,
    dormant,
    serve: () => {
      calls.push({ at: Date.now() });
      return finds();
    },
    onMissed: (n) => missed.push(n),
  });
  return { dog, calls, missed };
}

describe('KickWatchdog', () => {
  it('backs off, doubling its period up to maxIdleMs, while its looks find nothing', () => {
    const start = Date.now();
    const { dog, calls, missed } = watchdog(() => 0);
    dog.start();
    vi.advanceTimersByTime(2000);
    expect(calls.map((c) => c.at - start)).toEqual([50, 150, 350, 750, 1150, 1550, 1950]);
    expect(missed).toEqual([]);
    expect(dog.polling).toBe(false);
    expect(dog.period).toBe(400);
    dog.stop();
  });

  it('looks again after idleMs once a look noted unannounced work, so it is served one idle period later', () => {
    const start = Date.now();
    let noted = false;
    let served = 0;
    const { dog, calls, missed } = watchdog(
      () => {
        // The second look after t=700 serves what the first one noted.
        if (noted) {
          noted = false;
          served += 1;
          return 1;
        }
        if (Date.now() - start >= 700 && served === 0) noted = true;
        return 0;
      },
      () => noted,
    );
    dog.start();
    vi.advanceTimersByTime(800);
    // 50, 150, 350, 750 (notes), 800 (serves): 50 ms after the noting look, not 400.
    expect(calls.map((c) => c.at - start)).toEqual([50, 150, 350, 750, 800]);
    expect(missed).toEqual([1]);
    expect(dog.polling).toBe(true);
    dog.stop();
  });

  it('poke() brings a backed-off watchdog back to idleMs from now', () => {
    const start = Date.now();
    const { dog, calls } = watchdog(() => 0);
    dog.start();
    vi.advanceTimersByTime(1200); // looks at 50, 150, 350, 750, 1150; next due at 1550
    dog.poke();
    vi.advanceTimersByTime(100);
    expect(calls.map((c) => c.at - start)).toEqual([50, 150, 350, 750, 1150, 1250]);
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
    // ... and backs off from there.
    vi.advanceTimersByTime(2000);
    expect(dog.period).toBe(400);
    dog.stop();
  });

  it('does not look at all while there is nothing to watch, until poked', () => {
    const start = Date.now();
    let dormant = true;
    const { dog, calls } = watchdog(() => 0, () => false, () => dormant);
    dog.start();
    vi.advanceTimersByTime(60_000);
    expect(calls.map((c) => c.at - start)).toEqual([50]); // one look finds nothing to watch
    expect(dog.sleeping).toBe(true);
    dormant = false; // a driver activated the device
    dog.poke();
    vi.advanceTimersByTime(150);
    expect(calls.map((c) => c.at - start)).toEqual([50, 60_050, 60_150]);
    expect(dog.sleeping).toBe(false);
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
    expect(() => new KickWatchdog({ serve: () => 0, maxIdleMs: -1 })).toThrow(/maxIdleMs/);
  });
});
