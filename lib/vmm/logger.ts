// The daemon's root logger (pino). JSON lines by default; pino-pretty in-process (sync, no worker
// thread) when the destination is a terminal or `--log-format pretty` asks for it. Logs go to
// stderr by default because stdout belongs to command output (`--json`) and to a console device
// with the stdio backend. Modules take `root.child({ module: '...' })`; lib/virtio and
// lib/devices receive those children through their structural Logger interface.

import { createRequire } from 'node:module';

import pino, { type Logger as PinoLogger } from 'pino';
import type PinoPretty from 'pino-pretty';

import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from './config/types.js';
import { VmmError } from './errors.js';

export type RootLogger = PinoLogger;

export interface LoggerOptions {
  /** Flag value, then env BAO_LOG_LEVEL, then `defaultLevel` (config `log.level`), then `info`. */
  readonly level?: string | undefined;
  /** Flag value, then env BAO_LOG_FORMAT, then `defaultFormat` (config), then pretty on a TTY. */
  readonly format?: string | undefined;
  readonly defaultLevel?: LogLevel | undefined;
  readonly defaultFormat?: LogFormat | undefined;
  /** Where log lines go; default process.stderr. */
  readonly destination?: NodeJS.WritableStream & { isTTY?: boolean; fd?: number };
  readonly env?: NodeJS.ProcessEnv;
  /** Base bindings for every line (e.g. `{ name: 'baoctl' }`). */
  readonly base?: Record<string, unknown>;
}

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export function isLogFormat(value: string): value is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(value);
}

/** Picks the level: an explicit flag wins over BAO_LOG_LEVEL, which wins over the default. */
export function resolveLogLevel(flag: string | undefined, env: NodeJS.ProcessEnv, fallback: LogLevel = 'info'): LogLevel {
  const value = flag ?? env['BAO_LOG_LEVEL'];
  if (value === undefined || value === '') return fallback;
  const lower = value.toLowerCase();
  if (!isLogLevel(lower)) {
    throw new VmmError('LOG_LEVEL_INVALID', `unknown log level '${value}'; expected one of ${LOG_LEVELS.join(', ')}`);
  }
  return lower;
}

export function resolveLogFormat(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  isTTY: boolean,
  fallback?: LogFormat,
): LogFormat {
  const value = flag ?? env['BAO_LOG_FORMAT'];
  if (value === undefined || value === '') return fallback ?? (isTTY ? 'pretty' : 'json');
  const lower = value.toLowerCase();
  if (!isLogFormat(lower)) {
    throw new VmmError('LOG_FORMAT_INVALID', `unknown log format '${value}'; expected one of ${LOG_FORMATS.join(', ')}`);
  }
  return lower;
}

export function createRootLogger(options: LoggerOptions = {}): RootLogger {
  const env = options.env ?? process.env;
  const destination = options.destination ?? process.stderr;
  const level = resolveLogLevel(options.level, env, options.defaultLevel);
  const format = resolveLogFormat(options.format, env, destination.isTTY === true, options.defaultFormat);
  const base = options.base ?? { name: 'node-bao' };
  if (format === 'pretty') {
    // Loaded only for pretty output (it is CommonJS: synchronously): JSON logs, as under systemd
    // or in a restarted daemon, do not pay for its start-up.
    const prettyFactory = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    const pretty = prettyFactory({
      sync: true,
      colorize: destination.isTTY === true,
      destination,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name',
    });
    return pino({ level, base }, pretty);
  }
  return pino({ level, base }, destination);
}
