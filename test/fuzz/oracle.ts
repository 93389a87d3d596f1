// The fuzz oracle: what must hold whatever a frontend writes, checked on every input, beyond
// "nothing threw":
//   * no access outside the region: the region sits inside a larger ArrayBuffer with guard bytes
//     before and after, which must come out untouched, and every view a device is handed (a
//     chain's buffers, what reaches a backend or the entropy source) must lie inside the region;
//   * bounded work per notification: chains served and descriptors visited, against bounds
//     derived from the queue sizes;
//   * every request completed: each chain the device popped is given back (once, with no more
//     bytes than it had room for), unless the queue was closed (reset or NEEDS_RESET);
//   * bounded memory: the heap does not grow across iterations;
//   * exceptions only of the expected classes.
// A violation throws OracleError, which the engine reports as a finding.
//
// Chain accounting wraps SplitQueue.prototype.pop and addUsed once per process (this module is
// loaded by fuzz targets and their replay test only): every queue a device or a transport builds
// is watched without touching the code under test.

import { InvalidChainError, QueueCorruptError } from '../../lib/virtio/errors.js';
import { GuestMemory } from '../../lib/virtio/guest-memory.js';
import type { DescriptorChain } from '../../lib/virtio/descriptor-chain.js';
import { SplitQueue } from '../../lib/virtio/split-queue.js';

// Under the engine (scripts/fuzz.sh sets NODE_BAO_FUZZ_ENGINE) errors carry no stack: the guest
// faults the code under test raises by the thousand cost more to capture than the work itself.
// Replaying an input (the unit test) gives the full stack.
if (process.env['NODE_BAO_FUZZ_ENGINE'] === '1') Error.stackTraceLimit = 0;

export class OracleError extends Error {
  override readonly name = 'OracleError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/**
 * The first violation of the current input. A check that runs inside device code (a chain
 * hook, an engine or tap double) throws into that code, whose containment may catch it (a
 * queue worker turns a throwing handler into NEEDS_RESET, as it must): kept here, the
 * harness raises it once the delivery is over (raiseSwallowed()).
 */
let firstViolation: OracleError | undefined;

export function violated(code: string, message: string): never {
  const err = new OracleError(code, message);
  firstViolation ??= err;
  throw err;
}

/** Rethrows a violation device code caught (see firstViolation); called after each delivery. */
export function raiseSwallowed(): void {
  const err = firstViolation;
  firstViolation = undefined;
  if (err !== undefined) throw err;
}

/** Rethrows `err` as a finding unless it is an instance of one of `expected`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function expectOnly(err: unknown, expected: readonly (abstract new (...args: any[]) => Error)[]): void {
  if (err instanceof OracleError) throw err;
  if (expected.some((c) => err instanceof c)) return;
  const what = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err);
  violated('UNEXPECTED_EXCEPTION', what);
}

// --- the guarded region ------------------------------------------------------------------------

export const GUARD_BYTE = 0xa5;

/** A region of `size` bytes at GPA `base` inside an ArrayBuffer with `guard` bytes on each side. */
export class GuardedRegion {
  readonly backing: Uint8Array;
  readonly bytes: Uint8Array;
  readonly memory: GuestMemory;

  constructor(
    readonly base: number,
    readonly size: number,
    readonly guard = 256,
  ) {
    this.backing = new Uint8Array(new ArrayBuffer(guard + size + guard)).fill(GUARD_BYTE);
    this.bytes = this.backing.subarray(guard, guard + size);
    this.bytes.fill(0);
    this.memory = new GuestMemory(base, this.bytes);
  }

  /** Back to the state after construction (cheaper than a new region per input). */
  clear(): void {
    this.bytes.fill(0);
  }

  checkGuards(): void {
    if (!guardsIntact(this.backing, this.guard)) violated('GUARD_OVERWRITTEN', 'a byte around the region changed');
  }

