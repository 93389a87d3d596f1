// `baoctl run <config.yaml>`: load and validate the config, build the root logger, open every
// device model through a DeviceModelFactory and serve until SIGINT or SIGTERM, then drain and
// close. The factory is injectable; by default it comes from lib/vmm/bao-device-model-factory.js, loaded
// lazily so that a machine without the addon can still run `--help` and `config check`.
//
// Exit codes (exit-codes.ts): 0 after a clean shutdown on a signal; 1 when a device cannot be
// opened (nothing stays open), a device stops serving by itself, or shutdown fails or times out;
// 2 for a usage or config error: no config file, bad flags, a config that does not load. When the
// shutdown timeout passes, or an exception nobody handled reaches the top (last-resort handlers),
// every pending access is completed and the process is ended with 1 (io.exit), so that a
// supervisor can restart it.

import type { Logger } from '../../../virtio/logger.js';
import { loadConfig, type LoadConfigOptions, type ValidatedConfig } from '../../../vmm/config/index.js';
import { serve, type Daemon, type ReloadReport } from '../../../vmm/daemon.js';
import { applySocketAccess, parseSocketMode } from '../../../vmm/socket-access.js';
import { createSystemdNotifier, type DatagramSender } from '../../../vmm/systemd-notify.js';
import { openLogFile, type LogFile } from '../../../vmm/log-file.js';
import type { BuildContext, DeviceBuilders } from '../../../vmm/device-builder.js';
import { defaultDeviceBuilders } from '../../../vmm/device-builders.js';
import type { DeviceModelFactory, DeviceModelFactoryModule } from '../../../vmm/device-model.js';
import { ComponentUnavailableError, ConfigInvalidError, DeviceOpenError, ShutdownTimeoutError, VmmError, causeMessage, formatIssue } from '../../../vmm/errors.js';
import { createRootLogger, type LoggerOptions } from '../../../vmm/logger.js';
import { defaultBlockHost } from '../../../vmm/block-host.js';
import { defaultPtyOpener } from '../../../vmm/pty-opener.js';
import { tapSyscalls } from '../../../dispatcher/tap-syscalls.js';
import type { DaemonStatus } from '../../../vmm/status.js';
import { loadAddon } from '../../../native.js';
import { lazyDaemonMetrics } from '../../../vmm/lazy-metrics.js';
import { ProcessSampler } from '../../../vmm/process-stats.js';
import { installLastResort, type LastResortTarget } from '../../../vmm/last-resort.js';
import { TraceHub } from '../../../vmm/trace/hub.js';
import { openMetricsListener, openStatusServer, parseListenAddress, type StatusServer } from '../../../vmm/status-server.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../../exit-codes.js';
import type { Output } from '../../io.js';
import type { RunArgs } from './options.js';
import { setupKeptFds } from '../../../vmm/restart/setup.js';
import type { KeptFds } from '../../../vmm/restart/kept-fds.js';
import { openHandoverServer, restartSocketPath, takeOver, type HandoverServer } from '../../../vmm/restart/handover.js';
import { markStartup, startupMarks } from '../../../vmm/startup-timing.js';
import { helperThreadsAtEntry } from '../../../vmm/runtime-threads.js';

export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../../exit-codes.js';

/** The part of `process` the command needs for signals; injectable for tests. */
export interface SignalSource {
  on(signal: 'SIGINT' | 'SIGTERM' | 'SIGHUP', listener: () => void): unknown;
  off(signal: 'SIGINT' | 'SIGTERM' | 'SIGHUP', listener: () => void): unknown;
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
  /**
   * Where the last-resort handlers go (the CLI: `process`): an uncaught exception or unhandled
   * rejection completes every pending access, logs and exits 1. Default none (tests, embedding).
   */
  readonly lastResort?: LastResortTarget;
  /**
   * Ends the process (the CLI: process.exit). Called when the shutdown timeout passed (what is
   * still closing would keep the process alive) and by the last-resort handlers. Default none.
   */
  readonly exit?: (code: number) => void;
  /** How systemd notifications are sent (default: the addon's sendUnixDatagram, loaded when first needed). */
  readonly notifySend?: DatagramSender;
  /** Called after each SIGHUP reload has been applied or refused (tests). */
  readonly onReload?: (outcome: ReloadOutcome) => void;
  /** `baoctl restart`: take the devices over from the daemon running on the same status socket first. */
  readonly takeOver?: boolean;
}

