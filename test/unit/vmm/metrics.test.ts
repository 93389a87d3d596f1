// The daemon's counters in Prometheus' text format: one snapshot per scrape, every device
// labelled by DM id and type, guest faults by kind, device counters under their own names.

import { describe, expect, it } from 'vitest';

import { lazyDaemonMetrics } from '../../../lib/vmm/lazy-metrics.js';
import { DaemonMetrics } from '../../../lib/vmm/metrics.js';
import type { DaemonStatus } from '../../../lib/vmm/status.js';

const STATUS: DaemonStatus = {
  pid: 7,
  state: 'serving',
  config: 'vm.yaml',
  startedAt: '2026-11-24T00:00:00.000Z',
  uptimeMs: 12_500,
  devices: [
    {
      index: 0,
      id: 0,
      type: 'rng',
      mmioAddr: '0xa000000',
      deviceModel: {
        status: 'ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK',
        server: { requests: 35, strayAccesses: 0, rejectedCompletions: 0, ioeventfdKicks: 12, watchdogFinds: 0 },
        transport: { notifies: 12, missedKicks: 0, usedInterrupts: 11, configInterrupts: 0, activations: 1, resets: 0, needsReset: 0, guestFaults: 0, faults: {}, notifiesByQueue: [12], usedInterruptsByQueue: [11], usedSuppressedByQueue: [0] },
      },
      metrics: { requests: 12, bytes: 768 },
    },
    {
      index: 1,
      id: 3,
      type: 'console',
      mmioAddr: '0xa000600',
      deviceModel: {
        status: 'ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK|DEVICE_NEEDS_RESET',
        server: { requests: 40 },
        transport: { notifies: 3, missedKicks: 5, guestFaults: 2, faults: { QUEUE_NOTIFY_INVALID: 2 } },
      },
      metrics: { txBytes: 21, backendDiscardedBytes: 4 },
    },
  ],
};

describe('DaemonMetrics', () => {
  it('renders every device model counter with dm and type labels, from one snapshot', async () => {
    const text = await new DaemonMetrics(() => STATUS).render();
    expect(text).toContain('node_bao_up 1');
    expect(text).toContain('node_bao_uptime_seconds 12.5');
    expect(text).toContain('node_bao_requests_total{dm="0",type="rng"} 35');
    expect(text).toContain('node_bao_ioeventfd_kicks_total{dm="0",type="rng"} 12');
    expect(text).toContain('node_bao_missed_kicks_total{dm="3",type="console"} 5');
    expect(text).toContain('node_bao_device_driver_ok{dm="0",type="rng"} 1');
    expect(text).toContain('node_bao_device_needs_reset{dm="0",type="rng"} 0');
    expect(text).toContain('node_bao_device_needs_reset{dm="3",type="console"} 1');
    expect(text).toContain('node_bao_guest_faults_total{dm="3",type="console",code="QUEUE_NOTIFY_INVALID"} 2');
    expect(text).toMatch(/# TYPE node_bao_requests_total counter/);
  });

  it('labels the per-queue kicks and interrupts with the queue index', async () => {
    const text = await new DaemonMetrics(() => STATUS).render();
    expect(text).toContain('node_bao_queue_kicks_total{dm="0",type="rng",queue="0"} 12');
    expect(text).toContain('node_bao_queue_used_interrupts_total{dm="0",type="rng",queue="0"} 11');
    expect(text).not.toContain('node_bao_queue_used_suppressed_total{dm="0"');
  });

  it('names device counters node_bao_<type>_<counter>_total', async () => {
    const text = await new DaemonMetrics(() => STATUS).render();
    expect(text).toContain('node_bao_rng_bytes_total{dm="0",type="rng"} 768');
    expect(text).toContain('node_bao_console_tx_bytes_total{dm="3",type="console"} 21');
    expect(text).toContain('node_bao_console_backend_discarded_bytes_total{dm="3",type="console"} 4');
  });

  it('reports the values of the latest snapshot at each scrape, never a sum of scrapes', async () => {
    let requests = 35;
    const metrics = new DaemonMetrics(() => ({
      ...STATUS,
      devices: [{ ...STATUS.devices[0]!, deviceModel: { ...STATUS.devices[0]!.deviceModel!, server: { requests } } }],
    }));
    await metrics.render();
    requests = 50;
    const text = await metrics.render();
    expect(text).toContain('node_bao_requests_total{dm="0",type="rng"} 50');
  });

  it('says 0 for up while the daemon is starting or stopping', async () => {
    expect(await new DaemonMetrics(() => ({ ...STATUS, state: 'stopping', devices: [] })).render()).toContain('node_bao_up 0');
  });
});

describe('process metrics', () => {
  it('adds prom-client\u2019s process and Node.js metrics (memory, fds, heap, event-loop delay) to every scrape', async () => {
    const text = await new DaemonMetrics(() => STATUS).render();
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(text).toMatch(/^process_open_fds \d+/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds [\d.e-]+/m);
    expect(text).toContain('node_bao_requests_total{dm="0",type="rng"} 35');
  });

  it('takes the event-loop delay from the status’ process sample (whose monitor runs only while sampled), not from a monitor of its own', async () => {
    const delay = { windowMs: 15_000, mean: 2, min: 1, stddev: 0.5, p50: 1.5, p90: 3, p99: 12.5, max: 40 };
    const process = { rssBytes: 1, heapUsedBytes: 1, heapTotalBytes: 1, externalBytes: 1, openFds: 1, eventLoopDelayMs: delay };
    const text = await new DaemonMetrics(() => ({ ...STATUS, process })).render();
    expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds 0\.0125$/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_max_seconds 0\.04$/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_p50_seconds 0\.0015$/m);
    expect(text.match(/^# TYPE nodejs_eventloop_lag_p99_seconds/gm)).toHaveLength(1);
    // The first sample after a quiet spell has no figures: zeros, not a stale histogram's.
    const quiet = await new DaemonMetrics(() => ({ ...STATUS, process: { ...process, eventLoopDelayMs: { ...delay, windowMs: 0 } } })).render();
    expect(quiet).toMatch(/^nodejs_eventloop_lag_p99_seconds 0$/m);
  });
});

describe('lazyDaemonMetrics (prom-client loaded on the first scrape)', () => {
  it('renders what DaemonMetrics renders, with its content type, from the status of each scrape', async () => {
    let uptimeMs = 1000;
    const lazy = lazyDaemonMetrics(() => ({ ...STATUS, uptimeMs }));
    expect(lazy.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const first = await lazy.render();
    expect(first).toMatch(/node_bao_uptime_seconds 1\b/);
    expect(first).toMatch(/node_bao_requests_total\{dm="0",type="rng"\} 35/);
    expect(lazy.contentType).toBe(new DaemonMetrics(() => STATUS, { processMetrics: false }).contentType);
    uptimeMs = 2000;
    expect(await lazy.render()).toMatch(/node_bao_uptime_seconds 2\b/);
  });
});
