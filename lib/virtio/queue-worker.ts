// QueueWorker: how a device serves one virtqueue without letting its frontend hold the event
// loop. One worker per queue per activation (no shared state: device models may move into
// workers later). A device gives it a ChainHandler and calls kick() when the driver notifies
// the queue (or when the device itself has something to do, e.g. console input arrived).
//
// What a run does:
//   * takes chains (take-chain.ts: a malformed chain or corrupt ring fails the device and ends
//     the queue's service) and hands each to handler.handle();
//   * serves at most `budget.chains` chains (at most the queue size; default 64), about
//     `budget.descriptors` descriptors (default 1024) and about `budget.bytes` bytes (default
//     64 KiB: the readable bytes of each chain plus what handle() wrote synchronously; a
//     device whose handle() only submits I/O sets it to Infinity), and for about `budget.timeMs`
//     of the clock (default 1 ms, counted from the TIME_CHECK_EVERY-th chain and looked at every
//     TIME_CHECK_EVERY chains after it: on a guest whose clock has no vDSO path each look is a
//     system call, and a run of a few chains, most kicks, never reads it), then yields: the rest
//     is served from scheduler.yield (setImmediate), after the event loop has answered everyone
//     else. The time bound is what keeps another device model's access from waiting behind this
//     queue when chains are dearer than their counts say (a slow CPU, an emulated one, a handler
//     that walks long chains). A chain is never split, and one chain holds at most queue-size
//     descriptors;
//   * before each chain asks handler.admit(): 'now' takes one, 'idle' ends the run until the
//     next kick() (nothing to do with a chain yet), a number of milliseconds ends it until then
//     (a rate limit; the worker wakes itself);
//   * once the queue is empty, re-arms notifications and re-checks, so buffers that raced with
//     re-arming are not left waiting for a kick that will never come;
//   * raises one used-buffer interrupt per run (or per microtask for asynchronous completions),
//     after `beforeInterrupt` (when given) has let the device publish what the chains just
//     served produced on its other queues, so that the driver takes both in one interrupt.
//
// handle() returns the bytes written into the chain's writable buffers (the used length) to
// complete it at once; or it calls worker.defer(), returns LATER and, when its I/O is done,
// worker.complete(token, length) with what defer() gave it (block: a request costs one small
// object, not a Promise with its reactions and microtasks); or it returns a Promise of the
// length (net's transmit held for a full tap: rare). The token, not the head, names the chain:
// a hostile driver may post a head again while the device still holds it.
// Chains complete in any order (IN_ORDER is not offered), unless the device asks for `inOrder`:
// then used entries are published in the order the chains were taken, a completion that settles
// early waiting for those taken before it. That keeps the chains taken and not yet published
// exactly the avail entries from the used index on, which is what lets a restarted daemon take
// them again (VirtioDevice.resumesFromUsed: blk re-submits its requests in flight). Throwing or
// rejecting is a device bug, never a guest fault: the device is failed (DEVICE_NEEDS_RESET),
// other devices are untouched.
//
// stop() (at reset) takes no more chains, cancels the timers, aborts `signal` (made on first
// use: an AbortController per activation costs more than the activation), and returns a Promise that settles when the last in-flight handle() has settled, or
// undefined when nothing is in flight; completions after stop() are not published. A device
// returns that from VirtioDevice.reset(), which is how "reset waits for the device" holds.

import type { DeviceActivation } from './device.js';
import { bufferCount, type DescriptorChain } from './descriptor-chain.js';
import type { SplitQueue } from './split-queue.js';
import { takeChain, type ChainFaultCounters } from './take-chain.js';
import { QueueCorruptError } from './errors.js';

/** handler.admit()'s answer: take a chain now, wait for kick(), or retry after that many ms. */
export type Admission = 'now' | 'idle' | number;

/** handle()'s answer for a chain it completes later with QueueWorker.complete(). */
export const LATER: unique symbol = Symbol('LATER');

/** What QueueWorker.defer() gives handle() for the chain it serves, for complete(). */
export interface LaterToken {
  readonly head: number;
}

export interface ChainHandler {
  /** Asked before each chain is taken (default: always 'now'). */
  admit?(): Admission;
  /**
   * Serve one chain: the used length now; or LATER after worker.defer(), then
   * worker.complete(token, length) once (before handle() returns, too); or a Promise of the
   * length. See worker.signal to cancel.
   */
  handle(chain: DescriptorChain): number | typeof LATER | Promise<number>;
}

