// Log lines a frontend can trigger at will (guest faults, resets, activations, NEEDS_RESET) are
// rate-limited in time, per device model: each MmioTransport wraps its logger once, and the
// children of that logger (what devices get as activation.log) share its budget. A flood
// costs at most `linesPerSecond` lines a second (after a burst) plus one "N similar log lines
// suppressed" line per `summaryMs` while lines are being dropped. Counters are kept exactly
// elsewhere; only the log is thinned. Debug lines are not limited: they are off unless a user
// asked for them. No module-level state: two device models never share a budget.

import type { Logger } from './logger.js';
import { TokenBucket } from './token-bucket.js';

export interface LogLimitOptions {
  /** Lines per second once the burst is spent (default 10). */
  readonly linesPerSecond?: number;
  /** Lines allowed at once (default 20). */
  readonly burst?: number;
  /** Interval of the summary line while lines are suppressed (default 5000 ms). */
  readonly summaryMs?: number;
  /** Clock and timer (tests inject fakes); the timer is unref'd so it keeps no process alive. */
  readonly now?: () => number;
  readonly setTimer?: (fn: () => void, ms: number) => void;
}

export const DEFAULT_LOG_LINES_PER_SECOND = 10;

interface SharedBudget {
  readonly bucket: TokenBucket;
  readonly summaryMs: number;
  readonly setTimer: (fn: () => void, ms: number) => void;
  readonly root: Logger;
  suppressed: number;
  timerArmed: boolean;
}

/** `log`, with info/warn/error lines limited in time; children share the budget. */
export function rateLimitedLogger(log: Logger, options: LogLimitOptions = {}): Logger {
  const budget: SharedBudget = {
    bucket: new TokenBucket({
      rate: options.linesPerSecond ?? DEFAULT_LOG_LINES_PER_SECOND,
      burst: options.burst ?? 2 * (options.linesPerSecond ?? DEFAULT_LOG_LINES_PER_SECOND),
      ...(options.now ? { now: options.now } : {}),
    }),
    summaryMs: options.summaryMs ?? 5000,
    setTimer:
      options.setTimer ??
      ((fn, ms) => {
        setTimeout(fn, ms).unref();
      }),
    root: log,
    suppressed: 0,
    timerArmed: false,
  };
  return limited(log, budget);
}

function limited(log: Logger, budget: SharedBudget): Logger {
  const gate =
    (emit: (obj: object, msg?: string) => void) =>
    (obj: object, msg?: string): void => {
      if (budget.bucket.tryTake(1)) {
        emit(obj, msg);
        return;
      }
      budget.suppressed += 1;
      armSummary(budget);
    };
  return {
    debug: (obj, msg) => log.debug(obj, msg),
    info: gate((obj, msg) => log.info(obj, msg)),
    warn: gate((obj, msg) => log.warn(obj, msg)),
    error: gate((obj, msg) => log.error(obj, msg)),
    child: (bindings) => limited(log.child(bindings), budget),
  };
}

function armSummary(budget: SharedBudget): void {
  if (budget.timerArmed) return;
  budget.timerArmed = true;
  budget.setTimer(() => {
    budget.timerArmed = false;
    const n = budget.suppressed;
    if (n === 0) return;
    budget.suppressed = 0;
    budget.root.warn({ suppressed: n, intervalMs: budget.summaryMs }, `${n} similar log lines suppressed`);
  }, budget.summaryMs);
}
