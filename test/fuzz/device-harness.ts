// A device under a MockDriver, scripted by fuzzer bytes: the driver sets the device up with
// decoded features and queue sizes, then runs a decoded script of what a frontend can do to
// its queues (write raw descriptors and indirect tables, post well-formed chains, post any
// head, move avail idx, set used_event and flags, kick through the register or the ioeventfd,
// let the kick watchdog look, reset and start again). Each delivery is checked against the
// oracle's bounds; device-specific steps are the target's.

import type { VirtioDevice } from '../../lib/virtio/device.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC, VERSION_1 } from '../../lib/virtio/features.js';
import { MmioTransport } from '../../lib/virtio/mmio-transport.js';
import type { WorkerScheduler } from '../../lib/virtio/queue-worker.js';
import {
  GuestAllocator,
  GUARD_BYTE,
  InterruptCounter,
  type MockBuffer,
  MockDriver,
  MockDriverError,
  type MockQueue,
} from '../../lib/virtio/testing/mock-driver.js';
import {
  type AddressSpace,
  decodeDescriptor,
  decodeIndex,
  FuzzInput,
  INDIRECT_SLOT_BYTES,
  writeDescriptor,
} from './decode.js';
import {
  beginNotification,
  checkAllCompleted,
  endNotification,
  GUARD_BYTE as ORACLE_GUARD,
  GuardedRegion,
  guardsIntact,
  raiseSwallowed,
  violated,
} from './oracle.js';

/**
 * Lets the microtasks an input's step queued run (a device's promise callbacks, the queue
 * worker's interrupt), as the daemon's event loop does after each callback: six turns cover
 * the deepest chain of them the targets make.
 */
export async function microtasks(): Promise<void> {
  for (let i = 0; i < 6; i += 1) await null;
}

export const REGION_BASE = 0x4000_0000;
export const REGION_SIZE = 64 * 1024;
const GUARD = 256;
const TABLE_COUNT = 4;
const DATA_SIZE = 16 * 1024;

if (GUARD_BYTE !== ORACLE_GUARD) throw new Error('mock driver and oracle disagree on the guard byte');

// One region for the process, cleared per input: a fresh 64 KiB ArrayBuffer per input costs more
// than the rest of an input's work.
const region = new GuardedRegion(REGION_BASE, REGION_SIZE, GUARD);

/**
 * The event loop, played by the script: devices yield to it (their queue workers stop after a
 * budget and continue from `yield`) and set timers (rate limits). Nothing runs by itself under
 * the engine's synchronous loop; the script decides when a turn of the loop or time passes,
 * and each continuation is a delivery of its own, held to the same bounds.
 */
export class ScriptedEventLoop implements WorkerScheduler {
  nowMs = 1_000_000;
  private readonly ready: (() => void)[] = [];
  private readonly timers: { readonly fn: () => void; readonly at: number; live: boolean }[] = [];

  readonly now = (): number => this.nowMs;

  yield(fn: () => void): void {
    this.ready.push(fn);
  }

  after(fn: () => void, ms: number): () => void {
    const timer = { fn, at: this.nowMs + Math.max(0, ms), live: true };
    this.timers.push(timer);
    return () => {
      timer.live = false;
    };
  }

  get idle(): boolean {
    return this.ready.length === 0 && !this.timers.some((t) => t.live);
  }

  /** Runs the oldest continuation; false when there was none. */
  turn(): boolean {
    const fn = this.ready.shift();
    if (fn === undefined) return false;
    fn();
    return true;
  }

  /** Advances the clock by `ms` and fires the timers due by then, earliest first; how many fired. */
  pass(ms: number, deliver: (what: string, fn: () => void) => void): number {
    this.nowMs += ms;
    let fired = 0;
    for (;;) {
      let next = -1;
      for (let i = 0; i < this.timers.length; i += 1) {
        const t = this.timers[i]!;
        if (t.live && t.at <= this.nowMs && (next < 0 || t.at < this.timers[next]!.at)) next = i;
      }
      if (next < 0) break;
      const [timer] = this.timers.splice(next, 1);
      timer!.live = false;
      deliver('timer', timer!.fn);
      fired += 1;
    }
    for (let i = this.timers.length - 1; i >= 0; i -= 1) if (!this.timers[i]!.live) this.timers.splice(i, 1);
    return fired;
  }

