// KickClock: the timer the kick watchdogs of one daemon share. Each device model's watchdog asks
// for a call at an instant; calls for the same instant are run by one timer, so that 16 idle
// device models wake the process once per shared deadline instead of 16 times. Backed-off looks
// ask for aligned() instants (multiples of their period on one time line), which is what makes
// the instants of different device models equal. Not a process-wide singleton: the daemon's
// device-model factory makes one and hands it to each DeviceModelServer it starts; a server
// started without one gets its own.

export interface KickClock {
  now(): number;
  /** Calls `fn` once at `at` (ms on now()'s scale) or soon after; returns the cancel. */
  at(at: number, fn: () => void): () => void;
  /** The first multiple of `period` after now: where looks with this period meet. */
  aligned(period: number): number;
}

export interface SharedDeadlinesOptions {
  /** Clock (default Date.now; fake timers replace it in tests). */
  readonly now?: () => number;
}

interface Call {
  readonly fn: () => void;
}

export class SharedDeadlines implements KickClock {
  /** Timer expiries so far (process wake-ups this clock caused). */
  wakeups = 0;
  /** Calls run so far. */
  calls = 0;

  private readonly clock: () => number;
  private readonly due = new Map<number, Set<Call>>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(options: SharedDeadlinesOptions = {}) {
    this.clock = options.now ?? Date.now;
  }

  now(): number {
    return this.clock();
  }

  aligned(period: number): number {
    return (Math.floor(this.clock() / period) + 1) * period;
  }

  /** Instants with calls waiting (for tests). */
  get pending(): number {
    return this.due.size;
  }

  at(at: number, fn: () => void): () => void {
    const call: Call = { fn };
    let calls = this.due.get(at);
    if (calls === undefined) {
      calls = new Set();
      this.due.set(at, calls);
    }
    calls.add(call);
    if (at < this.timerAt) this.arm(at);
    return () => {
      const set = this.due.get(at);
      if (set === undefined || !set.delete(call)) return;
      if (set.size === 0) this.due.delete(at);
      // A timer left for an instant nobody waits for any more fires once and finds nothing:
      // cheaper than re-arming on every cancel (poke() cancels often).
    };
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - this.clock()));
    // The request loops keep the daemon alive; the watchdogs alone must not.
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    this.wakeups += 1;
    const now = this.clock();
    // Taken out first: a call asks for its next instant while this loop runs.
    const run: Call[] = [];
    for (const [at, calls] of this.due) {
      if (at > now) continue;
      this.due.delete(at);
      for (const c of calls) run.push(c);
    }
    // One device model's throw must not cost the others their look nor the clock its next
    // expiry: the first error is rethrown (to the process' handlers) once the others ran.
    let failed: { error: unknown } | undefined;
    for (const c of run) {
      this.calls += 1;
      try {
        c.fn();
      } catch (error) {
        failed ??= { error };
      }
    }
    let next = Infinity;
    for (const at of this.due.keys()) if (at < next) next = at;
    if (next !== Infinity && next < this.timerAt) this.arm(next);
    if (failed !== undefined) throw failed.error;
  }
}