export type ReloadOutcome = { readonly ok: true; readonly report: ReloadReport } | { readonly ok: false; readonly error: string };

/** Module path relative to this file, as in both lib/ (vitest) and dist/ (compiled). */
const FACTORY_MODULE = '../../../vmm/bao-device-model-factory.js';

export async function loadDefaultFactory(
  log: Logger,
  specifier: string = FACTORY_MODULE,
  extra: { readonly trace?: TraceHub; readonly stateDir?: string | undefined; readonly kept?: KeptFds | undefined } = {},
): Promise<DeviceModelFactory> {
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
  return mod.createDeviceModelFactory({
    log,
    ...(extra.trace === undefined ? {} : { trace: extra.trace }),
    ...(extra.stateDir === undefined ? {} : { stateDir: extra.stateDir }),
    ...(extra.kept === undefined ? {} : { kept: extra.kept }),
  });
}

/** Returns the exit code. */
export async function runDaemonCommand(args: RunArgs, io: RunIo = {}): Promise<number> {
  const err = io.err ?? process.stderr;
  // `baoctl restart` runs this too: its messages name the command the user typed.
  const cmd = io.takeOver === true ? 'baoctl restart' : 'baoctl run';
  const file = args.config ?? args.file;
  if (file === undefined) {
    err.write(`${cmd}: give a config file: ${cmd} <config.yaml> (or -c/--config <config.yaml>)\n`);
    return EXIT_USAGE;
  }
  if (args.config !== undefined && args.file !== undefined && args.config !== args.file) {
    err.write(`${cmd}: two config files given (${args.file} and --config ${args.config}); give one\n`);
    return EXIT_USAGE;
  }

  const metricsAddress = args.metricsListen === undefined ? undefined : parseListenAddress(args.metricsListen);
  if (args.metricsListen !== undefined && metricsAddress === undefined) {
    err.write(`${cmd}: --metrics-listen: expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464, got '${args.metricsListen}'\n`);
    return EXIT_USAGE;
  }

  const socketMode = args.statusSocketMode === undefined ? undefined : parseSocketMode(args.statusSocketMode);
  if (args.statusSocketMode !== undefined && socketMode === undefined) {
    err.write(`${cmd}: --status-socket-mode: expected an octal mode such as 0660, got '${args.statusSocketMode}'\n`);
    return EXIT_USAGE;
  }

  let validated: ValidatedConfig;
  try {
    validated = await loadConfig(file, { strict: args.strict === true, ...(io.readFile === undefined ? {} : { readFile: io.readFile }) });
  } catch (e) {
    if (e instanceof ConfigInvalidError) {
      err.write(`${file}: ${e.issues.length} error(s)\n`);
      for (const issue of e.issues) err.write(`  error: ${formatIssue(issue)}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof VmmError) {
      err.write(`${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
  const { config, warnings } = validated;
  markStartup('config');

  let root;
  let logFile: LogFile | undefined;
  try {
    if (args.logFile !== undefined) logFile = openLogFile(args.logFile);
  } catch (e) {
    err.write(`${cmd}: --log-file ${args.logFile}: ${causeMessage(e)}\n`);
    return EXIT_FAILURE;
  }
  try {
    root = createRootLogger({
      level: args.logLevel,
      format: args.logFormat,
      defaultLevel: config.log.level,
      defaultFormat: config.log.format,
      ...(logFile !== undefined ? { destination: logFile.stream } : io.logDestination === undefined ? {} : { destination: io.logDestination }),
      ...(io.env === undefined ? {} : { env: io.env }),
    });
  } catch (e) {
    err.write(`${cmd}: ${causeMessage(e)}\n`);
    return EXIT_USAGE;
  }
  const log: Logger = root.child({ module: 'daemon' });
  for (const w of warnings) log.warn({ field: w.field }, `config: ${formatIssue(w)}`);
  log.info({ config: file, devices: config.devices.length }, `starting with ${file}`);

  const notifier = createSystemdNotifier({
    log,
    ...(io.env === undefined ? {} : { env: io.env }),
    send:
      io.notifySend ??
      (() => {
        const addon = loadAddon();
        return (path: string, data: Buffer) => addon.sendUnixDatagram(path, data);
      }),
  });
  // Kernel objects kept across restarts: handed back by systemd (LISTEN_FDS) or, below, by the
  // daemon this one takes over from; only the default (Bao) factory uses them.
  const kept = io.factory === undefined ? setupKeptFds({ env: io.env ?? process.env, log, addon: loadAddon }) : undefined;
  markStartup('kept-fds');
  const controller = new AbortController();
  const signals = io.signals ?? process;
  const onSignal = (name: 'SIGINT' | 'SIGTERM') => () => {
    if (controller.signal.aborted) {
      log.warn({ signal: name }, `${name} again: still shutting down (bounded by the shutdown timeout)`);
      return;
    }
    notifier.stopping(`stopping (${name})`);
    controller.abort(new Error(name));
  };
  const onInt = onSignal('SIGINT');
  const onTerm = onSignal('SIGTERM');
  signals.on('SIGINT', onInt);
  signals.on('SIGTERM', onTerm);
  // SIGHUP: reopen the log file, then reload the config. A config that does not load changes
  // nothing; the daemon keeps serving what it had.
  const onHup = (): void => {
    try {
      logFile?.reopen();
    } catch (e) {
      err.write(`${cmd}: cannot reopen --log-file ${args.logFile}: ${causeMessage(e)}\n`);
    }
    const running = daemon;
    if (running === undefined || controller.signal.aborted) {
      log.warn({ signal: 'SIGHUP' }, 'SIGHUP while starting or stopping: config not reloaded');
      return;
    }
    log.info({ signal: 'SIGHUP', config: file }, `SIGHUP: reloading ${file}`);
    void (async (): Promise<ReloadOutcome> => {
      let next: ValidatedConfig;
      try {
        next = await loadConfig(file, { strict: args.strict === true, ...(io.readFile === undefined ? {} : { readFile: io.readFile }) });
      } catch (e) {
        const issues = e instanceof ConfigInvalidError ? e.issues.map(formatIssue) : [causeMessage(e)];
        log.error({ errors: issues }, `reload refused, nothing changed: ${file}: ${issues.join('; ')}`);
        return { ok: false, error: issues.join('; ') };
      }
      for (const w of next.warnings) log.warn({ field: w.field }, `config: ${formatIssue(w)}`);
      // The loggers are made once, at start: a changed `log:` section waits for a restart.
      if (JSON.stringify(next.config.log) !== JSON.stringify(config.log)) {
        log.warn(
          { field: 'log', running: config.log, file: next.config.log },
          'reload: the log: settings changed, which needs a restart (`systemctl restart node-bao`); they stay as they were, the devices are reloaded',
        );
      }
      notifier.reloading();
      try {
        const report = await running.reload(next.config);
        for (const f of report.failed) log.error({ device: f.device, err: f.error }, `reload: ${causeMessage(f.error)}`);
        return { ok: true, report };
      } catch (e) {
        log.error({ err: e }, `reload failed: ${causeMessage(e)}`);
        return { ok: false, error: causeMessage(e) };
      } finally {
        notifier.ready(`serving ${running.devices.length} device(s)`);
      }
    })().then((outcome) => io.onReload?.(outcome));
  };
  signals.on('SIGHUP', onHup);
  const external = io.signal;
  const onExternal = (): void => controller.abort(external?.reason ?? new Error('aborted'));
  if (external?.aborted) onExternal();
  else external?.addEventListener('abort', onExternal, { once: true });

  // The status socket first: a taken path fails the start before any device is opened.
  const statusPath = args.statusSocket ?? io.defaultStatusSocket;
  const startedAt = Date.now();
  const sampler = new ProcessSampler();
  let daemon: Daemon | undefined;
  const listeners: StatusServer[] = [];
  // `baoctl trace` over the status socket; costs nothing while nobody traces.
  const traceHub = new TraceHub({ log: root.child({ module: 'trace' }) });
  const status = (): DaemonStatus => ({
    pid: process.pid,
    state: daemon === undefined ? 'starting' : controller.signal.aborted ? 'stopping' : 'serving',
    config: file,
    startedAt: new Date(startedAt).toISOString(),
    uptimeMs: Date.now() - startedAt,
    devices: daemon?.deviceStatus() ?? [],
    process: sampler.sample(),
  });

  const exit = io.exit;
  const removeLastResort =
    io.lastResort === undefined || exit === undefined
      ? () => {}
      : installLastResort({ target: io.lastResort, log, completePending: () => daemon?.completePending() ?? 0, flush: () => root.flush(), exit });
  let endProcess = false;
  let handover: HandoverServer | undefined;
  const hasStatusSocket = statusPath !== undefined && statusPath !== 'none' && statusPath !== '';
  try {
    if (io.takeOver === true) {
      if (!hasStatusSocket || kept === undefined) {
        log.error({}, 'baoctl restart: the running daemon is found by its status socket; give the --status-socket it runs with');
        return EXIT_USAGE;
      }
      try {
        await takeOver({ path: restartSocketPath(statusPath), kept, log, addon: loadAddon() });
      } catch (e) {
        log.error({ code: (e as { code?: unknown }).code }, causeMessage(e));
        return EXIT_FAILURE;
      }
    }
    const metrics = lazyDaemonMetrics(status);
    if (hasStatusSocket) {
      listeners.push(await openStatusServer({ path: statusPath, status, metrics, log, trace: traceHub }));
      await applySocketAccess(statusPath, { mode: socketMode, group: args.statusSocketGroup });
    }
    if (metricsAddress !== undefined) listeners.push(await openMetricsListener({ ...metricsAddress, status, metrics, log }));
    markStartup('listeners');
    let factory: DeviceModelFactory;
    try {
      factory =
        io.factory === undefined
          ? await loadDefaultFactory(root.child({ module: 'dispatcher' }), FACTORY_MODULE, { trace: traceHub, stateDir: args.stateDir, kept })
          : typeof io.factory === 'function'
            ? await io.factory(root.child({ module: 'dispatcher' }))
            : io.factory;
    } catch (e) {
      log.error(e instanceof VmmError ? { code: e.code } : { err: e }, causeMessage(e));
      return EXIT_FAILURE;
    }
    markStartup('factory');
    const report = await serve({
      config,
      factory,
      builders: io.builders ?? defaultDeviceBuilders,
      log,
      rootLog: root,
      context: io.context ?? { ptyOpener: defaultPtyOpener(), blockHost: defaultBlockHost(), tapSyscalls: tapSyscalls() },
      signal: controller.signal,
      onStarted: (started) => {
        daemon = started;
        markStartup('devices');
        const startup = startupMarks();
        log.info({ startupMs: startup, helperThreads: helperThreadsAtEntry() }, `started in ${startup['devices']} ms`);
        kept?.closeUnused();
        if (kept !== undefined && hasStatusSocket) {
          // `baoctl restart` connects here. The process then ends without resetting the devices
          // (the new one serves them); only a planned restart takes this path.
          try {
            handover = openHandoverServer({
              path: restartSocketPath(statusPath),
              kept,
              log,
              addon: loadAddon(),
              onHandedOver: () => {
                handover?.close();
                for (const l of listeners) void l.close();
                root.flush();
                (exit ?? ((code: number) => process.exit(code)))(EXIT_OK);
              },
            });
          } catch (e) {
            log.warn({ err: e }, `no restart socket (baoctl restart cannot take over from this daemon): ${causeMessage(e)}`);
          }
        }
        // Every device model is open: units ordered after node-bao may start.
        notifier.ready(`serving ${started.devices.length} device(s)`);
      },
    });
    notifier.stopping();
    if (report.stoppedBy !== undefined || report.failed.length > 0) {
      log.error({ failed: report.failed.length }, 'stopped with errors');
      return EXIT_FAILURE;
    }
    log.info({}, 'stopped cleanly');
    return EXIT_OK;
  } catch (e) {
    // StatusSocketError (status socket, metrics listener), DeviceOpenError (the daemon logged it
    // already: once is enough) or ShutdownTimeoutError.
    if (!(e instanceof DeviceOpenError)) log.error(e instanceof VmmError ? { code: e.code } : { err: e }, causeMessage(e));
    if (e instanceof ShutdownTimeoutError) {
      // What is still closing (a device, an ATTACH thread) would keep the process alive: answer
      // what it holds and end it, so that a supervisor can start a new one.
      const completed = daemon?.completePending() ?? 0;
      log.error({ completed }, 'ending the process after the shutdown timeout');
      endProcess = true;
    }
    return EXIT_FAILURE;
  } finally {
    removeLastResort();
    handover?.close();
    sampler.close();
    traceHub.close('the daemon stopped');
    await Promise.race([Promise.all(listeners.map((l) => l.close())), ...(endProcess ? [new Promise((r) => setTimeout(r, 200))] : [])]);
    notifier.stopping();
    notifier.close();
    signals.off('SIGINT', onInt);
    signals.off('SIGTERM', onTerm);
    signals.off('SIGHUP', onHup);
    external?.removeEventListener('abort', onExternal);
    root.flush();
    logFile?.close();
    if (endProcess) exit?.(EXIT_FAILURE);
  }
}