  /** When the next live timer is due (ms from now), or -1. */
  nextTimer(): number {
    let at = -1;
    for (const t of this.timers) if (t.live && (at < 0 || t.at < at)) at = t.at;
    return at < 0 ? -1 : at - this.nowMs;
  }
}

export interface HarnessOptions {
  /** Sizes the driver may choose from per queue (each a power of two <= the queue's maximum). */
  readonly maxQueueSize: number;
  /** Whether every chain taken must be given back by the end of each delivery (synchronous devices). */
  readonly completesSynchronously: () => boolean;
}

export class DeviceHarness {
  readonly driver: MockDriver;
  readonly queues: (MockQueue | undefined)[] = [];
  /** Before init() (the mmio target): pools at fixed places in the upper half of the region. */
  private space: AddressSpace = {
    base: REGION_BASE,
    size: REGION_SIZE,
    dataStart: REGION_BASE + 0xa000,
    dataSize: DATA_SIZE,
    tables: Array.from({ length: TABLE_COUNT }, (_, i) => REGION_BASE + 0x8000 + i * INDIRECT_SLOT_BYTES),
    rings: [REGION_BASE],
  };
  private readonly queueCount: number;

  constructor(
    readonly device: VirtioDevice,
    readonly input: FuzzInput,
    private readonly options: HarnessOptions,
    readonly loop: ScriptedEventLoop = new ScriptedEventLoop(),
  ) {
    region.clear();
    const interrupts = new InterruptCounter();
    // The transport's log limiter takes its clock and its summary timer from the scripted loop
    // too. With its default, a real unref'd 5 s setTimeout, every input whose device logged past
    // the burst left a timer (and its limiter) behind: the engine's synchronous loop never gives
    // the event loop a turn, so none of them ever fired (MEMORY_GROWTH after 770,048 mmio inputs,
    // about 600 bytes per such input). In the daemon that timer fires 5 s later, one per transport.
    const transport = new MmioTransport(device, {
      memory: region.memory,
      interrupt: interrupts,
      logLimit: { now: loop.now, setTimer: (fn, ms) => void loop.after(fn, ms) },
    });
    this.driver = new MockDriver(transport, region.memory, interrupts, new GuestAllocator(region.memory), region.backing, GUARD);
    this.queueCount = device.queueMaxSizes.length;
  }

  /** Probe, negotiate decoded features, set up queues of decoded sizes, DRIVER_OK (the device's first look). */
  init(): void {
    const input = this.input;
    const f = input.u8();
    const accept = VERSION_1 | ((f & 1) !== 0 ? RING_EVENT_IDX : 0n) | ((f & 2) !== 0 ? RING_INDIRECT_DESC : 0n);
    const extra = (f & 4) !== 0 ? BigInt(input.u32()) : 0n;
    const sizes = this.device.queueMaxSizes.map((max) => {
      const b = input.u8();
      if (b >= 0xf0) return 0; // queue left off
      return Math.min(1 << (b % 9), max, this.options.maxQueueSize);
    });
    this.queues.length = 0;
    this.deliver('activation', () => {
      try {
        this.driver.init({ features: (offered) => offered & (accept | extra), queueSizes: sizes });
      } catch (err) {
        if (!(err instanceof MockDriverError)) throw err;
      }
    });
    for (let i = 0; i < this.queueCount; i += 1) {
      try {
        this.queues[i] = this.driver.queue(i);
      } catch {
        this.queues[i] = undefined;
      }
    }
    const alloc = this.driver.allocator;
    const tables = Array.from({ length: TABLE_COUNT }, () => alloc.alloc(INDIRECT_SLOT_BYTES, 16));
    const dataStart = alloc.alloc(DATA_SIZE, 8);
    const rings = this.queues.flatMap((q) => (q ? [q.descTable, q.availRing, q.usedRing] : []));
    this.space = {
      base: REGION_BASE,
      size: REGION_SIZE,
      dataStart,
      dataSize: DATA_SIZE,
      tables,
      rings: rings.length > 0 ? rings : [REGION_BASE],
    };
  }