  /** A view handed to device code must lie inside this region. */
  checkView(view: Uint8Array, what: string): void {
    checkViewIn(this.memory, view, what);
  }
}

const guardPattern = new Map<number, Buffer>();

/** Whether the `guard` bytes at both ends of `backing` still hold GUARD_BYTE (a native compare). */
export function guardsIntact(backing: Uint8Array, guard: number): boolean {
  let pattern = guardPattern.get(guard);
  if (pattern === undefined) {
    pattern = Buffer.alloc(guard, GUARD_BYTE);
    guardPattern.set(guard, pattern);
  }
  const head = Buffer.from(backing.buffer, backing.byteOffset, guard);
  const tail = Buffer.from(backing.buffer, backing.byteOffset + backing.byteLength - guard, guard);
  return head.equals(pattern) && tail.equals(pattern);
}

export function checkViewIn(memory: GuestMemory, view: Uint8Array, what: string): void {
  const region = memory.bytes;
  if (view.buffer !== region.buffer) violated('VIEW_OUTSIDE_REGION', `${what}: a view onto another buffer`);
  const start = view.byteOffset - region.byteOffset;
  if (start < 0 || start + view.byteLength > region.byteLength) {
    violated('VIEW_OUTSIDE_REGION', `${what}: view [${start}, +${view.byteLength}) outside the region of ${region.byteLength}`);
  }
}

// --- chain accounting --------------------------------------------------------------------------

interface Outstanding {
  count: number;
  /** Bytes the chain can take; a used length above it is a lie to the driver. */
  writable: number;
  /**
   * The chain as pop() returned it; undefined when which chain a used element answers is not
   * known: pop() refused it, or the head was taken again, while outstanding, as other buffers
   * (a driver posting a head it had not got back and rewriting its descriptors meanwhile).
   */
  chain: DescriptorChain | undefined;
  /** Taken more than once as different chains (or a refused one): `chain` stays undefined until all are back. */
  mixed: boolean;
}

/**
 * A target's own checks on the chains a device takes and gives back (what a device writes in a
 * chain is device-specific: a block status byte, a network header). Set per input, after
 * beginInput() (which clears them); `used` runs before the used element is published, while
 * the queue is live, with the chain it answers, or undefined when that is not known (see
 * Outstanding.chain).
 */
export interface ChainHooks {
  popped?(queue: SplitQueue, chain: DescriptorChain): void;
  used?(queue: SplitQueue, head: number, written: number, chain: DescriptorChain | undefined): void;
}

let hooks: ChainHooks = {};

export function setChainHooks(h: ChainHooks): void {
  hooks = h;
}

/** What one queue saw since the last reset of the counters. */
export class QueueWatch {
  /** Chains taken (valid ones and those pop() refused with InvalidChainError). */
  popped = 0;
  /** Buffers (descriptors) of the valid chains taken. */
  descriptors = 0;
  /** Used elements published. */
  used = 0;
  readonly outstanding = new Map<number, Outstanding>();
  /** The last chain pop() returned (for targets that check what a device does with it). */
  lastChain: DescriptorChain | null = null;

  constructor(readonly queue: SplitQueue) {}

