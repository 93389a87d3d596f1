// `baoctl run <config.yaml>`: load and validate the config, build the root logger, open every
// device model through a DeviceModelFactory and serve until SIGINT or SIGTERM, then drain and
// close. The factory is injectable; by default it comes from lib/vmm/bao-device-model-factory.js, loaded
// lazily so that a machine without the addon can still run `--help` and `config check`.
//
// Exit codes: 0 after a clean shutdown on a signal; 1 when the config is bad, a device cannot be
// opened (nothing stays open), a device stops serving by itself, or shutdown fails or times out;
// 2 when no config file was given.

import type { Logger } from '../../../virtio/logger.js';
import { loadConfig, type LoadConfigOptions, type ValidatedConfig } from '../../../vmm/config/index.js';
import { serve, type Daemon } from '../../../vmm/daemon.js';
import type { BuildContext, DeviceBuilders } from '../../../vmm/device-builder.js';
import { defaultDeviceBuilders } from '../../../vmm/device-builders.js';
import type { DeviceModelFactory, DeviceModelFactoryModule } from '../../../vmm/device-model.js';
import { ComponentUnavailableError, ConfigInvalidError, VmmError, causeMessage, formatIssue } from '../../../vmm/errors.js';
import { createRootLogger, type LoggerOptions } from '../../../vmm/logger.js';
import { defaultPtyOpener } from '../../../vmm/pty-opener.js';
import { tapSyscalls } from '../../../dispatcher/tap-syscalls.js';
import type { DaemonStatus } from '../../../vmm/status.js';
import { DaemonMetrics } from '../../../vmm/metrics.js';
import { openMetricsListener, openStatusServer, parseListenAddress, type StatusServer } from '../../../vmm/status-server.js';
import type { Output } from '../../io.js';
import type { RunArgs } from './options.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** The part of `process` the command needs for signals; injectable for tests. */
export interface SignalSource {
  on(signal: 'SIGINT' | 'SIGTERM', listener: () => void): unknown;
  off(signal: 'SIGINT' | 'SIGTERM', listener: () => void): unknown;
}

export interface RunIo {
  readonly err?: Output;
  readonly readFile?: LoadConfigOptions['readFile'];
  /** Where logs go (default stderr). */
  readonly logDestination?: LoggerOptions['destination'];
  readonly env?: NodeJS.ProcessEnv;
  /** The device-model factory, or how to get it; default: lib/vmm/bao-device-model-factory.js. */
  readonly factory?: DeviceModelFactory | ((log: Logger) => Promise<DeviceModelFactory>);
  readonly builders?: DeviceBuilders;
  readonly context?: Omit<BuildContext, 'log'>;
  readonly signals?: SignalSource;
  /** Aborts serving like a signal would (tests, embedding). */
  readonly signal?: AbortSignal;
  /** The status socket when --status-socket is not given (the CLI: /run/node-bao/status.sock); default none. */
  readonly defaultStatusSocket?: string;
}

/** Module path relative to this file, as in both lib/ (vitest) and dist/ (compiled). */
const FACTORY_MODULE = '../../../vmm/bao-device-model-factory.js';

export async function loadDefaultFactory(log: Logger, specifier: string = FACTORY_MODULE): Promise<DeviceModelFactory> {
  let mod: Partial<DeviceModelFactoryModule>;
  try {
    mod = (await import(specifier)) as Partial<DeviceModelFactoryModule>;
  } catch (cause) {
    // Only the factory module itself missing means "not built yet"; a failure inside it is reported as is.
    const missing = /Cannot find module '[^']*bao-device-model-factory\.js'/.test(String((cause as Error).message));
    throw new ComponentUnavailableError(
      'DEVICE_MODEL_FACTORY_UNAVAILABLE',
      missing
        ? 'this build has no device-model factory (lib/vmm/bao-device-model-factory.js is missing), so it cannot serve devices yet; `baoctl config check` works'
        : `cannot load the device-model factory (lib/vmm/bao-device-model-factory.js): ${causeMessage(cause)}`,
      { cause },
    );
  }
  if (typeof mod.createDeviceModelFactory !== 'function') {
    throw new ComponentUnavailableError(
      'DEVICE_MODEL_FACTORY_UNAVAILABLE',
      'lib/vmm/bao-device-model-factory.js does not export createDeviceModelFactory(options)',
    );
  }
  return mod.createDeviceModelFactory({ log });
}