  /** Runs `fn` as one notification: bounded work, guards intact, and (synchronous devices) all completed. */
  deliver(what: string, fn: () => void): void {
    beginNotification();
    fn();
    endNotification(what);
    if (this.options.completesSynchronously()) checkAllCompleted(what);
    if (!guardsIntact(region.backing, GUARD)) violated('GUARD_OVERWRITTEN', `${what}: a byte around the region changed`);
    raiseSwallowed();
  }

  /** A queue index as a driver names it: mostly one of ours, sometimes not. */
  queueIndex(): number {
    const b = this.input.u8();
    return b < 0xf0 ? b % this.queueCount : b - 0xf0 + this.queueCount;
  }

  /**
   * One generic step of the script; returns false when the byte names a device-specific step
   * (the target handles it). `op` is the step byte.
   */
  step(op: number): boolean {
    const input = this.input;
    const qi = this.queueIndex();
    const q = this.queues[qi % this.queueCount];
    switch (op % 14) {
      case 0:
        if (q) this.rawDescriptor(q);
        return true;
      case 1:
        this.indirectEntry();
        return true;
      case 2:
      case 3:
        if (q) this.wellFormedChain(q);
        return true;
      case 4:
        if (q) q.pushAvail(decodeIndex(input, q.size), true);
        return true;
      case 5:
        if (q) q.setAvailIdx(input.bool() ? input.u16() : q.publishedAvailIdx + input.below(4));
        return true;
      case 6:
        if (q) {
          if (input.bool()) q.setUsedEvent(input.u16());
          else q.setAvailFlags(input.u16());
        }
        return true;
      case 7:
        this.deliver(`kick ${qi}`, () => this.driver.kick(qi));
        return true;
      case 8:
        this.deliver(`ioeventfd ${qi}`, () => this.driver.transport.queueNotify(qi));
        return true;
      case 9:
        this.deliver('watchdog', () => this.driver.transport.serveUnkicked());
        return true;
      case 10:
        if (q) q.used();
        if (input.u8() === 0xff) {
          this.deliver('reset', () => this.driver.reset());
          this.init();
        }
        return true;
      case 11:
        this.deliver('event loop turn', () => this.loop.turn());
        return true;
      case 12:
        this.loop.pass(input.pick([1, 10, 100, 1000, 60_000]), (what, fn) => this.deliver(what, fn));
        return true;
      default:
        return false;
    }
  }

  /**
   * Lets the event loop run until the device has nothing left to do (continuations, then timers
   * as time passes), each run a delivery of its own; bounded, since a rate-limited device with
   * an endless supply of work would never settle.
   */
  settle(rounds = 256): void {
    for (let i = 0; i < rounds && !this.loop.idle; i += 1) {
      let turned = false;
      this.deliver('event loop turn', () => {
        turned = this.loop.turn();
      });
      if (turned) continue;
      const due = this.loop.nextTimer();
      if (due < 0) break;
      this.loop.pass(due, (what, fn) => this.deliver(what, fn));
    }
  }

  private rawDescriptor(q: MockQueue): void {
    const index = this.input.below(q.size);
    writeDescriptor(this.driver.memory.view, q.descTable - REGION_BASE + 16 * index, decodeDescriptor(this.input, this.space, q.size));
  }

  private indirectEntry(): void {
    const table = this.input.pick(this.space.tables);
    const entry = this.input.below(INDIRECT_SLOT_BYTES / 16);
    writeDescriptor(this.driver.memory.view, table - REGION_BASE + 16 * entry, decodeDescriptor(this.input, this.space, INDIRECT_SLOT_BYTES / 16));
  }

  private wellFormedChain(q: MockQueue): void {
    const input = this.input;
    const count = 1 + input.below(4);
    const buffers: MockBuffer[] = [];
    let writable = false;
    for (let i = 0; i < count; i += 1) {
      const b = input.u8();
      writable = writable || (b & 1) !== 0; // readable first, then writable, as drivers do
      const length = (b & 2) !== 0 ? input.u16() % 4096 : input.u8();
      buffers.push({ length, writable });
    }
    try {
      q.add(buffers, { indirect: input.bool(), publish: true });
    } catch (err) {
      if (!(err instanceof MockDriverError)) throw err; // the driver ran out of descriptors or memory
    }
  }
}
