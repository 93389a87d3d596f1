// ProcessSampler: the daemon's own figures for `baoctl status` and /metrics. The event-loop delay
// monitor is a 10 ms timer, so it runs only while somebody samples: a sample starts it for a
// window, samples within the window keep it running, and a daemon nobody asks stops paying.

import type { IntervalHistogram } from 'node:perf_hooks';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { ProcessSampler } from '../../../lib/vmm/process-stats.js';

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(0);
});
afterEach(() => {
  vi.useRealTimers();
});

/** A histogram whose figures the test sets, and which says whether it is enabled. */
function fakeMonitor() {
  const h = {
    enabled: false,
    enables: 0,
    count: 0,
    mean: 0,
    min: 0,
    max: 0,
    stddev: 0,
    enable(): boolean {
      if (h.enabled) return false;
      h.enabled = true;
      h.enables += 1;
      return true;
    },
    disable(): boolean {
      const was = h.enabled;
      h.enabled = false;
      return was;
    },
    reset(): void {
      h.count = 0;
    },
    percentile(p: number): number {
      return h.max * (p / 100);
    },
  };
  return h;
}

function sampler(windowMs = 60_000) {
  const monitor = fakeMonitor();
  let resolution = 0;
  const s = new ProcessSampler({
    windowMs,
    monitor: (r) => {
      resolution = r;
      return monitor as unknown as IntervalHistogram;
    },
  });
  return { s, monitor, resolution: () => resolution };
}

describe('ProcessSampler', () => {
  it('runs no monitor until somebody samples: an unscraped daemon has no 10 ms timer', () => {
    const { s, monitor, resolution } = sampler();
    expect(resolution()).toBe(10);
    vi.advanceTimersByTime(600_000);
    expect(monitor.enabled).toBe(false);
    expect(s.monitoring).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('the first sample starts the monitor and has no delay figures yet (windowMs 0); the next covers the time since', () => {
    const { s, monitor } = sampler();
    const first = s.sample();
    expect(first.eventLoopDelayMs).toMatchObject({ windowMs: 0, p99: 0, max: 0 });
    expect(first.rssBytes).toBeGreaterThan(0);
    expect(monitor.enabled).toBe(true);
    vi.advanceTimersByTime(15_000);
    Object.assign(monitor, { count: 1500, mean: 2e6, min: 1e6, max: 40e6, stddev: 1e6 });
    const second = s.sample().eventLoopDelayMs;
    expect(second).toMatchObject({ windowMs: 15_000, mean: 2, min: 1, max: 40, p99: 39.6 });
    expect(monitor.count).toBe(0); // reset: the next sample covers the next span only
  });

  it('keeps the monitor running while samples come within the window, and stops it one window after the last', () => {
    const { s, monitor } = sampler(60_000);
    s.sample();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(30_000); // a Prometheus scrape every 30 s
      s.sample();
      expect(monitor.enabled).toBe(true);
    }
    expect(monitor.enables).toBe(1);
    vi.advanceTimersByTime(59_999);
    expect(monitor.enabled).toBe(true);
    vi.advanceTimersByTime(1);
    expect(monitor.enabled).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    // A later sample starts it again, without figures for the quiet spell.
    expect(s.sample().eventLoopDelayMs.windowMs).toBe(0);
    expect(monitor.enabled).toBe(true);
  });

  it('close() stops the monitor and its timer', () => {
    const { s, monitor } = sampler();
    s.sample();
    s.close();
    expect(monitor.enabled).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('measures with the real perf_hooks monitor', () => {
    vi.useRealTimers();
    const s = new ProcessSampler({ windowMs: 1000 });
    s.sample();
    expect(s.monitoring).toBe(true);
    const d = s.sample().eventLoopDelayMs;
    expect(d.windowMs).toBeGreaterThanOrEqual(0);
    expect(d.p99).toBeGreaterThanOrEqual(0);
    s.close();
    expect(s.monitoring).toBe(false);
  });
});
