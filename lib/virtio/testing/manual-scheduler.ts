// ManualScheduler: a WorkerScheduler and clock that tests step by hand, so fairness (what one
// kick serves before yielding) and rate limits (when a throttled queue wakes) are specified
// without real waiting. Pass `scheduler` to the worker and `now` to the token buckets.

import type { WorkerScheduler } from '../queue-worker.js';

interface Timer {
  readonly at: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export class ManualScheduler implements WorkerScheduler {
  /** The clock, in ms. */
  time = 0;
  private immediates: (() => void)[] = [];
  private timers: Timer[] = [];

  readonly now = (): number => this.time;

  yield(fn: () => void): void {
    this.immediates.push(fn);
  }

  after(fn: () => void, ms: number): () => void {
    const timer: Timer = { at: this.time + ms, fn, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** Continuations waiting for the event loop. */
  get pendingYields(): number {
    return this.immediates.length;
  }

  /** Timers not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** One event-loop turn: runs the continuations queued so far (not those they queue). */
  turn(): number {
    const batch = this.immediates;
    this.immediates = [];
    for (const fn of batch) fn();
    return batch.length;
  }

  /** Turns until no continuation is left (bounded); returns how many turns it took. */
  settle(maxTurns = 10_000): number {
    let turns = 0;
    while (this.immediates.length > 0 && turns < maxTurns) {
      this.turn();
      turns += 1;
    }
    return turns;
  }

  /** Moves the clock on and fires the timers that fell due, in order. */
  advance(ms: number): void {
    this.time += ms;
    for (;;) {
      const due = this.timers.filter((t) => !t.cancelled && t.at <= this.time).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      due.cancelled = true;
      due.fn();
    }
    this.timers = this.timers.filter((t) => !t.cancelled);
  }
}
