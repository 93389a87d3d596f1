// The daemon lifecycle: build every configured device, open its device model, serve until told
// to stop, then drain and close within a timeout. Opening is all-or-nothing: if any device fails,
// everything opened before it is closed again (newest first) and the error names the device and,
// when known, the config key at fault. Init (Daemon.start) is apart from run (serve), and
// shutdown is driven by an AbortSignal, as in lodestar's beacon command (STYLE.md guideline 14).

import type { Logger } from '../virtio/logger.js';
import type { DaemonConfig, DeviceConfig } from './config/types.js';
import { builderFor, type BuildContext, type BuiltDevice, type DeviceBuilders } from './device-builder.js';
import type { DeviceModelFactory, ServedDevice } from './device-model.js';
import type { DeviceStatus } from './status.js';
import { planReload } from './reload-plan.js';
import {
  ComponentUnavailableError,
  DeviceOpenError,
  DeviceStoppedError,
  type DeviceRef,
  ShutdownTimeoutError,
  causeMessage,
  describeDevice,
} from './errors.js';

export interface DaemonOptions {
  readonly config: DaemonConfig;
  readonly factory: DeviceModelFactory;
  readonly builders: DeviceBuilders;
  readonly log: Logger;
  /** Passed to builders (PTY opener, stdio streams); `log` is filled in per device. */
  readonly context?: Omit<BuildContext, 'log'>;
  /** Overrides config.shutdownTimeoutMs. */
  readonly shutdownTimeoutMs?: number;
  /**
   * The logger without a `module` binding, from which each device's loggers are made
   * (`{ module: 'dm' | <type>, device, type }`), so a JSON line carries `module` once.
   * Default: `log` (whose own bindings the device loggers then inherit).
   */
  readonly rootLog?: Logger;
}

export interface ShutdownReport {
  readonly closed: readonly DeviceRef[];
  readonly failed: readonly { readonly device: DeviceRef; readonly error: unknown }[];
}

interface RunningDevice {
  readonly ref: DeviceRef;
  /** The config entry it was opened from (a reload keeps it running when the entry is unchanged). */
  readonly entry: DeviceConfig;
  readonly mmioAddr: bigint;
  readonly built: BuiltDevice;
  readonly served: ServedDevice;
}

function refOf(entry: DeviceConfig): DeviceRef {
  return { index: entry.index, id: entry.id, type: entry.type };
}

function fieldOf(err: unknown): string | undefined {
  const field = (err as { field?: unknown } | null)?.field;
  return typeof field === 'string' ? field : undefined;
}

/** Closes `devices` (all at once) within `timeoutMs`; never throws except ShutdownTimeoutError. */
async function closeAll(
  devices: readonly RunningDevice[],
  partial: readonly { ref: DeviceRef; built: BuiltDevice }[],
  timeoutMs: number,
  log: Logger,
): Promise<ShutdownReport> {
  const closed: DeviceRef[] = [];
  const failed: { device: DeviceRef; error: unknown }[] = [];
  const pending = new Set<DeviceRef>();

  const closeOne = async (ref: DeviceRef, served: ServedDevice | undefined, built: BuiltDevice): Promise<void> => {
    pending.add(ref);
    let error: unknown;
    // The device model first: it stops new requests and drains in-flight ones that may still
    // write through the device to its backend; only then is the backend closed.
    if (served !== undefined) {
      try {
        await served.close();
      } catch (err) {
        error = err;
      }
    }
    try {
      await built.close();
    } catch (err) {
      error ??= err;
    }
    pending.delete(ref);
    if (error === undefined) {
      closed.push(ref);
      log.debug({ device: ref }, 'device closed');
    } else {
      failed.push({ device: ref, error });
      log.error({ device: ref, err: error }, `${describeDevice(ref)}: close failed: ${causeMessage(error)}`);
    }
  };

  const all = Promise.all([
    ...[...devices].reverse().map((d) => closeOne(d.ref, d.served, d.built)),
    ...partial.map((p) => closeOne(p.ref, undefined, p.built)),
  ]);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const outcome = await Promise.race([all.then(() => 'done' as const), timeout]);
    if (outcome === 'timeout') throw new ShutdownTimeoutError(timeoutMs, [...pending]);
  } finally {
    clearTimeout(timer);
  }
  return { closed, failed };
}

