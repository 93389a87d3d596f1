// KickWatchdog: when and how often the daemon looks at the rings for buffers no kick announced.
// Kicks that arrive are its normal case: it glances rarely, and ever more rarely while it finds
// nothing (idle costs nothing). Once kicks go missing it polls fast, until none has gone missing
// for the hold time. Backed-off looks fall on instants shared by every device model of the
// process (one KickClock), so that idle device models wake the process together.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { SharedDeadlines } from '../../../lib/vmm/kick-clock.js';
import { KickWatchdog } from '../../../lib/vmm/kick-watchdog.js';

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(0);
});
afterEach(() => {
  vi.useRealTimers();
});

function watchdog(finds: () => number, pending: () => boolean = () => false, dormant: () => boolean = () => false, clock = new SharedDeadlines()) {
  const calls: { at: number }[] = [];
  const missed: number[] = [];
  const dog = new KickWatchdog({
    idleMs: 50,
    fastMs: 2,
    holdMs: 1000,
    maxIdleMs: 400,
    clock,
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
    // The first look a whole idle period after the start, then at multiples of the period.
    expect(calls.map((c) => c.at - start)).toEqual([50, 100, 200, 400, 800, 1200, 1600, 2000]);
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
    vi.advanceTimersByTime(850);
    // 50, 100, 200, 400, 800 (notes), 850 (serves): 50 ms after the noting look, not 400.
    expect(calls.map((c) => c.at - start)).toEqual([50, 100, 200, 400, 800, 850]);
    expect(missed).toEqual([1]);
    expect(dog.polling).toBe(true);
    dog.stop();
  });

  it('poke() brings a backed-off watchdog back to idleMs from now', () => {
    const start = Date.now();
    const { dog, calls } = watchdog(() => 0);
    dog.start();
    vi.advanceTimersByTime(1210); // looks at 50, 100, 200, 400, 800, 1200; next due at 1600
    dog.poke();
    vi.advanceTimersByTime(100);
    // 1260: idleMs after the poke; then it backs off again from there (1300 = a multiple of 100).
    expect(calls.map((c) => c.at - start)).toEqual([50, 100, 200, 400, 800, 1200, 1260, 1300]);
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
    expect(calls.map((c) => c.at - start)).toEqual([50, 60_050, 60_100]);
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

/**
 * A queue as MmioTransport.serveUnkicked sees it: a look notes buffers no kick announced, and the
 * next look serves them if they are still unannounced (a slow kick gets one idle period).
 */
function lostKickQueue() {
  let postedAt: number | undefined;
  let noted = false;
  const served: number[] = [];
  return {
    served,
    post(): void {
      postedAt = Date.now();
    },
    serve(): number {
      if (postedAt === undefined) return 0;
      if (!noted) {
        noted = true;
        return 0;
      }
      served.push(Date.now() - postedAt);
      postedAt = undefined;
      noted = false;
      return 1;
    },
    pending: (): boolean => noted,
  };
}

describe('KickWatchdog: idle costs nothing, lost kicks are still found', () => {
  it('with the defaults, backs off from 50 ms to one look every 2 s while the rings show nothing', () => {
    const clock = new SharedDeadlines();
    const looks: number[] = [];
    const dog = new KickWatchdog({ clock, serve: () => (looks.push(Date.now()), 0) });
    dog.start();
    vi.advanceTimersByTime(60_000);
    expect(looks.slice(0, 7)).toEqual([50, 100, 200, 400, 800, 1600, 2000]);
    // From then on one look per 2 s: 30 looks in the minute, where a fixed 50 ms took 1200.
    expect(looks.length).toBe(36);
    expect(dog.period).toBe(2000);
    dog.stop();
  });

  it('snaps back to 50 ms at activity: a look that notes unannounced work, or a poke (driver activation)', () => {
    const clock = new SharedDeadlines();
    const q = lostKickQueue();
    const looks: number[] = [];
    const dog = new KickWatchdog({ clock, serve: () => (looks.push(Date.now()), q.serve()), pending: q.pending });
    dog.start();
    vi.advanceTimersByTime(30_000);
    expect(dog.period).toBe(2000);
    q.post();
    vi.advanceTimersByTime(2000); // the next look (at 32 000) notes it...
    expect(dog.period).toBe(50);
    looks.length = 0;
    vi.advanceTimersByTime(50); // ... the one 50 ms later serves it
    expect(looks).toEqual([32_050]);
    expect(q.served).toEqual([2000 + 50]);
    dog.stop();

    const poked = new KickWatchdog({ clock, serve: () => 0 });
    poked.start();
    vi.advanceTimersByTime(30_000);
    expect(poked.period).toBe(2000);
    poked.poke();
    expect(poked.period).toBe(50);
    poked.stop();
  });

  it('still serves a buffer whose kick went astray within maxIdleMs + idleMs (2.05 s) of its posting, whenever it is posted', () => {
    const clock = new SharedDeadlines();
    const q = lostKickQueue();
    // Posted at awkward moments of a long idle stretch: just after a look, just before one, between.
    const delays = [60_000, 1, 1999, 777, 2000, 13_001, 5];
    const dog = new KickWatchdog({ clock, serve: () => q.serve(), pending: q.pending, holdMs: 1 });
    dog.start();
    for (const d of delays) {
      vi.advanceTimersByTime(d);
      q.post();
      vi.advanceTimersByTime(2050);
    }
    expect(q.served).toHaveLength(delays.length);
    for (const waited of q.served) expect(waited).toBeLessThanOrEqual(2050);
    dog.stop();
  });

  it('lets 16 device models of a process share their wake-ups: one timer expiry per shared deadline, not 16', () => {
    const shared = new SharedDeadlines();
    const dogs: KickWatchdog[] = [];
    let looks = 0;
    for (let i = 0; i < 16; i++) {
      const dog = new KickWatchdog({ clock: shared, serve: () => (looks++, 0) });
      dog.start();
      dogs.push(dog);
      vi.advanceTimersByTime(3); // the device models start one after the other
    }
    vi.advanceTimersByTime(10_000); // all backed off
    const [w0, l0] = [shared.wakeups, looks];
    vi.advanceTimersByTime(60_000);
    // 2 s period: 30 instants in the minute, each serving the 16 looks.
    expect(looks - l0).toBe(16 * 30);
    expect(shared.wakeups - w0).toBe(30);

    // The same 16 with a clock each (no shared clock given) wake the process 16 times as often.
    for (const d of dogs) d.stop();
    const own: SharedDeadlines[] = [];
    for (let i = 0; i < 16; i++) {
      const clock = new SharedDeadlines();
      own.push(clock);
      const dog = new KickWatchdog({ clock, serve: () => 0 });
      dog.start();
      dogs.push(dog);
      vi.advanceTimersByTime(3);
    }
    vi.advanceTimersByTime(10_000);
    const before = own.reduce((n, c) => n + c.wakeups, 0);
    vi.advanceTimersByTime(60_000);
    expect(own.reduce((n, c) => n + c.wakeups, 0) - before).toBe(16 * 30);
    for (const d of dogs) d.stop();
  });

  it('does not wake the process at all while every device model sleeps (no driver) and nothing is pending', () => {
    const shared = new SharedDeadlines();
    const dogs = Array.from({ length: 16 }, () => new KickWatchdog({ clock: shared, serve: () => 0, dormant: () => true }));
    for (const d of dogs) d.start();
    vi.advanceTimersByTime(60_000);
    expect(shared.wakeups).toBe(1); // the first look of each (all at 50 ms) finds nothing to watch
    expect(shared.pending).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
