// The daemon's counters in Prometheus' text format (GET /metrics on the status socket, and on
// `--metrics-listen host:port` for a Prometheus server to scrape). Built with prom-client, the
// Node.js Prometheus client, from one DaemonStatus snapshot per scrape, so that every value of
// a scrape belongs to the same instant. Device-specific counters (rng bytes, console tx bytes...)
// become node_bao_<type>_<name>_total without a table to keep in step.

import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

import type { EventLoopDelay } from './process-stats.js';
import type { DaemonStatus, DeviceStatus } from './status.js';

/** A monitor period (ms, the largest a libuv timer takes) that never comes: prom-client's own monitor stays silent. */
const NEVER_MS = 2 ** 31 - 1;

/** prom-client's perf_hooks event-loop metrics, fed from the ProcessSampler instead. */
const LAG_FIGURES: readonly (readonly [keyof EventLoopDelay, string])[] = (['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'] as const).map((f) => [f, `nodejs_eventloop_lag_${f}_seconds`] as const);

const DEVICE_LABELS = ['dm', 'type'] as const;
const QUEUE_LABELS = ['dm', 'type', 'queue'] as const;

/** Per-queue transport counters (arrays indexed by queue): metric name, help, transport key. */
const QUEUE_COUNTERS: readonly (readonly [name: string, help: string, key: string])[] = [
  ['node_bao_queue_kicks_total', 'Kicks delivered to the device, by queue', 'notifiesByQueue'],
  ['node_bao_queue_used_interrupts_total', 'Used-buffer interrupts raised, by the queue that raised them', 'usedInterruptsByQueue'],
  ['node_bao_queue_used_suppressed_total', 'Used-buffer publications the driver asked not to be interrupted for, by queue', 'usedSuppressedByQueue'],
];

/** Transport and server counters every device model has: metric name, help, where it comes from. */
const MODEL_COUNTERS: readonly (readonly [name: string, help: string, value: (d: DeviceStatus) => unknown])[] = [
  ['node_bao_requests_total', 'Trapped register accesses answered (ATTACH/COMPLETE)', (d) => d.deviceModel?.server.requests],
  ['node_bao_stray_accesses_total', 'Accesses outside the device window, answered 0', (d) => d.deviceModel?.server.strayAccesses],
  ['node_bao_rejected_completions_total', 'COMPLETEs the hypervisor refused', (d) => d.deviceModel?.server.rejectedCompletions],
  ['node_bao_ioeventfd_kicks_total', 'Queue kicks that arrived through an ioeventfd', (d) => d.deviceModel?.server.ioeventfdKicks],
  ['node_bao_queue_notifies_total', 'Queue notifications delivered to the device', (d) => d.deviceModel?.transport.notifies],
  ['node_bao_missed_kicks_total', 'Queues served by the kick watchdog: buffers no due kick announced', (d) => d.deviceModel?.transport.missedKicks],
  ['node_bao_used_interrupts_total', 'Used-buffer interrupts raised through the irqfd', (d) => d.deviceModel?.transport.usedInterrupts],
  ['node_bao_config_interrupts_total', 'Configuration-change interrupts raised', (d) => d.deviceModel?.transport.configInterrupts],
  ['node_bao_device_activations_total', 'Times the driver set DRIVER_OK', (d) => d.deviceModel?.transport.activations],
  ['node_bao_device_resets_total', 'Times the driver reset the device', (d) => d.deviceModel?.transport.resets],
  ['node_bao_needs_reset_total', 'Times the device entered DEVICE_NEEDS_RESET', (d) => d.deviceModel?.transport.needsReset],
  ['node_bao_bad_ops_total', 'Requests with an op other than read or write, answered 0', (d) => d.deviceModel?.server.badOps],
  ['node_bao_handler_errors_total', 'Errors while an access or kick was handled (the device went to NEEDS_RESET)', (d) => d.deviceModel?.server.handlerErrors],
  ['node_bao_reset_timeouts_total', 'Device resets that did not finish in time', (d) => d.deviceModel?.server.resetTimeouts],
  ['node_bao_request_yields_total', 'Bursts of trapped accesses cut into slices, yielding to the other device models', (d) => d.deviceModel?.server.requestYields],
];

function snake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[^A-Za-z0-9_]/g, '_').toLowerCase();
}

function asCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly counters = new Map<string, Counter<string>>();
  private readonly up: Gauge<string>;
  private readonly uptime: Gauge<string>;
  private readonly driverOk: Gauge<string>;
  private readonly needsReset: Gauge<string>;
  private readonly faults: Counter<string>;
  /** prom-client's process and Node.js metrics, when sampled. */
  private readonly processRegistry: Registry | undefined;
  /** nodejs_eventloop_lag_<figure>_seconds, from the status' ProcessSampler (see below). */
  private readonly lag = new Map<keyof EventLoopDelay, Gauge<string>>();

  constructor(
    private readonly status: () => DaemonStatus,
    options: { readonly processMetrics?: boolean } = {},
  ) {
    const registers = [this.registry];
    this.up = new Gauge({ name: 'node_bao_up', help: '1 while the daemon serves (0 while starting or stopping)', registers });
    this.uptime = new Gauge({ name: 'node_bao_uptime_seconds', help: 'Seconds since the daemon started', registers });
    this.driverOk = new Gauge({ name: 'node_bao_device_driver_ok', help: '1 when the frontend driver has set DRIVER_OK', labelNames: DEVICE_LABELS, registers });
    this.needsReset = new Gauge({ name: 'node_bao_device_needs_reset', help: '1 while the device is in DEVICE_NEEDS_RESET', labelNames: DEVICE_LABELS, registers });
    this.faults = new Counter({ name: 'node_bao_guest_faults_total', help: 'Bad frontend register accesses, ignored and counted, by kind', labelNames: [...DEVICE_LABELS, 'code'], registers });
    for (const [name, help] of MODEL_COUNTERS) this.counter(name, help, DEVICE_LABELS);
    // prom-client's process and Node.js metrics: process_resident_memory_bytes, process_open_fds,
    // nodejs_heap_size_used_bytes, nodejs_eventloop_lag_p99_seconds (perf_hooks), GC times...
    // They keep their own registry: the per-scrape reset below must not clear what they accumulate.
    if (options.processMetrics !== false) {
      this.processRegistry = new Registry();
      // prom-client's event-loop figures come from a perf_hooks monitor it enables at once and
      // never stops: a 10 ms timer for the rest of the process after one scrape. Its monitor is
      // given a period it never reaches, and the figures come from the status' ProcessSampler,
      // whose monitor runs only while somebody samples (lib/vmm/process-stats.ts); the names stay.
      collectDefaultMetrics({ register: this.processRegistry, eventLoopMonitoringPrecision: NEVER_MS });
      for (const [figure, name] of LAG_FIGURES) {
        this.processRegistry.removeSingleMetric(name);
        this.lag.set(figure, new Gauge({ name, help: `Event-loop delay since the previous sample, ${figure}, in seconds (0 on the first scrape after a quiet spell: the monitor was not running)`, registers }));
      }
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The metrics text for one scrape. */
  async render(): Promise<string> {
    const s = this.status();
    this.registry.resetMetrics();
    this.up.set(s.state === 'serving' ? 1 : 0);
    this.uptime.set(s.uptimeMs / 1000);
    const delay = s.process?.eventLoopDelayMs;
    if (delay !== undefined && delay.windowMs > 0) for (const [figure, gauge] of this.lag) gauge.set(delay[figure] / 1000);
    for (const d of s.devices) {
      const labels = { dm: String(d.id), type: d.type };
      const bits = new Set((d.deviceModel?.status ?? '').split('|'));
      this.driverOk.set(labels, bits.has('DRIVER_OK') ? 1 : 0);
      this.needsReset.set(labels, bits.has('DEVICE_NEEDS_RESET') ? 1 : 0);
      for (const [name, help, value] of MODEL_COUNTERS) {
        const v = asCount(value(d));
        if (v !== undefined) this.counter(name, help, DEVICE_LABELS).inc(labels, v);
      }
      const faults = d.deviceModel?.transport.faults;
      if (faults !== null && typeof faults === 'object') {
        for (const [code, count] of Object.entries(faults)) {
          const v = asCount(count);
          if (v !== undefined) this.faults.inc({ ...labels, code }, v);
        }
      }
      for (const [name, help, key] of QUEUE_COUNTERS) {
        const counts = d.deviceModel?.transport[key];
        if (!Array.isArray(counts)) continue;
        counts.forEach((count: unknown, queue) => {
          const v = asCount(count);
          if (v !== undefined && v > 0) this.counter(name, help, QUEUE_LABELS).inc({ ...labels, queue: String(queue) }, v);
        });
      }
      for (const [key, count] of Object.entries(d.metrics ?? {})) {
        const v = asCount(count);
        if (v === undefined) continue;
        const name = `node_bao_${snake(d.type)}_${snake(key)}_total`;
        this.counter(name, `${d.type} device counter ${key}`, DEVICE_LABELS).inc(labels, v);
      }
    }
    const devices = await this.registry.metrics();
    return this.processRegistry === undefined ? devices : `${devices}\n${await this.processRegistry.metrics()}`;
  }

  private counter(name: string, help: string, labelNames: readonly string[]): Counter<string> {
    let c = this.counters.get(name);
    if (c === undefined) {
      c = new Counter({ name, help, labelNames, registers: [this.registry] });
      this.counters.set(name, c);
    }
    return c;
  }
}
