// What the daemon process itself costs, for `baoctl status` and long runs (scripts/soak.sh):
// memory, open descriptors, and how long the event loop was kept from running (every device
// model waits on it, so its delay is the latency a frontend sees on top of the work itself).
//
// The event-loop delay is measured only while somebody asks for it: perf_hooks'
// monitorEventLoopDelay is a 10 ms timer (100 wake-ups a second), which an idle daemon nobody
// watches must not pay. A sample() starts the monitor for a window (150 s by default) and each
// sample within the window extends it; a window without a sample stops it. So the first sample
// after a quiet spell has no delay figures (`windowMs: 0`); the next ones cover the time since the
// previous sample. Prometheus scraping every 15-60 s, or the soak's 60 s samples, keep it running.

import * as fs from 'node:fs';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface EventLoopDelay {
  /** The span these figures cover, ms: since the previous sample; 0 when the monitor was not running (no figures). */
  readonly windowMs: number;
  readonly mean: number;
  readonly min: number;
  readonly stddev: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export interface ProcessStats {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  /** Memory outside the JS heap held by Buffers and ArrayBuffers. */
  readonly externalBytes: number;
  /** Open file descriptors (-1 where /proc is not there). */
  readonly openFds: number;
  /** Event-loop delay since the previous sample, ms (resolution 10 ms). */
  readonly eventLoopDelayMs: EventLoopDelay;
}

export interface ProcessSamplerOptions {
  /** The monitor stops when no sample came for this long (default 150 000 ms: one missed scrape of a 60 s interval). */
  readonly windowMs?: number;
  /** The monitor's sampling period, ms (default 10). */
  readonly resolutionMs?: number;
  /** Clock, for tests (default Date.now). */
  readonly now?: () => number;
  /** The histogram, for tests (default perf_hooks.monitorEventLoopDelay). */
  readonly monitor?: (resolutionMs: number) => IntervalHistogram;
}

const NO_DELAY: EventLoopDelay = { windowMs: 0, mean: 0, min: 0, stddev: 0, p50: 0, p90: 0, p99: 0, max: 0 };

function openFds(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

/** Samples the process; each sample() restarts the event-loop delay histogram, and keeps it running for a window. */
export class ProcessSampler {
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly delay: IntervalHistogram;
  /** While set the monitor runs; it stops the monitor when it fires. */
  private stopTimer: NodeJS.Timeout | undefined;
  private since = 0;

  constructor(options: ProcessSamplerOptions = {}) {
    this.windowMs = options.windowMs ?? 150_000;
    this.now = options.now ?? Date.now;
    this.delay = (options.monitor ?? ((resolution) => monitorEventLoopDelay({ resolution })))(options.resolutionMs ?? 10);
  }

  /** Whether the event-loop delay monitor (its 10 ms timer) is running. */
  get monitoring(): boolean {
    return this.stopTimer !== undefined;
  }

  sample(): ProcessStats {
    const m = process.memoryUsage();
    const now = this.now();
    const stats: ProcessStats = {
      rssBytes: m.rss,
      heapUsedBytes: m.heapUsed,
      heapTotalBytes: m.heapTotal,
      externalBytes: m.external + m.arrayBuffers,
      openFds: openFds(),
      eventLoopDelayMs: this.monitoring ? this.delayFigures(now - this.since) : NO_DELAY,
    };
    this.delay.reset();
    this.since = now;
    if (this.stopTimer === undefined) {
      this.delay.enable();
      this.armStop(this.windowMs);
    }
    return stats;
  }

  close(): void {
    this.stopMonitor();
  }

  /** One timer per window, not one per sample: when it fires, a sample within the window arms the rest of it. */
  private armStop(ms: number): void {
    this.stopTimer = setTimeout(() => {
      const left = this.since + this.windowMs - this.now();
      if (left > 0) this.armStop(left);
      else this.stopMonitor();
    }, ms);
    // Sampling keeps nothing alive.
    this.stopTimer.unref();
  }

  private stopMonitor(): void {
    if (this.stopTimer !== undefined) clearTimeout(this.stopTimer);
    this.stopTimer = undefined;
    this.delay.disable();
  }

  private delayFigures(windowMs: number): EventLoopDelay {
    const h = this.delay;
    if (h.count === 0) return { ...NO_DELAY, windowMs };
    const ms = (ns: number): number => (Number.isFinite(ns) ? Math.round(ns / 1e4) / 100 : 0);
    return { windowMs, mean: ms(h.mean), min: ms(h.min), stddev: ms(h.stddev), p50: ms(h.percentile(50)), p90: ms(h.percentile(90)), p99: ms(h.percentile(99)), max: ms(h.max) };
  }
}