/** Returns the exit code. */
export async function runDaemonCommand(args: RunArgs, io: RunIo = {}): Promise<number> {
  const err = io.err ?? process.stderr;
  const file = args.config ?? args.file;
  if (file === undefined) {
    err.write('baoctl run: give a config file: baoctl run <config.yaml> (or -c/--config <config.yaml>)\n');
    return EXIT_USAGE;
  }
  if (args.config !== undefined && args.file !== undefined && args.config !== args.file) {
    err.write(`baoctl run: two config files given (${args.file} and --config ${args.config}); give one\n`);
    return EXIT_USAGE;
  }

  const metricsAddress = args.metricsListen === undefined ? undefined : parseListenAddress(args.metricsListen);
  if (args.metricsListen !== undefined && metricsAddress === undefined) {
    err.write(`baoctl run: --metrics-listen: expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464, got '${args.metricsListen}'\n`);
    return EXIT_USAGE;
  }

  let validated: ValidatedConfig;
  try {
    validated = await loadConfig(file, io.readFile === undefined ? {} : { readFile: io.readFile });
  } catch (e) {
    if (e instanceof ConfigInvalidError) {
      err.write(`${file}: ${e.issues.length} error(s)\n`);
      for (const issue of e.issues) err.write(`  error: ${formatIssue(issue)}\n`);
      return EXIT_FAILURE;
    }
    if (e instanceof VmmError) {
      err.write(`${e.message}\n`);
      return EXIT_FAILURE;
    }
    throw e;
  }
  const { config, warnings } = validated;

  let root;
  try {
    root = createRootLogger({
      level: args.logLevel,
      format: args.logFormat,
      defaultLevel: config.log.level,
      defaultFormat: config.log.format,
      ...(io.logDestination === undefined ? {} : { destination: io.logDestination }),
      ...(io.env === undefined ? {} : { env: io.env }),
    });
  } catch (e) {
    err.write(`baoctl run: ${causeMessage(e)}\n`);
    return EXIT_USAGE;
  }
  const log: Logger = root.child({ module: 'daemon' });
  for (const w of warnings) log.warn({ field: w.field }, `config: ${formatIssue(w)}`);
  log.info({ config: file, devices: config.devices.length }, `starting with ${file}`);

  const controller = new AbortController();
  const signals = io.signals ?? process;
  const onSignal = (name: 'SIGINT' | 'SIGTERM') => () => {
    if (controller.signal.aborted) {
      log.warn({ signal: name }, `${name} again: still shutting down (bounded by the shutdown timeout)`);
      return;
    }
    controller.abort(new Error(name));
  };
  const onInt = onSignal('SIGINT');
  const onTerm = onSignal('SIGTERM');
  signals.on('SIGINT', onInt);
  signals.on('SIGTERM', onTerm);
  const external = io.signal;
  const onExternal = (): void => controller.abort(external?.reason ?? new Error('aborted'));
  if (external?.aborted) onExternal();
  else external?.addEventListener('abort', onExternal, { once: true });

  // The status socket first: a taken path fails the start before any device is opened.
  const statusPath = args.statusSocket ?? io.defaultStatusSocket;
  const startedAt = Date.now();
  let daemon: Daemon | undefined;
  const listeners: StatusServer[] = [];
  const status = (): DaemonStatus => ({
    pid: process.pid,
    state: daemon === undefined ? 'starting' : controller.signal.aborted ? 'stopping' : 'serving',
    config: file,
    startedAt: new Date(startedAt).toISOString(),
    uptimeMs: Date.now() - startedAt,
    devices: daemon?.deviceStatus() ?? [],
  });

  try {
    const metrics = new DaemonMetrics(status);
    if (statusPath !== undefined && statusPath !== 'none' && statusPath !== '') {
      listeners.push(await openStatusServer({ path: statusPath, status, metrics, log }));
    }
    if (metricsAddress !== undefined) listeners.push(await openMetricsListener({ ...metricsAddress, status, metrics, log }));
    let factory: DeviceModelFactory;
    try {
      factory =
        io.factory === undefined
          ? await loadDefaultFactory(root.child({ module: 'dispatcher' }))
          : typeof io.factory === 'function'
            ? await io.factory(root.child({ module: 'dispatcher' }))
            : io.factory;
    } catch (e) {
      log.error(e instanceof VmmError ? { code: e.code } : { err: e }, causeMessage(e));
      return EXIT_FAILURE;
    }
    const report = await serve({
      config,
      factory,
      builders: io.builders ?? defaultDeviceBuilders,
      log,
      context: io.context ?? { ptyOpener: defaultPtyOpener(), tapSyscalls: tapSyscalls() },
      signal: controller.signal,
      onStarted: (started) => {
        daemon = started;
      },
    });
    if (report.stoppedBy !== undefined || report.failed.length > 0) {
      log.error({ failed: report.failed.length }, 'stopped with errors');
      return EXIT_FAILURE;
    }
    log.info({}, 'stopped cleanly');
    return EXIT_OK;
  } catch (e) {
    // StatusSocketError (status socket, metrics listener), DeviceOpenError (the daemon logged its cause) or ShutdownTimeoutError.
    log.error(e instanceof VmmError ? { code: e.code } : { err: e }, causeMessage(e));
    return EXIT_FAILURE;
  } finally {
    await Promise.all(listeners.map((l) => l.close()));
    signals.off('SIGINT', onInt);
    signals.off('SIGTERM', onTerm);
    external?.removeEventListener('abort', onExternal);
    root.flush();
  }
}