/** Builds and opens one device; on failure releases what it built and throws DeviceOpenError. */
async function openDevice(entry: DeviceConfig, options: DaemonOptions): Promise<RunningDevice> {
  const { factory, builders, log } = options;
  const ref = refOf(entry);
  const base = options.rootLog ?? log;
  const bindings = { device: entry.id, type: entry.type };
  let built: BuiltDevice | undefined;
  try {
    // Builders name their own module (e.g. `rng`).
    const build = builderFor(builders, entry);
    if (build === undefined) throw new ComponentUnavailableError('DATA_PLANE_UNAVAILABLE', `no builder serves ${entry.type} over ${entry.dataPlane}`);
    built = await build(entry, { ...options.context, log: base.child(bindings) });
    const served = await factory.open({ entry, device: built.device, log: base.child({ module: 'dm', ...bindings }) });
    log.info(
      { device: ref, mmio: `0x${entry.mmioAddr.toString(16)}` },
      `${describeDevice(ref)}: serving at 0x${entry.mmioAddr.toString(16)}`,
    );
    return { ref, mmioAddr: entry.mmioAddr, built, served, entry };
  } catch (cause) {
    const error = new DeviceOpenError(ref, fieldOf(cause), { cause });
    // An error with a code is an expected condition (no Bao driver here, no such DM, no
    // permission) whose message says what to do: logged once, without a stack trace.
    const code = (cause as { code?: unknown } | null)?.code;
    log.error(typeof code === 'string' ? { device: ref, code } : { device: ref, err: cause }, error.message);
    if (built !== undefined) await built.close().catch((err: unknown) => log.error({ err }, `${describeDevice(ref)}: close failed: ${causeMessage(err)}`));
    throw error;
  }
}

export class Daemon {
  private stopping: Promise<ShutdownReport> | undefined;
  private reloading: Promise<ReloadReport> = Promise.resolve({ kept: [], started: [], stopped: [], failed: [] });
  private onDeviceStopped!: (err: DeviceStoppedError) => void;
  private readonly running: RunningDevice[];
  private config: DaemonConfig;
  /** Settles with the first device that stopped serving by itself. */
  readonly deviceStopped: Promise<DeviceStoppedError>;

  private constructor(
    running: readonly RunningDevice[],
    private readonly options: DaemonOptions,
  ) {
    this.running = [...running];
    this.config = options.config;
    this.deviceStopped = new Promise<DeviceStoppedError>((resolve) => {
      this.onDeviceStopped = resolve;
    });
    for (const d of running) this.watch(d);
  }

  private watch(d: RunningDevice): void {
    d.served.stopped?.then(
      () => {
        if (this.running.includes(d)) this.onDeviceStopped(new DeviceStoppedError(d.ref, {}));
      },
      (cause: unknown) => {
        if (this.running.includes(d)) this.onDeviceStopped(new DeviceStoppedError(d.ref, { cause }));
      },
    );
  }

  /**
   * Applies a new, already validated config (SIGHUP): devices whose entry is unchanged keep
   * running untouched; removed ones drain and stop; added ones, and changed ones (stopped
   * first), start. A device that fails to start is reported and the others still apply.
   * Reloads run one at a time.
   */
  reload(config: DaemonConfig): Promise<ReloadReport> {
    const next = this.reloading.then(() => this.applyReload(config));
    this.reloading = next.catch(() => ({ kept: [], started: [], stopped: [], failed: [] }));
    return next;
  }

  private async applyReload(config: DaemonConfig): Promise<ReloadReport> {
    if (this.stopping !== undefined) throw new Error('the daemon is shutting down');
    const { log } = this.options;
    const plan = planReload(
      this.running.map((d) => d.entry),
      config.devices,
    );
    const leaving = this.running.filter((d) => plan.stop.includes(d.entry));
    for (const d of leaving) this.running.splice(this.running.indexOf(d), 1);
    const stopped: DeviceRef[] = [];
    const failed: { device: DeviceRef; error: unknown }[] = [];
    if (leaving.length > 0) {
      const report = await closeAll(leaving, [], config.shutdownTimeoutMs, log);
      stopped.push(...report.closed);
      failed.push(...report.failed);
    }
    this.config = config;
    const started: DeviceRef[] = [];
    for (const entry of plan.start) {
      try {
        const d = await openDevice(entry, { ...this.options, config });
        this.running.push(d);
        this.watch(d);
        started.push(d.ref);
      } catch (error) {
        failed.push({ device: refOf(entry), error });
      }
    }
    // Config order, as `baoctl status` lists them.
    const order = new Map(config.devices.map((e, i) => [e.id, i]));
    this.running.sort((a, b) => (order.get(a.ref.id) ?? 0) - (order.get(b.ref.id) ?? 0));
    const kept = this.running.filter((d) => plan.keep.includes(d.entry)).map((d) => d.ref);
    log.info(
      { kept: kept.length, started: started.length, stopped: stopped.length, failed: failed.length },
      `reloaded: ${kept.length} kept, ${started.length} started, ${stopped.length} stopped${failed.length > 0 ? `, ${failed.length} failed` : ''}`,
    );
    return { kept, started, stopped, failed };
  }