export interface QueueWorkerBudget {
  /** Chains per run before yielding (clamped to [1, queue size]; default 64). */
  readonly chains?: number;
  /** Descriptors per run before yielding (default 1024). */
  readonly descriptors?: number;
  /** Bytes per run before yielding: readable bytes plus bytes written synchronously (default 64 KiB). */
  readonly bytes?: number;
  /** Milliseconds per run before yielding, counted from the TIME_CHECK_EVERY-th chain (default 1). */
  readonly timeMs?: number;
}

/** When deferred work runs; tests inject a manual one. */
export interface WorkerScheduler {
  /** Run `fn` once the event loop has served what is waiting (setImmediate). */
  yield(fn: () => void): void;
  /** Run `fn` after `ms`; returns a cancel function. */
  after(fn: () => void, ms: number): () => void;
  /** A monotonic clock in ms for the time budget (default performance.now). */
  readonly now?: () => number;
}

export const eventLoopScheduler: WorkerScheduler = {
  yield: (fn) => {
    setImmediate(fn);
  },
  after: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

export const DEFAULT_CHAIN_BUDGET = 64;
export const DEFAULT_DESCRIPTOR_BUDGET = 1024;
export const DEFAULT_BYTE_BUDGET = 64 * 1024;
export const DEFAULT_TIME_BUDGET_MS = 1;
/** The clock is looked at after every this many chains (never in a run of fewer). */
export const TIME_CHECK_EVERY = 4;

const performanceNow = (): number => performance.now();

export interface QueueWorkerStats {
  /** Runs started (kicks, continuations, wake-ups). */
  runs: number;
  /** Chains handed to handle(). */
  chains: number;
  /** Runs that stopped on their budget with work left (continued after a yield). */
  yields: number;
  /** Runs that stopped because admit() asked to wait (a rate limit). */
  throttled: number;
}

/** The device's counters the worker adds to (they outlive activations, unlike `stats`). */
export interface QueueCounters extends ChainFaultCounters {
  /** Runs that stopped on their budget with work left. */
  queueYields: number;
  /** Runs that stopped because admit() asked to wait (a rate limit). */
  rateLimitWaits: number;
}

export interface QueueWorkerOptions {
  readonly queue: SplitQueue;
  readonly queueIndex: number;
  readonly activation: DeviceActivation;
  readonly handler: ChainHandler;
  /** The device's metrics: malformed chains, yields and rate-limit waits are counted there. */
  readonly counters: QueueCounters;
  readonly budget?: QueueWorkerBudget;
  readonly scheduler?: WorkerScheduler;
  /** Publish used entries in the order the chains were taken (see the banner); default false. */
  readonly inOrder?: boolean;
  /**
   * Called at the end of a run that served chains, before the run's used-buffer interrupt: a
   * device whose chains cause work it can finish at once on another queue (virtio-net: a frame
   * written to the tap whose reply is already there) publishes it here, and the driver takes
   * both completions with one interrupt instead of two.
   */
  readonly beforeInterrupt?: () => void;
}

/** A chain taken in `inOrder` mode: its used length once known (-1 while its handler runs). */
interface Taken {
  readonly head: number;
  len: number;
}

export class QueueWorker {
  readonly stats: QueueWorkerStats = { runs: 0, chains: 0, yields: 0, throttled: 0 };
  readonly queue: SplitQueue;
  readonly queueIndex: number;

  private readonly activation: DeviceActivation;
  private readonly handler: ChainHandler;
  private readonly beforeInterrupt: (() => void) | undefined;
  private readonly counters: QueueCounters;
  private readonly scheduler: WorkerScheduler;
  private readonly chainBudget: number;
  private readonly descriptorBudget: number;
  private readonly byteBudget: number;
  private readonly timeBudgetMs: number;
  private readonly now: () => number;
  private abort: AbortController | undefined;

  private stopped = false;
  private running = false;
  /** kick() arrived during a run. */
  private kickedWhileRunning = false;
  private continuation = false;
  private cancelWake: (() => void) | undefined;
  private usedPending = false;
  private notifyQueued = false;
  private inFlightCount = 0;
  private quiet: (() => void) | undefined;
  private quietPromise: Promise<void> | undefined;
  /** inOrder: chains taken and not published yet, oldest first (from `takenFrom` on). */
  private readonly taken: Taken[] | undefined;
  private takenFrom = 0;
  /** The chain handle() is serving now (defer() names it), and what defer() made for it. */
  private servingHead = -1;
  private servingToken: Taken | undefined;

  constructor(options: QueueWorkerOptions) {
    this.queue = options.queue;
    this.queueIndex = options.queueIndex;
    this.activation = options.activation;
    this.handler = options.handler;
    this.beforeInterrupt = options.beforeInterrupt;
    this.counters = options.counters;
    this.scheduler = options.scheduler ?? eventLoopScheduler;
    const chains = Math.floor(options.budget?.chains ?? DEFAULT_CHAIN_BUDGET);
    this.chainBudget = Math.max(1, Math.min(this.queue.size, chains));
    this.descriptorBudget = Math.max(1, Math.floor(options.budget?.descriptors ?? DEFAULT_DESCRIPTOR_BUDGET));
    this.byteBudget = Math.max(1, options.budget?.bytes ?? DEFAULT_BYTE_BUDGET);
    this.timeBudgetMs = Math.max(0, options.budget?.timeMs ?? DEFAULT_TIME_BUDGET_MS);
    this.now = this.scheduler.now ?? performanceNow;
    this.taken = options.inOrder === true ? [] : undefined;
  }

  /** Chains handed to handle() that have not completed yet (deferred, or a Promise). */
  get inFlight(): number {
    return this.inFlightCount;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Aborted at stop(): asynchronous handlers pass it to their I/O to cancel it. */
  get signal(): AbortSignal {
    if (this.abort === undefined) {
      this.abort = new AbortController();
      if (this.stopped) this.abort.abort();
    }
    return this.abort.signal;
  }

  /**
   * Serve the queue now (synchronously), unless a continuation or a rate-limit wake-up is
   * already due: then that one serves it, so a flood of kicks cannot skip the yield.
   */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.kickedWhileRunning = true;
      return;
    }
    if (this.continuation || this.cancelWake !== undefined) return;
    this.run();
  }

  /** Take nothing more; settle once in-flight chains have (see the banner). Idempotent. */
  stop(): void | Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.cancelWake?.();
      this.cancelWake = undefined;
      this.abort?.abort();
    }
    if (this.inFlightCount === 0) return undefined;
    this.quietPromise ??= new Promise<void>((resolve) => {
      this.quiet = resolve;
    });
    return this.quietPromise;
  }

  private get done(): boolean {
    return this.stopped || this.queue.closed;
  }

  private run(): void {
    this.running = true;
    this.stats.runs += 1;
    let chains = 0;
    let descriptors = 0;
    let bytes = 0;
    let disabled = false;
    let deadline = Infinity;
    let overTime = false;
    try {
      for (;;) {
        this.kickedWhileRunning = false;
        let idle = false;
        while (!this.done) {
          if (chains > 0 && chains % TIME_CHECK_EVERY === 0 && this.timeBudgetMs !== Infinity) {
            // The first look starts the clock: a run of fewer chains (most kicks) never reads it.
            if (deadline === Infinity) deadline = this.now() + this.timeBudgetMs;
            else overTime = this.now() >= deadline;
          }
          if (overTime || chains >= this.chainBudget || descriptors >= this.descriptorBudget || bytes >= this.byteBudget) {
            if (this.queue.hasAvailable()) {
              this.stats.yields += 1;
              this.counters.queueYields += 1;
              this.continueLater();
              return;
            }
            break;
          }
          const admission = this.handler.admit?.() ?? 'now';
          if (admission === 'idle') {
            idle = true;
            break;
          }
          if (admission !== 'now') {
            if (!this.queue.hasAvailable()) break;
            this.stats.throttled += 1;
            this.counters.rateLimitWaits += 1;
            this.wakeAfter(admission);
            return;
          }
          if (!disabled) {
            // Busy draining: the driver need not kick meanwhile (§2.7.7).
            this.queue.disableNotification();
            disabled = true;
          }
          const chain = takeChain(this.queue, this.queueIndex, this.activation, this.counters);
          if (chain === null) break;
          chains += 1;
          descriptors += bufferCount(chain);
          this.stats.chains += 1;
          bytes += chain.readableLength + this.serve(chain);
        }
        if (this.done) return;
        if (idle) {
          if (this.kickedWhileRunning) continue;
          return;
        }
        // Drained: ask for a kick, then re-check for buffers that raced with re-arming.
        if (!this.rearm()) return;
      }
    } catch (err) {
      this.deviceError(err);
    } finally {
      this.running = false;
      if (chains > 0 && !this.stopped && this.beforeInterrupt !== undefined) this.runBeforeInterrupt();
      this.flushNotify();
    }
  }

  private runBeforeInterrupt(): void {
    try {
      this.beforeInterrupt!();
    } catch (err) {
      this.deviceError(err);
    }
  }

  /** Returns the bytes written synchronously (0 for a chain completing later). */
  private serve(chain: DescriptorChain): number {
    const head = chain.head;
    this.servingHead = head;
    this.servingToken = undefined;
    let result: number | typeof LATER | Promise<number>;
    try {
      result = this.handler.handle(chain);
    } catch (err) {
      // A device bug (run() fails the device): a chain it deferred will never be completed.
      const token = this.servingToken as Taken | undefined; // set by defer() during handle()
      this.servingToken = undefined;
      if (token !== undefined && token.len === -1) {
        token.len = 0;
        this.settle();
      }
      throw err;
    } finally {
      this.servingHead = -1;
    }
    if (result === LATER) {
      if ((this.servingToken as Taken | undefined) === undefined) throw new Error('handle() returned LATER without calling defer()');
      this.servingToken = undefined;
      return 0;
    }
    const order = this.taken;
    if (typeof result === 'number') {
      if (order !== undefined && this.takenFrom < order.length) {
        // Behind a chain still in flight: published after it.
        order.push({ head, len: result });
        return result;
      }
      this.queue.addUsed(head, result);
      this.usedPending = true;
      return result;
    }
    const entry = this.track(head);
    result.then(
      (len) => this.complete(entry, len),
      (err: unknown) => {
        this.deviceError(err); // the device failed: the entry is never published
        this.settle();
      },
    );
    return 0;
  }

  /**
   * For handle() only: the chain it serves completes later, with complete(token, length). The
   * chain counts as in flight from now on (stop() waits for it).
   */
  defer(): LaterToken {
    if (this.servingHead < 0 || this.servingToken !== undefined) throw new Error('defer() is for handle(), once per chain');
    const token = this.track(this.servingHead);
    this.servingToken = token;
    return token;
  }

  /**
   * A deferred chain is done: `len` bytes were written into its buffers. A second call for the
   * same token does nothing. After stop() nothing is published (the chain is forgotten), but
   * the chain stops counting as in flight, so that stop()'s Promise settles.
   */
  complete(token: LaterToken, len: number): void {
    const entry = token as Taken;
    if (entry.len !== -1) return;
    entry.len = len;
    if (this.taken === undefined) this.completeLater(entry.head, len);
    else this.publishInOrder();
    this.settle();
  }

  /** A chain now in flight: its entry (in take order too, when inOrder). */
  private track(head: number): Taken {
    this.inFlightCount += 1;
    const entry: Taken = { head, len: -1 };
    this.taken?.push(entry);
    return entry;
  }

  /** One chain in flight less (each tracked chain settles once). */
  private settle(): void {
    this.inFlightCount -= 1;
    if (this.inFlightCount === 0 && this.quiet !== undefined) {
      this.quiet();
      this.quiet = undefined;
    }
  }

  /** inOrder: publishes the oldest chains whose length is known, up to the first still in flight. */
  private publishInOrder(): void {
    const order = this.taken!;
    if (this.done) return;
    let published = false;
    while (this.takenFrom < order.length && order[this.takenFrom]!.len >= 0) {
      const t = order[this.takenFrom]!;
      this.takenFrom += 1;
      this.queue.addUsed(t.head, t.len);
      published = true;
    }
    if (this.takenFrom === order.length) {
      order.length = 0;
      this.takenFrom = 0;
    } else if (this.takenFrom > 1024 && this.takenFrom * 2 > order.length) {
      order.splice(0, this.takenFrom);
      this.takenFrom = 0;
    }
    if (published) this.usedPublished();
  }

  private completeLater(head: number, len: number): void {
    if (this.done) return;
    this.queue.addUsed(head, len);
    this.usedPublished();
  }

  private usedPublished(): void {
    this.usedPending = true;
    if (this.running || this.notifyQueued) return;
    // Completions settling in the same turn share one interrupt.
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      this.flushNotify();
    });
  }

  private flushNotify(): void {
    if (!this.usedPending) return;
    this.usedPending = false;
    if (this.stopped) return;
    try {
      this.activation.notifyUsed(this.queueIndex);
    } catch (err) {
      this.deviceError(err);
    }
  }

  /** enableNotification() re-reads avail idx, which may be corrupt: fail, never throw. */
  private rearm(): boolean {
    try {
      return this.queue.enableNotification();
    } catch (err) {
      if (!(err instanceof QueueCorruptError)) throw err;
      this.activation.ringFault(err.code);
      this.activation.fail(err.message, { queue: this.queueIndex, code: err.code, ...err.detail });
      return false;
    }
  }

  private continueLater(): void {
    if (this.continuation) return;
    this.continuation = true;
    this.scheduler.yield(() => {
      this.continuation = false;
      if (!this.stopped) this.run();
    });
  }

  private wakeAfter(ms: number): void {
    if (this.cancelWake !== undefined) return;
    this.cancelWake = this.scheduler.after(() => {
      this.cancelWake = undefined;
      if (!this.stopped) this.run();
    }, ms);
  }

  private deviceError(err: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.abort?.abort();
    this.activation.fail('device queue handler threw', { queue: this.queueIndex, error: String(err) });
  }
}
