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
}

export interface ShutdownReport {
  readonly closed: readonly DeviceRef[];
  readonly failed: readonly { readonly device: DeviceRef; readonly error: unknown }[];
}

interface RunningDevice {
  readonly ref: DeviceRef;
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

export class Daemon {
  private stopping: Promise<ShutdownReport> | undefined;
  /** Settles with the first device that stopped serving by itself. */
  readonly deviceStopped: Promise<DeviceStoppedError>;

  private constructor(
    private readonly running: readonly RunningDevice[],
    private readonly options: DaemonOptions,
  ) {
    this.deviceStopped = new Promise<DeviceStoppedError>((resolve) => {
      for (const d of running) {
        d.served.stopped?.then(
          () => resolve(new DeviceStoppedError(d.ref, {})),
          (cause: unknown) => resolve(new DeviceStoppedError(d.ref, { cause })),
        );
      }
    });
  }

  get devices(): readonly DeviceRef[] {
    return this.running.map((d) => d.ref);
  }

  /** Each device's counters now, in config order (`baoctl status`). */
  deviceStatus(): DeviceStatus[] {
    return this.running.map((d) => {
      const deviceModel = d.served.snapshot?.();
      const metrics = d.built.metrics?.();
      return {
        ...d.ref,
        mmioAddr: `0x${d.mmioAddr.toString(16)}`,
        ...(deviceModel === undefined ? {} : { deviceModel }),
        ...(metrics === undefined ? {} : { metrics }),
      };
    });
  }

  private get timeoutMs(): number {
    return this.options.shutdownTimeoutMs ?? this.options.config.shutdownTimeoutMs;
  }

  /**
   * Builds and opens every device in config order. Throws DeviceOpenError after closing what
   * was opened; nothing is left half-started.
   */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const { config, factory, builders, log } = options;
    const running: RunningDevice[] = [];
    const timeoutMs = options.shutdownTimeoutMs ?? config.shutdownTimeoutMs;
    for (const entry of config.devices) {
      const ref = refOf(entry);
      const deviceLog = log.child({ device: entry.id, type: entry.type });
      let built: BuiltDevice | undefined;
      try {
        const build = builderFor(builders, entry);
        if (build === undefined) throw new ComponentUnavailableError('DATA_PLANE_UNAVAILABLE', `no builder serves ${entry.type} over ${entry.dataPlane}`);
        built = await build(entry, { ...options.context, log: deviceLog });
        const served = await factory.open({ entry, device: built.device, log: deviceLog.child({ module: 'dm' }) });
        running.push({ ref, mmioAddr: entry.mmioAddr, built, served });
        log.info(
          { device: ref, mmio: `0x${entry.mmioAddr.toString(16)}` },
          `${describeDevice(ref)}: serving at 0x${entry.mmioAddr.toString(16)}`,
        );
      } catch (cause) {
        const error = new DeviceOpenError(ref, fieldOf(cause), { cause });
        log.error({ device: ref, err: cause }, error.message);
        const partial = built === undefined ? [] : [{ ref, built }];
        try {
          await closeAll(running, partial, timeoutMs, log);
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