  get devices(): readonly DeviceRef[] {
    return this.running.map((d) => d.ref);
  }

  /** Each device's counters now, in config order (`baoctl status`). */
  deviceStatus(): DeviceStatus[] {
    return this.running.map((d) => {
      const deviceModel = d.served.snapshot?.();
      const metrics = d.built.metrics?.();
      const info = d.built.describe?.();
      return {
        ...d.ref,
        mmioAddr: `0x${d.mmioAddr.toString(16)}`,
        ...(deviceModel === undefined ? {} : { deviceModel }),
        ...(metrics === undefined ? {} : { metrics }),
        ...(info === undefined ? {} : { info }),
      };
    });
  }

  /**
   * Completes every trapped access still unanswered on every device model (with 0); the last
   * resort before the process exits. Never throws; returns how many were completed.
   */
  completePending(): number {
    let count = 0;
    for (const d of this.running) {
      try {
        count += d.served.completePending?.() ?? 0;
      } catch (err) {
        this.options.log.error({ err, device: d.ref }, `${describeDevice(d.ref)}: completing pending accesses failed`);
      }
    }
    return count;
  }

  private get timeoutMs(): number {
    return this.options.shutdownTimeoutMs ?? this.config.shutdownTimeoutMs;
  }

  /**
   * Builds and opens every device in config order. Throws DeviceOpenError after closing what
   * was opened; nothing is left half-started.
   */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const { config, factory, log } = options;
    const running: RunningDevice[] = [];
    const timeoutMs = options.shutdownTimeoutMs ?? config.shutdownTimeoutMs;
    for (const entry of config.devices) {
      try {
        running.push(await openDevice(entry, options));
      } catch (error) {
        try {
          await closeAll(running, [], timeoutMs, log);
        } catch (closeErr) {
          log.error({ err: closeErr }, `while undoing a failed start: ${causeMessage(closeErr)}`);
        }
        await factory.close?.().catch((err: unknown) => log.error({ err }, `closing the device-model factory: ${causeMessage(err)}`));
        throw error;
      }
    }
    return new Daemon(running, options);
  }

  /**
   * Drains and closes every device (newest first in logs, concurrently in time) and then the
   * factory. Idempotent: later calls return the first call's result. Rejects with
   * ShutdownTimeoutError when the timeout passes.
   */
  stop(reason = 'requested'): Promise<ShutdownReport> {
    this.stopping ??= (async () => {
      const { log, factory } = this.options;
      log.info({ reason }, `shutting down (${reason})`);
      try {
        return await closeAll(this.running, [], this.timeoutMs, log);
      } finally {
        await factory.close?.().catch((err: unknown) => log.error({ err }, `closing the device-model factory: ${causeMessage(err)}`));
      }
    })();
    return this.stopping;
  }
}

export interface ReloadReport {
  readonly kept: readonly DeviceRef[];
  readonly started: readonly DeviceRef[];
  readonly stopped: readonly DeviceRef[];
  readonly failed: readonly { readonly device: DeviceRef; readonly error: unknown }[];
}

export interface ServeResult extends ShutdownReport {
  /** Set when serving ended because a device stopped by itself rather than by the signal. */
  readonly stoppedBy?: DeviceStoppedError;
}

/**
 * Starts the daemon, serves until `signal` aborts (SIGINT/SIGTERM in `baoctl run`) or a device
 * stops by itself, then shuts down. Throws DeviceOpenError (start) or ShutdownTimeoutError.
 */
export async function serve(
  options: DaemonOptions & { readonly signal: AbortSignal; readonly onStarted?: (daemon: Daemon) => void },
): Promise<ServeResult> {
  const { signal, log } = options;
  const daemon = await Daemon.start(options);
  options.onStarted?.(daemon);
  log.info({ devices: daemon.devices.length }, `serving ${daemon.devices.length} device(s)`);

  const aborted = new Promise<'abort'>((resolve) => {
    if (signal.aborted) resolve('abort');
    else signal.addEventListener('abort', () => resolve('abort'), { once: true });
  });
  const outcome = await Promise.race([aborted, daemon.deviceStopped]);
  if (outcome === 'abort') {
    const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? 'aborted');
    return daemon.stop(reason);
  }
  log.error({ err: outcome.cause, device: outcome.device }, outcome.message);
  const report = await daemon.stop(outcome.message);
  return { ...report, stoppedBy: outcome };
}
