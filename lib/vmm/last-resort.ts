// The daemon's last resort: an exception or a rejection nobody handled means the process is in
// an unknown state. Frontend vCPUs may be paused on accesses it holds, so before it exits it
// completes every pending access on every device model, logs what happened, and exits non-zero
// so that a supervisor (systemd Restart=on-failure) starts it again. Installed by `baoctl run`
// only: library code never touches process-wide handlers.

import type { Logger } from '../virtio/logger.js';

/** The part of `process` this needs; injectable for tests. */
export interface LastResortTarget {
  on(event: 'uncaughtException' | 'unhandledRejection', listener: (err: unknown) => void): unknown;
  off(event: 'uncaughtException' | 'unhandledRejection', listener: (err: unknown) => void): unknown;
}

export interface LastResortOptions {
  readonly target: LastResortTarget;
  readonly log: Logger;
  /** Completes what is pending on every device model; returns how many accesses. */
  readonly completePending: () => number;
  /** Flushes the logs before exiting. */
  readonly flush?: () => void;
  readonly exit: (code: number) => void;
  /** Default 1. */
  readonly exitCode?: number;
}

/** Installs the handlers; returns the function that removes them. */
export function installLastResort(options: LastResortOptions): () => void {
  const { target, log } = options;
  let fired = false;
  const onFatal = (kind: string) => (err: unknown): void => {
    if (fired) return; // a second failure while exiting changes nothing
    fired = true;
    log.error({ err, kind }, `fatal: ${kind}: ${err instanceof Error ? err.message : String(err)}; completing pending accesses and exiting`);
    try {
      const completed = options.completePending();
      log.error({ completed }, `completed ${completed} pending access(es) before exiting`);
    } catch (inner) {
      log.error({ err: inner }, 'completing pending accesses failed');
    }
    try {
      options.flush?.();
    } finally {
      options.exit(options.exitCode ?? 1);
    }
  };
  const onException = onFatal('uncaught exception');
  const onRejection = onFatal('unhandled rejection');
  target.on('uncaughtException', onException);
  target.on('unhandledRejection', onRejection);
  return () => {
    target.off('uncaughtException', onException);
    target.off('unhandledRejection', onRejection);
  };
}
