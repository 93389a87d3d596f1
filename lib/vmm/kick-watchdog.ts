// KickWatchdog: the timer behind MmioTransport.serveUnkicked. Kicks normally reach the device
// through its ioeventfds and the watchdog only glances at the rings now and then; once it has
// found work that no kick announced, kicks are going astray (a previous daemon's ioeventfds
// still registered, bao-abi.md §3.7), and it polls fast until no kick has gone missing for a
// while. Work is served when it has stayed unannounced for a whole period, so a kick that is
// merely slow is never overtaken. Lives in lib/vmm: the policy (when, how often) is the
// daemon's, the look is the transport's.

export interface KickWatchdogOptions {
  /** Serve the queues whose buffers stayed unannounced since the last call; returns how many. */
  readonly serve: () => number;
  /** Period while kicks arrive as they should (default 50 ms). Unannounced work waits 1-2 periods. */
  readonly idleMs?: number;
  /** Period once kicks went missing (default 2 ms): requests then wait 1-2 of these. */
  readonly fastMs?: number;
  /** Fast polling lasts this long after the last missed kick (default 10 s). */
  readonly holdMs?: number;
  /** Called each time missed kicks were found, with how many queues were served. */
  readonly onMissed?: (served: number) => void;
  /** Clock, for tests (default Date.now). */
  readonly now?: () => number;
}

export class KickWatchdog {
  private readonly serve: () => number;
  private readonly idleMs: number;
  private readonly fastMs: number;
  private readonly holdMs: number;
  private readonly onMissed: ((served: number) => void) | undefined;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private lastMissAt = -Infinity;
  private running = false;

  constructor(options: KickWatchdogOptions) {
    this.serve = options.serve;
    this.idleMs = positive(options.idleMs ?? 50, 'idleMs');
    this.fastMs = positive(options.fastMs ?? 2, 'fastMs');
    this.holdMs = positive(options.holdMs ?? 10_000, 'holdMs');
    this.onMissed = options.onMissed;
    this.now = options.now ?? Date.now;
  }

  /** Whether kicks went missing within the hold time (the watchdog is polling fast). */
  get polling(): boolean {
    return this.now() - this.lastMissAt < this.holdMs;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => this.tick(), this.polling ? this.fastMs : this.idleMs);
    // The request loop keeps the daemon alive; the watchdog alone must not.
    this.timer.unref();
  }

  private tick(): void {
    this.timer = undefined;
    if (!this.running) return;
    const served = this.serve();
    if (served > 0) {
      this.lastMissAt = this.now();
      this.onMissed?.(served);
    }
    this.schedule();
  }
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`KickWatchdog: ${name} must be a positive number of milliseconds, got ${value}`);
  return value;
}
