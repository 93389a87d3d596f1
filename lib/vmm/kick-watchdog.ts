// KickWatchdog: the timer behind MmioTransport.serveUnkicked. Kicks normally reach the device
// through its ioeventfds and the watchdog only glances at the rings now and then; once it has
// found work that no kick announced, kicks are going astray (a previous daemon's ioeventfds
// still registered, bao-abi.md §3.7), and it polls fast until no kick has gone missing for a
// while. Work is served when it has stayed unannounced for a whole idle period, so a kick that
// is merely slow is never overtaken. Lives in lib/vmm: the policy (when, how often) is the
// daemon's, the look is the transport's.
//
// Idle costs (almost) nothing: while its looks find nothing, the glance period doubles from
// idleMs up to maxIdleMs, so 16 idle device models wake the process a few times a second instead
// of 320. A look that notes unannounced work brings the next look back to idleMs (the kick then
// has had a whole idle period to arrive), and poke() (a driver just activated the device) does
// the same: the first buffers of a new driver whose kicks go astray wait idleMs, not maxIdleMs.
// While there is nothing to watch (`dormant`: no driver has activated the device) it does not
// look at all, and poke() wakes it.
//
// Backed-off looks are due at multiples of their period on the KickClock's time line, and the
// daemon gives every device model of the process the same clock: idle device models meet at the
// same instants, and one timer expiry serves them all (16 idle device models: one wake-up every
// 2 s at most, instead of 16). Looks that must come a whole idle period after something (the
// one that serves noted work, the first after poke()) and fast polling keep their exact times.
//
// What it still guarantees: a buffer whose kick went astray is served at most
// maxIdleMs + idleMs after it was posted (2.05 s with the defaults: the next look, at most
// maxIdleMs away, notes it; the one idleMs later serves it), plus the event loop's own delay;
// from then on it polls every fastMs for holdMs.

import { SharedDeadlines, type KickClock } from './kick-clock.js';

export interface KickWatchdogOptions {
  /** Serve the queues whose buffers stayed unannounced since the last call; returns how many. */
  readonly serve: () => number;
  /** Whether the last look noted unannounced work it will serve at the next (default: never). */
  readonly pending?: () => boolean;
  /** Nothing to watch (the device is not active): stop looking until poke() (default: never). */
  readonly dormant?: () => boolean;
  /** First glance period, and the wait of unannounced work (default 50 ms). */
  readonly idleMs?: number;
  /** The period the glances back off to while they find nothing (default 2000 ms). */
  readonly maxIdleMs?: number;
  /** Period once kicks went missing (default 2 ms): requests then wait 1-2 of these. */
  readonly fastMs?: number;
  /** Fast polling lasts this long after the last missed kick (default 10 s). */
  readonly holdMs?: number;
  /** Called each time missed kicks were found, with how many queues were served. */
  readonly onMissed?: (served: number) => void;
  /** The timer it shares with the other device models of the process (default: one of its own). */
  readonly clock?: KickClock;
}

export class KickWatchdog {
  private readonly serve: () => number;
  private readonly pending: () => boolean;
  private readonly dormant: () => boolean;
  private readonly idleMs: number;
  private readonly maxIdleMs: number;
  private readonly fastMs: number;
  private readonly holdMs: number;
  private readonly onMissed: ((served: number) => void) | undefined;
  private readonly clock: KickClock;
  private cancel: (() => void) | undefined;
  private dueAt = 0;
  private lastMissAt = -Infinity;
  private idlePeriod: number;
  private running = false;

  constructor(options: KickWatchdogOptions) {
    this.serve = options.serve;
    this.pending = options.pending ?? (() => false);
    this.dormant = options.dormant ?? (() => false);
    this.idleMs = positive(options.idleMs ?? 50, 'idleMs');
    this.maxIdleMs = Math.max(this.idleMs, positive(options.maxIdleMs ?? 2000, 'maxIdleMs'));
    this.fastMs = positive(options.fastMs ?? 2, 'fastMs');
    this.holdMs = positive(options.holdMs ?? 10_000, 'holdMs');
    this.onMissed = options.onMissed;
    this.clock = options.clock ?? new SharedDeadlines();
    this.idlePeriod = this.idleMs;
  }

  /** Whether kicks went missing within the hold time (the watchdog is polling fast). */
  get polling(): boolean {
    return this.clock.now() - this.lastMissAt < this.holdMs;
  }

  /** The wait before the next look (for tests and the status page). */
  get period(): number {
    return this.polling ? this.fastMs : this.idlePeriod;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.idlePeriod = this.idleMs;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    this.cancel?.();
    this.cancel = undefined;
  }

  /** Whether it is waiting for poke() (it found nothing to watch). */
  get sleeping(): boolean {
    return this.running && this.cancel === undefined;
  }

  /** Something changed (a driver activated the device): glance at idleMs again, from now. */
  poke(): void {
    this.idlePeriod = this.idleMs;
    if (!this.running) return;
    if (this.cancel !== undefined) {
      if (this.dueAt - this.clock.now() <= this.idleMs) return;
      this.cancel();
    }
    this.schedule();
  }

  private schedule(): void {
    if (!this.running) return;
    const wait = this.period;
    // Only a backed-off look may come early (it finds what a later one would): it meets the
    // other device models' looks on the shared time line.
    this.dueAt = wait > this.idleMs ? this.clock.aligned(wait) : this.clock.now() + wait;
    this.cancel = this.clock.at(this.dueAt, () => this.tick());
  }

  private tick(): void {
    this.cancel = undefined;
    if (!this.running) return;
    const served = this.serve();
    if (served > 0) {
      this.lastMissAt = this.clock.now();
      this.idlePeriod = this.idleMs;
      this.onMissed?.(served);
    } else if (this.pending()) {
      this.idlePeriod = this.idleMs;
    } else if (!this.polling) {
      if (this.dormant()) return; // poke() schedules the next look
      this.idlePeriod = Math.min(this.idlePeriod * 2, this.maxIdleMs);
    }
    this.schedule();
  }
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`KickWatchdog: ${name} must be a positive number of milliseconds, got ${value}`);
  return value;
}
