// Sizing libuv's thread pool for the thread-pool block engine. Each request of that engine is
// one pool job, so the pool's size bounds the disk's I/O in flight; the default of 4 is small
// for a disk. libuv reads UV_THREADPOOL_SIZE once, when the pool starts, and Node's ESM loader
// starts it before any module of an ESM entry point runs: so bin/baoctl (CommonJS, which loads
// synchronously and leaves the pool alone) asks this module, loaded with require() and
// synchronous file reads only, what the config wants, and sets the variable before it imports
// the CLI. A UV_THREADPOOL_SIZE already in the environment is the user's choice and wins.

import { readFileSync, statSync } from 'node:fs';

import { parseConfigText } from './config/load.js';
import type { DaemonConfig } from './config/types.js';

/** libuv's default pool size. */
export const DEFAULT_THREADPOOL_SIZE = 4;
/**
 * The most threads sized from a config: well past the requests a backend VM's disk gains from
 * having in flight, and few enough for a 32-bit address space (8 MiB of stack reserved each).
 */
export const MAX_SIZED_THREADPOOL = 64;

/**
 * The pool a config wants: the default's 4 threads for everything else (fs, dns, crypto) plus
 * one per queue slot of every block device that may use the thread-pool engine (thread-pool,
 * or auto, which falls back to it where io_uring is unavailable), at most MAX_SIZED_THREADPOOL;
 * undefined when no device needs more than the default.
 */
export function threadPoolSizeFor(config: Pick<DaemonConfig, 'devices'>): number | undefined {
  let slots = 0;
  for (const d of config.devices) {
    if (d.type !== 'block' || d.dataPlane === 'vhost_user' || d.engine === 'io_uring') continue;
    slots += d.queues * d.queueSize;
  }
  if (slots === 0) return undefined;
  return Math.min(MAX_SIZED_THREADPOOL, DEFAULT_THREADPOOL_SIZE + slots);
}

/** The config file `baoctl run` was given (the positional or -c/--config), if any. */
export function configPathFromArgv(argv: readonly string[]): string | undefined {
  if (argv[0] !== 'run' && argv[0] !== 'restart') return undefined;
  for (let i = 1; i < argv.length; i += 1) {
    const a = argv[i]!;
    if (a === '-c' || a === '--config') return argv[i + 1];
    if (a.startsWith('--config=')) return a.slice('--config='.length);
  }
  // The positional: the first argument that is no option and names a file (an option's value,
  // such as `--log-format json`, rarely does).
  for (let i = 1; i < argv.length; i += 1) {
    const a = argv[i]!;
    if (a === '--') return argv[i + 1];
    if (a.startsWith('-')) continue;
    try {
      if (statSync(a).isFile()) return a;
    } catch {
      // no such file: an option's value
    }
  }
  return undefined;
}

/**
 * What bin/baoctl puts in UV_THREADPOOL_SIZE for `argv` (its arguments after the script), or
 * undefined to leave libuv's default. Never throws: a config that does not parse is left for
 * the CLI to report properly.
 */
export function threadPoolSizeForArgv(argv: readonly string[]): number | undefined {
  try {
    const file = configPathFromArgv(argv);
    if (file === undefined) return undefined;
    return threadPoolSizeFor(parseConfigText(readFileSync(file, 'utf8'), file).config);
  } catch {
    return undefined;
  }
}

/** The pool size in effect (what libuv read, or will read, from the environment). */
export function currentThreadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env['UV_THREADPOOL_SIZE']);
  return Number.isInteger(n) && n > 0 ? Math.min(1024, n) : DEFAULT_THREADPOOL_SIZE;
}