  resetCounters(): void {
    this.popped = 0;
    this.descriptors = 0;
    this.used = 0;
  }
}

const watches: QueueWatch[] = [];
const watchOf = new WeakMap<SplitQueue, QueueWatch>();

function watch(queue: SplitQueue): QueueWatch {
  let w = watchOf.get(queue);
  if (w === undefined) {
    w = new QueueWatch(queue);
    watchOf.set(queue, w);
    watches.push(w);
  }
  return w;
}

function take(w: QueueWatch, head: number, writable: number, chain?: DescriptorChain): void {
  const o = w.outstanding.get(head);
  if (o === undefined) w.outstanding.set(head, { count: 1, writable, chain, mixed: false });
  else {
    // The driver may post the same head twice (its own bug); both must be answered. A used
    // element names only the head: when the takes are different chains, the one it answers is
    // not known (a device may answer them in any order), so the target's checks of what was
    // written in a chain are skipped for them, and the used length is held to the largest.
    o.count += 1;
    o.writable = Math.max(o.writable, writable);
    if (!o.mixed && (chain === undefined || o.chain === undefined || !sameBuffers(o.chain, chain))) {
      o.mixed = true;
      o.chain = undefined;
    }
  }
}

/** Whether two chains are the same buffers (the same head taken twice with its descriptors untouched). */
function sameBuffers(a: DescriptorChain, b: DescriptorChain): boolean {
  const same = (x: readonly Uint8Array[], y: readonly Uint8Array[]): boolean =>
    x.length === y.length && x.every((v, i) => v.buffer === y[i]!.buffer && v.byteOffset === y[i]!.byteOffset && v.byteLength === y[i]!.byteLength);
  return same(a.readable, b.readable) && same(a.writable, b.writable);
}

const originalPop = SplitQueue.prototype.pop;
const originalAddUsed = SplitQueue.prototype.addUsed;
let installed = false;

/** Wraps SplitQueue's pop and addUsed (idempotent). */
export function installChainAccounting(): void {
  if (installed) return;
  installed = true;
  SplitQueue.prototype.pop = function pop(this: SplitQueue): DescriptorChain | null {
    const w = watch(this);
    let chain: DescriptorChain | null;
    try {
      chain = originalPop.call(this);
    } catch (err) {
      expectOnly(err, [InvalidChainError, QueueCorruptError]);
      if (err instanceof InvalidChainError) {
        if (!Number.isInteger(err.head) || err.head < 0 || err.head >= this.size) {
          violated('BAD_HEAD', `invalid chain reported with head ${err.head} (queue size ${this.size})`);
        }
        w.popped += 1;
        take(w, err.head, 0);
      }
      throw err;
    }
    if (chain === null) return null;
    checkChain(this, chain);
    w.popped += 1;
    w.descriptors += chain.readable.length + chain.writable.length;
    w.lastChain = chain;
    take(w, chain.head, chain.writableLength, chain);
    hooks.popped?.(this, chain);
    return chain;
  };
  SplitQueue.prototype.addUsed = function addUsed(this: SplitQueue, head: number, written: number): void {
    if (!this.closed) {
      const w = watch(this);
      const o = w.outstanding.get(head);
      if (o === undefined) violated('USED_NOT_TAKEN', `used element for head ${head}, which the device did not take (or gave back already)`);
      if (!Number.isInteger(written) || written < 0 || written > o.writable) {
        violated('USED_LENGTH', `head ${head} given back with ${written} bytes written; it has room for ${o.writable}`);
      }
      hooks.used?.(this, head, written, o.chain);
      o.count -= 1;
      if (o.count === 0) w.outstanding.delete(head);
      w.used += 1;
    }
    originalAddUsed.call(this, head, written);
  };
}

/** Every watched queue, oldest first; forget() drops them (between inputs). */
export function watchedQueues(): readonly QueueWatch[] {
  return watches;
}

export function forgetQueues(): void {
  watches.length = 0;
}

/** The watch of one queue (created on first use). */
export function queueWatch(queue: SplitQueue): QueueWatch {
  return watch(queue);
}

/**
 * A chain pop() returned: its buffers lie in the region, readable before writable (by
 * construction of the lists), the lengths add up, and it is no longer than the queue
 * (virtio 1.2 §2.7.5.3.1, indirect tables included).
 */
function checkChain(queue: SplitQueue, chain: DescriptorChain): void {
  if (chain.head < 0 || chain.head >= queue.size) violated('BAD_HEAD', `chain head ${chain.head} (queue size ${queue.size})`);
  const buffers = chain.readable.length + chain.writable.length;
  if (buffers > queue.size) {
    violated('CHAIN_TOO_LONG', `a chain of ${buffers} descriptors was accepted on a queue of ${queue.size}`);
  }
  let r = 0;
  for (const b of chain.readable) {
    checkViewIn(queue.memory, b, 'readable buffer');
    r += b.byteLength;
  }
  let w = 0;
  for (const b of chain.writable) {
    checkViewIn(queue.memory, b, 'writable buffer');
    w += b.byteLength;
  }
  if (r !== chain.readableLength || w !== chain.writableLength) {
    violated('CHAIN_LENGTH', `lengths ${chain.readableLength}/${chain.writableLength} but buffers hold ${r}/${w}`);
  }
}

// --- bounds --------------------------------------------------------------------------------------

/** Counters of all watched queues, zeroed: call before a notification is delivered. */
export function beginNotification(): void {
  for (const w of watches) w.resetCounters();
}

/**
 * After one notification (a kick, an activation, a watchdog pass): at most a queue's worth of
 * chains per queue, hence at most size² descriptors (each chain being at most size long).
 */
export function endNotification(what: string): void {
  for (const w of watches) {
    const size = w.queue.size;
    if (w.popped > size) violated('UNBOUNDED_WORK', `${what}: ${w.popped} chains taken from a queue of ${size} in one notification`);
    if (w.descriptors > size * size) {
      violated('UNBOUNDED_WORK', `${what}: ${w.descriptors} descriptors visited on a queue of ${size} in one notification`);
    }
  }
}

/** Every chain taken has been given back, unless its queue was closed (reset, NEEDS_RESET). */
export function checkAllCompleted(what: string): void {
  for (const w of watches) {
    if (w.queue.closed || w.outstanding.size === 0) continue;
    const heads = [...w.outstanding.keys()].slice(0, 8).join(', ');
    violated('REQUEST_NOT_COMPLETED', `${what}: chains ${heads} taken but never given back, and the queue is still live`);
  }
}

// --- memory --------------------------------------------------------------------------------------

const SAMPLE_EVERY = 8192;
/** Heap the harness may gain after warm-up before it counts as growth. */
const HEAP_SLACK = 96 * 1024 * 1024;

let iterations = 0;
let baseline = -1;

/**
 * Called once per input: every SAMPLE_EVERY inputs the heap (after a GC when node runs with
 * --expose-gc, as `npm run fuzz` does) must stay within HEAP_SLACK of its level after warm-up.
 */
export function checkMemory(): void {
  iterations += 1;
  if (iterations % SAMPLE_EVERY !== 0) return;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return;
  gc();
  const used = process.memoryUsage().heapUsed;
  if (baseline < 0 || iterations <= 4 * SAMPLE_EVERY) {
    baseline = baseline < 0 ? used : Math.max(baseline, used);
    return;
  }
  // Under the engine, a line now and then shows whether the heap stays flat over a long run.
  if (process.env['NODE_BAO_FUZZ_ENGINE'] === '1' && iterations % (16 * SAMPLE_EVERY) === 0) {
    process.stderr.write(`oracle: heap ${(used / 1048576).toFixed(1)} MiB after ${iterations} inputs (${(baseline / 1048576).toFixed(1)} MiB after warm-up)\n`);
  }
  if (used > baseline + HEAP_SLACK) {
    violated('MEMORY_GROWTH', `heap ${Math.round(used / 1048576)} MiB after ${iterations} inputs, ${Math.round(baseline / 1048576)} MiB after warm-up`);
  }
}

/** Per-input bookkeeping shared by the targets: queues from the previous input are forgotten. */
export function beginInput(): void {
  installChainAccounting();
  hooks = {};
  firstViolation = undefined;
  forgetQueues();
  checkMemory();
}
