// What the daemon process itself costs, for `baoctl status` and long runs (scripts/soak.sh):
// memory, open descriptors, and how long the event loop was kept from running (every device
// model waits on it, so its delay is the latency a frontend sees on top of the work itself).

import * as fs from 'node:fs';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface ProcessStats {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  /** Memory outside the JS heap held by Buffers and ArrayBuffers. */
  readonly externalBytes: number;
  /** Open file descriptors (-1 where /proc is not there). */
  readonly openFds: number;
  /** Event-loop delay since the previous sample, ms (resolution 10 ms). */
  readonly eventLoopDelayMs: { readonly mean: number; readonly p99: number; readonly max: number };
}

function openFds(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

/** Samples the process; each sample() restarts the event-loop delay histogram. */
export class ProcessSampler {
  private readonly delay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });

  constructor() {
    this.delay.enable();
  }

  sample(): ProcessStats {
    const m = process.memoryUsage();
    const h = this.delay;
    const ms = (ns: number): number => (Number.isFinite(ns) ? Math.round(ns / 1e4) / 100 : 0);
    const stats: ProcessStats = {
      rssBytes: m.rss,
      heapUsedBytes: m.heapUsed,
      heapTotalBytes: m.heapTotal,
      externalBytes: m.external + m.arrayBuffers,
      openFds: openFds(),
      eventLoopDelayMs: { mean: h.count > 0 ? ms(h.mean) : 0, p99: h.count > 0 ? ms(h.percentile(99)) : 0, max: h.count > 0 ? ms(h.max) : 0 },
    };
    h.reset();
    return stats;
  }

  close(): void {
    this.delay.disable();
  }
}
