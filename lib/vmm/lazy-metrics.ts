// DaemonMetrics made on the first scrape: prom-client (and the OpenTelemetry API it loads) is
// the largest part of the daemon's start-up that serving devices does not need, and a restarted
// daemon's frontends wait on that start (issue 13). Counters are rendered from one status
// snapshot per scrape, so nothing is lost by starting late; only prom-client's own process and
// Node.js metrics (event-loop lag, GC) begin at the first scrape instead of at start. The cost
// moves with it: the first scrape holds the event loop while prom-client loads (about 0.1 s of
// CPU on an x86 host), once.

import type { DaemonMetrics } from './metrics.js';
import type { DaemonStatus } from './status.js';

/** What the status server needs of the metrics. */
export type MetricsSource = Pick<DaemonMetrics, 'render' | 'contentType'>;

export function lazyDaemonMetrics(status: () => DaemonStatus): MetricsSource {
  let made: Promise<DaemonMetrics> | undefined;
  let metrics: DaemonMetrics | undefined;
  return {
    async render(): Promise<string> {
      made ??= import('./metrics.js').then((m) => (metrics = new m.DaemonMetrics(status)));
      return (await made).render();
    },
    get contentType(): string {
      // Read after render() (the response's header); prom-client's text format otherwise.
      return metrics?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8';
    },
  };
}
