// The event loop before Node's own helpers. Every device model of the process is answered by
// one JavaScript thread, and next to it Node runs V8's platform workers: concurrent compilation,
// concurrent marking, the parallel scavenger's helpers. At the same priority the kernel shares the
// backend CPU between them fairly, so a frontend's access waits whole time slices while V8
// optimises code or marks the heap: in the QEMU machine (scheduler statistics, hostile suite) the
// event loop waited up to 7-16 ms for the CPU in exactly the cases where those threads ran, and
// under 1.5 ms where they did not. So `baoctl run` lowers them (nice 10) before it starts
// anything: they still run whenever the CPU is free, and give way when the event loop has work.
//
// Done from bin/baoctl (CommonJS, before any import), when the threads that exist are Node's
// own: the JavaScript thread, V8's workers and Node's signal-watching thread, and not libuv's
// thread pool (unstarted until the first fs or block I/O job; its threads run device I/O and,
// created later by the JavaScript thread, keep its priority), nor the ATTACH threads.
// Raising a thread's nice value needs no privilege. Linux applies setpriority(PRIO_PROCESS) to
// the one thread whose id it is given, which is what lets the JavaScript thread keep its own.

import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** The nice value Node's helper threads get (0 is the default; 19 the lowest). */
export const HELPER_THREAD_NICE = 10;

export interface LowerHelperThreadsOptions {
  /** Default HELPER_THREAD_NICE. */
  readonly nice?: number;
  /** The JavaScript thread's id (default process.pid: the main thread's tid is the pid). */
  readonly mainTid?: number;
  /** Where the process's threads are listed (default /proc/self/task). */
  readonly taskDir?: string;
}

export interface LoweredThreads {
  /** Threads now at `nice` or lower in priority. */
  readonly lowered: number;
  /** Threads whose priority could not be read or set (gone meanwhile, or no /proc). */
  readonly failed: number;
}

/**
 * Gives every thread of this process but the JavaScript thread at least `nice`; a thread already
 * lower is left as it is. Never throws: the daemon serves the same without it, less fairly.
 */
export function lowerHelperThreads(options: LowerHelperThreadsOptions = {}): LoweredThreads {
  const nice = options.nice ?? HELPER_THREAD_NICE;
  const mainTid = options.mainTid ?? process.pid;
  let tids: number[];
  try {
    tids = readdirSync(options.taskDir ?? '/proc/self/task').map(Number).filter((t) => Number.isInteger(t) && t !== mainTid);
  } catch {
    return { lowered: 0, failed: 1 };
  }
  let lowered = 0;
  let failed = 0;
  for (const tid of tids) {
    try {
      if (getPriority(tid) < nice) setPriority(tid, nice);
      lowered += 1;
    } catch {
      failed += 1;
    }
  }
  return { lowered, failed };
}

const ENTRY_KEY = Symbol.for('node-bao.helper-threads');

/** What bin/baoctl's lowerHelperThreads() did at the entry (undefined when it did not run). */
export function helperThreadsAtEntry(): LoweredThreads | undefined {
  const v = (globalThis as Record<symbol, unknown>)[ENTRY_KEY] as LoweredThreads | undefined;
  return v !== null && typeof v === 'object' && typeof v.lowered === 'number' ? v : undefined;
}
