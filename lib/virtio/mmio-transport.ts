// MmioTransport: the virtio-mmio version 2 register file of one device (virtio 1.2 §4.2.2).
// It owns feature negotiation, the status machine (status.ts), queue setup, InterruptStatus
// and config generation, and hands the device a DeviceActivation at DRIVER_OK. It knows
// nothing of Bao: the dispatcher calls read()/write() for each trapped access, queueNotify()
// for each ioeventfd kick, and supplies the interrupt.
//
// The reset contract. read() is synchronous. write() returns undefined, except for a Status=0
// write whose device reset is still finishing (VirtioDevice.reset() returned a Promise): then
// it returns a Promise that settles once the device is quiet, and the dispatcher completes that
// trapped access only then (the vCPU stays paused meanwhile, as on a device whose reset takes
// time). So once the driver's reset write completes, nothing the device does touches guest
// memory or a ring. While the reset finishes, the registers already read as after a reset and
// other writes are refused (RESET_IN_PROGRESS); another Status=0 write gets the same Promise.
//
// Every register value comes from the guest. A bad access (width, alignment, offset,
// direction, state) is a guest fault: counted in `stats`, logged (rate-limited in time per
// transport, log-limiter.ts), ignored, reads give 0. Nothing here throws at the guest, and
// nothing a guest does can make the device touch memory outside the region (queues are
// validated at activation).

import type { DeviceActivation, VirtioDevice } from './device.js';
import { checkTransportState, StateMismatchError, TRANSPORT_STATE_VERSION, type DeviceStateStore, type TransportState } from './device-state.js';
import { QueueConfigError, type RingFaultCode } from './errors.js';
import {
  checkAccepted,
  featureWord,
  formatFeatures,
  hasFeature,
  RING_EVENT_IDX,
  RING_INDIRECT_DESC,
  TRANSPORT_FEATURES,
  withFeatureWord,
} from './features.js';
import { addressFromWords, type GuestMemory } from './guest-memory.js';
import { rateLimitedLogger, type LogLimitOptions } from './log-limiter.js';
import { silentLogger, type Logger } from './logger.js';
import * as R from './mmio-registers.js';
import { SplitQueue } from './split-queue.js';
import { classifyStatusWrite, DEVICE_NEEDS_RESET, DRIVER, DRIVER_OK, FAILED, FEATURES_OK, formatStatus, VALID_TRANSITIONS } from './status.js';

export type TransportFaultCode =
  | 'BAD_WIDTH'
  | 'UNALIGNED'
  | 'UNKNOWN_REGISTER'
  | 'READ_ONLY_REGISTER'
  | 'WRITE_ONLY_REGISTER'
  | 'FEATURES_LOCKED'
  | 'FEATURES_SEL_OUT_OF_RANGE'
  | 'FEATURES_REJECTED'
  | 'STATUS_TRANSITION'
  | 'DRIVER_OK_REFUSED'
  | 'RESET_IN_PROGRESS'
  | 'QUEUE_SEL_OUT_OF_RANGE'
  | 'QUEUE_SETUP_LOCKED'
  | 'QUEUE_NUM_INVALID'
  | 'QUEUE_CONFIG_INVALID'
  | 'QUEUE_NOTIFY_INVALID'
  | 'QUEUE_RESET_UNSUPPORTED'
  | 'CONFIG_ACCESS_INVALID'
  | 'CONFIG_READ_ONLY'
  | 'CONFIG_WRITE_REFUSED';

export interface TransportStats {
  /** All guest faults, whatever their kind. */
  guestFaults: number;
  /** Guest faults by kind: register accesses, and the rings' faults (counted by the device's queues). */
  readonly faults: Partial<Record<TransportFaultCode | RingFaultCode, number>>;
  /** Used-buffer interrupts signalled. */
  usedInterrupts: number;
  /**
   * Per queue (by index): kicks delivered to the device, used-buffer interrupts it raised, and
   * publications the driver asked not to be interrupted for (EVENT_IDX's used_event, or
   * NO_INTERRUPT). Where a queue's completions reach the driver, and how often it is told.
   */
  readonly notifiesByQueue: number[];
  readonly usedInterruptsByQueue: number[];
  readonly usedSuppressedByQueue: number[];
  /** Configuration-change interrupts signalled (config changes, NEEDS_RESET). */
  configInterrupts: number;
  /** Queue notifications delivered to the device. */
  notifies: number;
  /** Notifications dropped: device not active (stale ioeventfds), FAILED, resetting. */
  droppedNotifies: number;
  /** Queues found with buffers the driver made available but no kick announced (see serveUnkicked). */
  missedKicks: number;
  activations: number;
  resets: number;
  /** Times the device entered DEVICE_NEEDS_RESET. */
  needsReset: number;
}

/** What the dispatcher learns at DRIVER_OK: register one ioeventfd per enabled queue. */
export interface ActivationInfo {
  readonly queues: readonly number[];
  readonly features: bigint;
}

export interface MmioTransportOptions {
  /** The shared region, or a function giving it (resolved at each activation). */
  readonly memory: GuestMemory | (() => GuestMemory);
  /** Raises the frontend interrupt (the irqfd write). InterruptStatus is set before the call. */
  readonly interrupt: { signal(): void };
  readonly log?: Logger;
  /** The time-based limit of this device model's log lines (log-limiter.ts defaults). */
  readonly logLimit?: LogLimitOptions;
  readonly vendorId?: number;
  /** The device went live (DRIVER_OK accepted, device.activate() called). */
  readonly onActivate?: (info: ActivationInfo) => void;
  /** The driver reset the device (status 0), once the device's reset has finished. */
  readonly onReset?: () => void;
  /**
   * Where InterruptStatus lives (default: a word of its own). Another thread may answer the
   * frontend's InterruptStatus reads and InterruptACK writes from this word (lib/vmm's hot
   * registers), so the transport changes it only atomically: bits are set (Atomics.or) before
   * the interrupt is signalled, ACKs clear only the bits written (Atomics.and).
   */
  readonly interruptStatusWord?: { readonly words: Int32Array; readonly index: number };
  /**
   * Where the transport saves its state after each change (device-state.ts), so that another
   * process can resume the device with its driver still bound. Saved before the write that
   * changed it is completed.
   */
  readonly state?: DeviceStateStore;
}

/**
 * What a tracer sees of the transport (lib/vmm/trace): set MmioTransport.trace while someone
 * traces, leave it undefined otherwise (one property check on each path below).
 */
export interface TransportTrace {
  /** A queue notification reached the transport; `delivered` false when it was dropped. */
  notify(queue: number, delivered: boolean): void;
  /** The device published used buffers on `queue` (used idx now); `interrupted` when an interrupt follows. */
  used(queue: number, usedIdx: number, interrupted: boolean): void;
  /** A guest fault (a bad register access or a ring fault). */
  fault(code: string, detail: Readonly<Record<string, unknown>>): void;
  /** The device entered DEVICE_NEEDS_RESET. */
  needsReset(reason: string): void;
}

/** stateWords: the transport's own words, then each queue's (see stateChanged()). */
const STATE_WORDS = 7;
const QUEUE_STATE_WORDS = 8;

interface QueueRegisters {
  readonly maxSize: number;
  size: number;
  ready: boolean;
  descLow: number;
  descHigh: number;
  driverLow: number;
  driverHigh: number;
  deviceLow: number;
  deviceHigh: number;
}

interface ActiveState {
  readonly kind: 'active';
  readonly activation: Activation;
  readonly queues: (SplitQueue | undefined)[];
  /** Per queue: the driver's avail idx when the device last looked (a kick), or -1. */
  readonly lookedAt: Int32Array;
  /** Per queue: an avail idx found unannounced by serveUnkicked's previous call, or -1. */
  readonly unannounced: Int32Array;
}

type Lifecycle = { kind: 'inactive' } | ActiveState;

export class MmioTransport {
  readonly stats: TransportStats = {
    guestFaults: 0,
    faults: {},
    usedInterrupts: 0,
    notifiesByQueue: [],
    usedInterruptsByQueue: [],
    usedSuppressedByQueue: [],
    configInterrupts: 0,
    notifies: 0,
    droppedNotifies: 0,
    missedKicks: 0,
    activations: 0,
    resets: 0,
    needsReset: 0,
  };

  /** Set by a tracer (lib/vmm/trace) while it traces this device; undefined otherwise. */
  trace: TransportTrace | undefined = undefined;

  private readonly log: Logger;
  private readonly vendorId: number;
  private readonly offered: bigint;
  /** The two 32-bit words of `offered`, as DeviceFeatures reads them (no BigInt work per read). */
  private readonly offeredWords: readonly [number, number];
  private readonly queueRegs: QueueRegisters[];
  private lifecycle: Lifecycle = { kind: 'inactive' };
  private statusValue = 0;
  /** InterruptStatus: Atomics only (see MmioTransportOptions.interruptStatusWord). */
  private readonly isrWords: Int32Array;
  private readonly isrIndex: number;
  private generation = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  /** Assignments of driverFeatures so far (stateChanged()). */
  private driverFeaturesWrites = 0;
  private queueSel = 0;
  /** Set while a device reset that returned a Promise is finishing. */
  private resetting: Promise<void> | undefined;
  /** Where state is saved; dropped by detachState() (shutdown keeps the last live image). */
  private stateStore: DeviceStateStore | undefined;
  /**
   * What captureState() would hold, as words (the fields that change: status, features,
   * selectors, generation, InterruptStatus, each queue's registers), and the same as last saved.
   * Most JS-handled writes change none of them (a write to a read-only register, a fault flood's
   * thousands): compared as words, they cost no capture, no JSON and no garbage. Allocated once.
   */
  private readonly stateWords: Uint32Array;
  private readonly savedWords: Uint32Array;
  private saved = false;
  /** Set while resume() activates: queues continue from the ring's used idx. */
  private resuming = false;

  constructor(
    readonly device: VirtioDevice,
    private readonly options: MmioTransportOptions,
  ) {
    this.log = rateLimitedLogger((options.log ?? silentLogger).child({ device: device.name }), options.logLimit);
    this.vendorId = options.vendorId ?? R.BAO_VENDOR_ID;
    this.offered = device.features | TRANSPORT_FEATURES;
    this.offeredWords = [featureWord(this.offered, 0), featureWord(this.offered, 1)];
    this.queueRegs = device.queueMaxSizes.map((maxSize) => newQueueRegisters(maxSize));
    this.isrWords = options.interruptStatusWord?.words ?? new Int32Array(1);
    this.isrIndex = options.interruptStatusWord?.index ?? 0;
    Atomics.store(this.isrWords, this.isrIndex, 0);
    this.stateStore = options.state;
    this.stateWords = new Uint32Array(STATE_WORDS + QUEUE_STATE_WORDS * this.queueRegs.length);
    this.savedWords = new Uint32Array(this.stateWords.length);
  }

  get status(): number {
    return this.statusValue;
  }

  get interruptStatus(): number {
    return Atomics.load(this.isrWords, this.isrIndex) >>> 0;
  }

  get configGeneration(): number {
    return this.generation;
  }

  /** Features the driver accepted (meaningful once FEATURES_OK is set). */
  get features(): bigint {
    return this.driverFeatures;
  }

  get offeredFeatures(): bigint {
    return this.offered;
  }

  get active(): boolean {
    return this.lifecycle.kind === 'active';
  }

  /** The selector registers now (a tracer decodes the registers they select). */
  get selectors(): { readonly deviceFeaturesSel: number; readonly driverFeaturesSel: number; readonly queueSel: number } {
    return { deviceFeaturesSel: this.deviceFeaturesSel, driverFeaturesSel: this.driverFeaturesSel, queueSel: this.queueSel };
  }

  /** A device reset is still finishing (the driver's Status=0 write is not complete yet). */
  get resetInProgress(): boolean {
    return this.resetting !== undefined;
  }

  /** A guest load of `width` bytes at `offset` in the window; the value zero-extended. */
  read(offset: number, width: number): number {
    if (!Number.isInteger(offset) || offset < 0 || offset >= R.MMIO_WINDOW_SIZE) {
      return this.fault('UNKNOWN_REGISTER', { offset, width, read: true });
    }
    if (offset >= R.MMIO_CONFIG) return this.readConfig(offset - R.MMIO_CONFIG, width);
    if (width !== 4) return this.fault('BAD_WIDTH', { offset, width, read: true });
    if (offset % 4 !== 0) return this.fault('UNALIGNED', { offset, width, read: true });
    const q = this.selectedQueue();
    switch (offset) {
      case R.MMIO_MAGIC_VALUE:
        return R.MAGIC_VALUE;
      case R.MMIO_VERSION:
        return R.MMIO_VERSION_2;
      case R.MMIO_DEVICE_ID:
        return this.device.deviceId;
      case R.MMIO_VENDOR_ID:
        return this.vendorId;
      case R.MMIO_DEVICE_FEATURES:
        // Words past the second read 0 (features.ts featureWord).
        return this.deviceFeaturesSel === 0 ? this.offeredWords[0] : this.deviceFeaturesSel === 1 ? this.offeredWords[1] : 0;
      case R.MMIO_QUEUE_NUM_MAX:
        // §4.2.2: 0 for a queue that is not available (how drivers probe the count).
        return q?.maxSize ?? 0;
      case R.MMIO_QUEUE_READY:
        return q?.ready ? 1 : 0;
      case R.MMIO_INTERRUPT_STATUS:
        return this.interruptStatus | this.externalInterrupts();
      case R.MMIO_STATUS:
        return this.statusValue;
      case R.MMIO_SHM_LEN_LOW:
      case R.MMIO_SHM_LEN_HIGH:
      case R.MMIO_SHM_BASE_LOW:
      case R.MMIO_SHM_BASE_HIGH:
        return R.SHM_ABSENT;
      case R.MMIO_QUEUE_RESET:
        return 0;
      case R.MMIO_CONFIG_GENERATION:
        return this.generation;
      case R.MMIO_DEVICE_FEATURES_SEL:
      case R.MMIO_DRIVER_FEATURES:
      case R.MMIO_DRIVER_FEATURES_SEL:
      case R.MMIO_QUEUE_SEL:
      case R.MMIO_QUEUE_NUM:
      case R.MMIO_QUEUE_NOTIFY:
      case R.MMIO_INTERRUPT_ACK:
      case R.MMIO_QUEUE_DESC_LOW:
      case R.MMIO_QUEUE_DESC_HIGH:
      case R.MMIO_QUEUE_DRIVER_LOW:
      case R.MMIO_QUEUE_DRIVER_HIGH:
      case R.MMIO_QUEUE_DEVICE_LOW:
      case R.MMIO_QUEUE_DEVICE_HIGH:
      case R.MMIO_SHM_SEL:
        return this.fault('WRITE_ONLY_REGISTER', { offset });
      default:
        return this.fault('UNKNOWN_REGISTER', { offset, width, read: true });
    }
  }

  /**
   * A guest store of `width` bytes at `offset`; `value` is masked to the width here. Returns a
   * Promise only for a reset that is still finishing: complete the access when it settles.
   */
  write(offset: number, width: number, value: number): void | Promise<void> {
    // A selector written with the value it holds changes nothing (a probe's QueueSel 0 after reset).
    const unchanged = width === 4 && this.resetting === undefined && this.selectorHolds(offset, maskToWidth(value, 4));
    const result = this.writeRegister(offset, width, value);
    // Kicks and interrupt ACKs change nothing a successor needs (it raises an interrupt anyway).
    if (!unchanged && offset !== R.MMIO_QUEUE_NOTIFY && offset !== R.MMIO_INTERRUPT_ACK) this.saveState();
    return result;
  }

  private selectorHolds(offset: number, v: number): boolean {
    switch (offset) {
      case R.MMIO_QUEUE_SEL:
        return v === this.queueSel;
      case R.MMIO_DEVICE_FEATURES_SEL:
        return v === this.deviceFeaturesSel;
      case R.MMIO_DRIVER_FEATURES_SEL:
        return v === this.driverFeaturesSel;
      default:
        return false;
    }
  }

  private writeRegister(offset: number, width: number, value: number): void | Promise<void> {
    if (!Number.isInteger(offset) || offset < 0 || offset >= R.MMIO_WINDOW_SIZE) {
      this.fault('UNKNOWN_REGISTER', { offset, width, write: true });
      return;
    }
    const v = maskToWidth(value, width);
    if (this.resetting !== undefined) {
      if (offset === R.MMIO_STATUS && width === 4 && v === 0) return this.resetting;
      this.fault('RESET_IN_PROGRESS', { offset, width, value: v });
      return;
    }
    if (offset >= R.MMIO_CONFIG) {
      this.writeConfig(offset - R.MMIO_CONFIG, width, v);
      return;
    }
    if (width !== 4) {
      this.fault('BAD_WIDTH', { offset, width, write: true });
      return;
    }
    if (offset % 4 !== 0) {
      this.fault('UNALIGNED', { offset, width, write: true });
      return;
    }
    switch (offset) {
      case R.MMIO_DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = v;
        return;
      case R.MMIO_DRIVER_FEATURES:
        this.writeDriverFeatures(v);
        return;
      case R.MMIO_DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = v;
        return;
      case R.MMIO_QUEUE_SEL:
        this.queueSel = v;
        // Kept as written so QueueNumMax reads 0, as §4.2.2 promises; setup writes are refused.
        if (v >= this.queueRegs.length) this.fault('QUEUE_SEL_OUT_OF_RANGE', { queue: v });
        return;
      case R.MMIO_QUEUE_NUM:
        this.writeQueueNum(v);
        return;
      case R.MMIO_QUEUE_READY:
        this.writeQueueReady(v);
        return;
      case R.MMIO_QUEUE_NOTIFY:
        if (this.lifecycle.kind === 'active' && v >= this.queueRegs.length) {
          this.fault('QUEUE_NOTIFY_INVALID', { queue: v });
          return;
        }
        this.queueNotify(v);
        return;
      case R.MMIO_INTERRUPT_ACK:
        Atomics.and(this.isrWords, this.isrIndex, ~v);
        return;
      case R.MMIO_STATUS:
        return this.writeStatus(v);
      case R.MMIO_QUEUE_DESC_LOW:
      case R.MMIO_QUEUE_DESC_HIGH:
      case R.MMIO_QUEUE_DRIVER_LOW:
      case R.MMIO_QUEUE_DRIVER_HIGH:
      case R.MMIO_QUEUE_DEVICE_LOW:
      case R.MMIO_QUEUE_DEVICE_HIGH:
        this.writeQueueAddress(offset, v);
        return;
      case R.MMIO_SHM_SEL:
        return; // no shared memory regions: every selector reads as absent
      case R.MMIO_QUEUE_RESET:
        this.fault('QUEUE_RESET_UNSUPPORTED', { value: v }); // RING_RESET is not offered
        return;
      case R.MMIO_MAGIC_VALUE:
      case R.MMIO_VERSION:
      case R.MMIO_DEVICE_ID:
      case R.MMIO_VENDOR_ID:
      case R.MMIO_DEVICE_FEATURES:
      case R.MMIO_QUEUE_NUM_MAX:
      case R.MMIO_INTERRUPT_STATUS:
      case R.MMIO_SHM_LEN_LOW:
      case R.MMIO_SHM_LEN_HIGH:
      case R.MMIO_SHM_BASE_LOW:
      case R.MMIO_SHM_BASE_HIGH:
      case R.MMIO_CONFIG_GENERATION:
        this.fault('READ_ONLY_REGISTER', { offset, value: v });
        return;
      default:
        this.fault('UNKNOWN_REGISTER', { offset, width, write: true });
    }
  }

  /** The driver kicked queue `index` (QueueNotify write or its ioeventfd). */
  queueNotify(index: number): void {
    const state = this.lifecycle;
    if (state.kind !== 'active' || state.queues[index] === undefined || (this.statusValue & FAILED) !== 0) {
      // Before DRIVER_OK, after a reset (ioeventfds cannot be deregistered, bao-abi.md §3.7),
      // after the driver gave up (FAILED): nothing to serve.
      this.stats.droppedNotifies += 1;
      this.trace?.notify(index, false);
      return;
    }
    this.stats.notifies += 1;
    bump(this.stats.notifiesByQueue, index);
    this.trace?.notify(index, true);
    const q = state.queues[index];
    if (q !== undefined) {
      state.lookedAt[index] = q.availIndex();
      state.unannounced[index] = -1;
    }
    try {
      this.device.queueNotify(index);
    } catch (err) {
      this.enterNeedsReset('device queue handler threw', { queue: index, error: String(err) });
    }
  }

  /**
   * The kick watchdog's look at the rings. A kick only says "look now"; a device may look at any
   * time, so serving buffers nobody announced is always correct. It is needed when kicks go
   * astray: on the v2 drivers a previous daemon's ioeventfds stay registered until the driver
   * is removed, and the first registration of an address takes every kick (bao-abi.md §3.7).
   * A queue whose avail idx moved since the device last looked, although the device had asked
   * for a kick, is noted, and served at the next call if the device has still not looked by then
   * (its kick may just be on the way). Returns how many queues were served.
   */
  serveUnkicked(): number {
    const state = this.lifecycle;
    if (state.kind !== 'active' || (this.statusValue & (DEVICE_NEEDS_RESET | FAILED)) !== 0) return 0;
    let served = 0;
    for (let index = 0; index < state.queues.length; index += 1) {
      const q = state.queues[index];
      if (q === undefined || q.closed) continue;
      const avail = q.availIndex();
      const lookedAt = state.lookedAt[index]!;
      if (avail === lookedAt) continue;
      if (!q.notificationDue(lookedAt)) {
        // The device did not ask to be told (it has not re-armed): no kick was due, none lost.
        state.unannounced[index] = -1;
        continue;
      }
      if (state.unannounced[index] === -1) {
        state.unannounced[index] = avail;
        continue;
      }
      this.stats.missedKicks += 1;
      served += 1;
      this.queueNotify(index);
      // The handler may have reset the device or failed it: stop looking at this activation.
      if (this.lifecycle !== state) break;
    }
    return served;
  }

  /** Whether serveUnkicked noted unannounced buffers it will serve at its next call. */
  get awaitingKick(): boolean {
    const state = this.lifecycle;
    return state.kind === 'active' && state.unannounced.some((avail) => avail !== -1);
  }

  /** Device-side: set DEVICE_NEEDS_RESET (§2.1.2) and tell a live driver. Idempotent. */
  enterNeedsReset(reason: string, detail: Record<string, unknown> = {}): void {
    if ((this.statusValue & DEVICE_NEEDS_RESET) !== 0) return;
    this.log.error({ ...detail, status: formatStatus(this.statusValue) }, `device needs reset: ${reason}`);
    this.trace?.needsReset(reason);
    this.stats.needsReset += 1;
    this.statusValue |= DEVICE_NEEDS_RESET;
    const state = this.lifecycle;
    if (state.kind === 'active') {
      // The device must stop using its queues; closed queues make sure it cannot.
      for (const q of state.queues) q?.close();
    }
    if ((this.statusValue & DRIVER_OK) !== 0) this.raiseConfigInterrupt();
    this.saveState();
  }

  /** The registers as another process needs them to take the device over (device-state.ts). */
  captureState(): TransportState {
    return {
      version: TRANSPORT_STATE_VERSION,
      deviceId: this.device.deviceId,
      offered: this.offered.toString(16),
      queueMaxSizes: this.queueRegs.map((q) => q.maxSize),
      status: this.statusValue,
      driverFeatures: this.driverFeatures.toString(16),
      generation: this.generation,
      interruptStatus: this.interruptStatus,
      queueSel: this.queueSel,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      queues: this.queueRegs.map((q) => ({
        size: q.size,
        ready: q.ready,
        desc: addressFromWords(q.descLow, q.descHigh),
        driver: addressFromWords(q.driverLow, q.driverHigh),
        device: addressFromWords(q.deviceLow, q.deviceHigh),
      })),
    };
  }

  /** Fills stateWords; whether they differ from savedWords. */
  private stateChanged(): boolean {
    const w = this.stateWords;
    w[0] = this.statusValue;
    w[1] = this.driverFeaturesWrites; // no BigInt work: counts assignments (the JSON check dedups)
    w[2] = this.generation;
    w[3] = this.interruptStatus;
    w[4] = this.queueSel;
    w[5] = this.deviceFeaturesSel;
    w[6] = this.driverFeaturesSel;
    let i = STATE_WORDS;
    for (const q of this.queueRegs) {
      w[i++] = q.size;
      w[i++] = q.ready ? 1 : 0;
      w[i++] = q.descLow;
      w[i++] = q.descHigh;
      w[i++] = q.driverLow;
      w[i++] = q.driverHigh;
      w[i++] = q.deviceLow;
      w[i++] = q.deviceHigh;
    }
    const saved = this.savedWords;
    for (let k = 0; k < w.length; k += 1) if (w[k] !== saved[k]) return true;
    return false;
  }

  /** Stop saving state (shutdown: the image of the live device stays for the next process). */
  detachState(): void {
    this.stateStore = undefined;
  }

  private saveState(): void {
    const store = this.stateStore;
    if (store === undefined) return;
    if (!this.stateChanged() && this.saved) return;
    try {
      store.save({ transport: this.captureState() });
      this.savedWords.set(this.stateWords);
      this.saved = true;
    } catch (err) {
      // The device keeps working; only a restart would not resume it.
      this.log.error({ error: String(err) }, 'cannot save the device state');
    }
  }

  /**
   * Takes over a device another process served, its driver still bound: restores the registers
   * from `saved` (untrusted: checked as the driver's own writes would be) and, if the driver had
   * set DRIVER_OK, activates the device on the saved queues, continuing from the used idx in
   * each ring, then raises the used-buffer interrupt so that the driver reaps what completed.
   * Throws StateMismatchError (nothing changed) when the state does not fit this device; a ring
   * found inconsistent puts this device in NEEDS_RESET. Only on a fresh transport.
   */
  resume(saved: unknown): 'active' | 'setup' {
    if (this.lifecycle.kind !== 'inactive' || this.statusValue !== 0) throw new StateMismatchError('the transport is already in use');
    const s = checkTransportState(saved, { deviceId: this.device.deviceId, offered: this.offered, queueMaxSizes: this.queueRegs.map((q) => q.maxSize) });
    const driverBits = s.status & ~(DEVICE_NEEDS_RESET | FAILED);
    if (driverBits !== 0 && !VALID_TRANSITIONS.some(([, to]) => to === driverBits)) {
      throw new StateMismatchError('saved status is not one a driver can reach', { status: formatStatus(s.status) });
    }
    const features = BigInt(`0x${s.driverFeatures}`);
    if ((s.status & FEATURES_OK) !== 0 && !checkAccepted(this.offered, features).ok) {
      throw new StateMismatchError('saved driver features are not acceptable', { features: formatFeatures(features) });
    }
    const live = (s.status & DRIVER_OK) !== 0 && (s.status & (FAILED | DEVICE_NEEDS_RESET)) === 0;
    if (live && this.device.resumesFromUsed !== true) {
      throw new StateMismatchError('this device cannot take over in-flight work from another process');
    }
    if (live && !s.queues.some((q) => q.ready)) throw new StateMismatchError('saved state is live with no queue ready');
    this.statusValue = s.status;
    this.driverFeatures = features;
    this.driverFeaturesWrites += 1;
    this.generation = s.generation;
    this.queueSel = s.queueSel;
    this.deviceFeaturesSel = s.deviceFeaturesSel;
    this.driverFeaturesSel = s.driverFeaturesSel;
    Atomics.store(this.isrWords, this.isrIndex, s.interruptStatus & (R.INTERRUPT_VRING | R.INTERRUPT_CONFIG));
    s.queues.forEach((q, i) => {
      const r = this.queueRegs[i]!;
      r.size = q.size;
      r.ready = q.ready;
      [r.descLow, r.descHigh] = wordsOf(q.desc);
      [r.driverLow, r.driverHigh] = wordsOf(q.driver);
      [r.deviceLow, r.deviceHigh] = wordsOf(q.device);
    });
    if (!live) {
      this.saveState();
      return 'setup';
    }
    this.resuming = true;
    try {
      this.activate();
    } finally {
      this.resuming = false;
    }
    if ((this.lifecycle as Lifecycle).kind === 'active' && (this.statusValue & DEVICE_NEEDS_RESET) === 0) {
      // What completed while no process ran, or what the old one published without telling.
      Atomics.or(this.isrWords, this.isrIndex, R.INTERRUPT_VRING);
      this.stats.usedInterrupts += 1;
      this.options.interrupt.signal();
    }
    this.saveState();
    return 'active';
  }

  private writeStatus(value: number): void | Promise<void> {
    const from = this.statusValue & ~DEVICE_NEEDS_RESET;
    const change = classifyStatusWrite(from, value);
    switch (change.kind) {
      case 'reset':
        return this.reset();
      case 'unchanged':
        return;
      case 'failed':
        this.log.warn({ status: formatStatus(from | FAILED) }, 'driver gave up on the device (FAILED)');
        this.statusValue |= FAILED;
        // The driver will not use the device again before a reset: stop serving its queues.
        if (this.lifecycle.kind === 'active') for (const q of this.lifecycle.queues) q?.close();
        return;
      case 'invalid':
        // Ignored, whatever the bits (DRIVER_OK out of order included): the status stays as it
        // was, the driver reads it back and sees its write did not take.
        this.fault('STATUS_TRANSITION', { from: formatStatus(from), to: formatStatus(value) });
        return;
      case 'advance': {
        const to = change.to;
        if ((to & DRIVER_OK) !== 0) {
          // Never live while the device asks for a reset, nor with nothing to serve.
          const refusal =
            (this.statusValue & DEVICE_NEEDS_RESET) !== 0
              ? 'the device needs a reset'
              : this.queueRegs.some((q) => q.ready)
                ? undefined
                : 'no queue is ready';
          if (refusal !== undefined) {
            this.fault('DRIVER_OK_REFUSED', { reason: refusal, status: formatStatus(this.statusValue) });
            return;
          }
        }
        if ((to & FEATURES_OK) !== 0 && (from & FEATURES_OK) === 0) {
          const check = checkAccepted(this.offered, this.driverFeatures);
          if (!check.ok) {
            // §3.1.1: FEATURES_OK does not stick; the driver reads it back and gives up.
            this.fault('FEATURES_REJECTED', {
              reason: check.reason,
              accepted: formatFeatures(this.driverFeatures),
              offered: formatFeatures(this.offered),
            });
            return;
          }
        }
        this.statusValue = change.to | (this.statusValue & DEVICE_NEEDS_RESET);
        if ((to & DRIVER_OK) !== 0) this.activate();
        return;
      }
    }
  }

  private activate(): void {
    const features = this.driverFeatures;
    let memory: GuestMemory;
    const queues: (SplitQueue | undefined)[] = [];
    try {
      memory = typeof this.options.memory === 'function' ? this.options.memory() : this.options.memory;
      this.queueRegs.forEach((q, index) => {
        if (!q.ready) {
          queues.push(undefined);
          return;
        }
        try {
          queues.push(
            new SplitQueue(memory, {
              size: q.size,
              maxSize: q.maxSize,
              descTable: addressFromWords(q.descLow, q.descHigh),
              availRing: addressFromWords(q.driverLow, q.driverHigh),
              usedRing: addressFromWords(q.deviceLow, q.deviceHigh),
              eventIdx: hasFeature(features, RING_EVENT_IDX),
              indirect: hasFeature(features, RING_INDIRECT_DESC),
            }),
          );
          if (this.resuming) queues[queues.length - 1]?.resumeFromUsed();
        } catch (err) {
          if (err instanceof QueueConfigError) {
            this.fault('QUEUE_CONFIG_INVALID', { queue: index, code: err.code, ...err.detail });
          }
          throw err;
        }
      });
    } catch (err) {
      this.enterNeedsReset('cannot activate: queue setup refused', { error: String(err) });
      return;
    }
    const activation = new Activation(this, memory, queues, features, this.log);
    this.lifecycle = {
      kind: 'active',
      activation,
      queues,
      lookedAt: new Int32Array(queues.length).fill(-1),
      unannounced: new Int32Array(queues.length).fill(-1),
    };
    this.stats.activations += 1;
    this.log.info({ features: formatFeatures(features), queues: queues.map((q) => q?.size ?? 0), ...(this.resuming ? { resumed: true } : {}) }, this.resuming ? 'device activated on its saved queues (resumed)' : 'device activated');
    try {
      const result = this.device.activate(activation);
      if (result instanceof Promise) {
        result.catch((err: unknown) => {
          if (activation.live) this.enterNeedsReset('device activation failed', { error: String(err) });
        });
      }
    } catch (err) {
      this.enterNeedsReset('device activation failed', { error: String(err) });
      return;
    }
    if ((this.statusValue & DEVICE_NEEDS_RESET) !== 0) return;
    // activate() is the device's first look at its rings: buffers made available before
    // DRIVER_OK (their kicks were dropped) are its to take there, not kicks gone astray.
    const active = this.lifecycle;
    if (active.kind === 'active' && active.activation === activation) {
      queues.forEach((q, i) => {
        if (q !== undefined) active.lookedAt[i] = q.availIndex();
      });
    }
    const enabled = queues.flatMap((q, i) => (q ? [i] : []));
    this.options.onActivate?.({ queues: enabled, features });
  }

  /**
   * Status 0 (§2.1.1 / §4.2.3.1): back to the state after power-on, ready to be set up again.
   * A Promise when the device's reset is still finishing (see the banner).
   */
  private reset(): void | Promise<void> {
    const state = this.lifecycle;
    this.lifecycle = { kind: 'inactive' };
    if (state.kind === 'active') {
      state.activation.live = false;
      for (const q of state.queues) q?.close();
    }
    let pending: Promise<void> | undefined;
    try {
      const result = this.device.reset();
      if (result instanceof Promise) {
        pending = result.then(
          () => {},
          (err: unknown) => this.log.error({ error: String(err) }, 'device reset failed'),
        );
      }
    } catch (err) {
      this.log.error({ error: String(err) }, 'device reset failed');
    }
    this.clearRegisters();
    const finish = (): void => {
      this.resetting = undefined;
      this.stats.resets += 1;
      if (state.kind === 'active') this.log.info({}, 'device reset by the driver');
      try {
        this.options.onReset?.();
      } catch (err) {
        // The Promise the dispatcher awaits must settle, never reject.
        this.log.error({ error: String(err) }, 'onReset hook threw');
      }
    };
    // Only a device that was live can have work touching guest memory: a reset before the first
    // DRIVER_OK (every driver's probe starts with one) is not held for what the device tidies.
    if (pending === undefined || state.kind !== 'active') {
      finish();
      return undefined;
    }
    this.resetting = pending.then(finish);
    return this.resetting;
  }

  private clearRegisters(): void {
    this.statusValue = 0;
    Atomics.store(this.isrWords, this.isrIndex, 0);
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.driverFeatures = 0n;
    this.driverFeaturesWrites += 1;
    this.queueSel = 0;
    this.queueRegs.forEach((q, i) => {
      this.queueRegs[i] = newQueueRegisters(q.maxSize);
    });
  }

  private writeDriverFeatures(value: number): void {
    const s = this.statusValue;
    if ((s & DRIVER) === 0 || (s & (FEATURES_OK | DRIVER_OK | FAILED)) !== 0) {
      this.fault('FEATURES_LOCKED', { status: formatStatus(s) });
      return;
    }
    if (this.driverFeaturesSel > 1) {
      if (value !== 0) this.fault('FEATURES_SEL_OUT_OF_RANGE', { sel: this.driverFeaturesSel, value });
      return;
    }
    this.driverFeatures = withFeatureWord(this.driverFeatures, this.driverFeaturesSel, value);
    this.driverFeaturesWrites += 1;
  }

  /** The selected queue's registers if it may be set up now (§4.2.3.2), else a logged fault. */
  private setupQueue(): QueueRegisters | undefined {
    const q = this.selectedQueue();
    if (!q) {
      this.fault('QUEUE_SEL_OUT_OF_RANGE', { queue: this.queueSel });
      return undefined;
    }
    const s = this.statusValue;
    if ((s & FEATURES_OK) === 0 || (s & (DRIVER_OK | FAILED | DEVICE_NEEDS_RESET)) !== 0 || q.ready) {
      this.fault('QUEUE_SETUP_LOCKED', { queue: this.queueSel, status: formatStatus(s), ready: q.ready });
      return undefined;
    }
    return q;
  }

  private writeQueueNum(value: number): void {
    const q = this.setupQueue();
    if (!q) return;
    if (value === 0 || value > q.maxSize || (value & (value - 1)) !== 0) {
      this.fault('QUEUE_NUM_INVALID', { queue: this.queueSel, size: value, max: q.maxSize });
      return;
    }
    q.size = value;
  }

  private writeQueueReady(value: number): void {
    const q = this.selectedQueue();
    if (q && value === 0) {
      // Linux's vm_del_vq writes 0 to every queue it tears down, usually after the reset
      // that already disabled them: harmless, not a fault. Before DRIVER_OK a driver may also
      // take a queue back; after it, only RING_RESET (not offered) would allow that.
      if (!q.ready) return;
      if ((this.statusValue & DRIVER_OK) === 0) {
        q.ready = false;
        return;
      }
    }
    const target = this.setupQueue();
    if (!target) return;
    target.ready = value === 1;
    if (value > 1) this.fault('QUEUE_SETUP_LOCKED', { queue: this.queueSel, ready: value });
  }

  private writeQueueAddress(offset: number, value: number): void {
    const q = this.setupQueue();
    if (!q) return;
    switch (offset) {
      case R.MMIO_QUEUE_DESC_LOW:
        q.descLow = value;
        break;
      case R.MMIO_QUEUE_DESC_HIGH:
        q.descHigh = value;
        break;
      case R.MMIO_QUEUE_DRIVER_LOW:
        q.driverLow = value;
        break;
      case R.MMIO_QUEUE_DRIVER_HIGH:
        q.driverHigh = value;
        break;
      case R.MMIO_QUEUE_DEVICE_LOW:
        q.deviceLow = value;
        break;
      default:
        q.deviceHigh = value;
    }
  }

  private readConfig(offset: number, width: number): number {
    const config = this.device.config;
    if (!configAccessOk(offset, width, config.length)) {
      return this.fault('CONFIG_ACCESS_INVALID', { offset, width, read: true });
    }
    let value = 0;
    for (let i = width - 1; i >= 0; i -= 1) value = value * 256 + (config[offset + i] as number);
    return value;
  }

  private writeConfig(offset: number, width: number, value: number): void {
    const config = this.device.config;
    if (!configAccessOk(offset, width, config.length)) {
      this.fault('CONFIG_ACCESS_INVALID', { offset, width, write: true });
      return;
    }
    if (!this.device.writeConfig) {
      this.fault('CONFIG_READ_ONLY', { offset, width });
      return;
    }
    const data = new Uint8Array(width);
    for (let i = 0; i < width; i += 1) data[i] = (value >>> (8 * i)) & 0xff;
    let accepted: boolean;
    try {
      accepted = this.device.writeConfig(offset, data);
    } catch (err) {
      this.log.error({ offset, width, error: String(err) }, 'device config write threw');
      accepted = false;
    }
    if (!accepted) this.fault('CONFIG_WRITE_REFUSED', { offset, width });
  }

  private selectedQueue(): QueueRegisters | undefined {
    return this.queueRegs[this.queueSel];
  }

  /**
   * A device driven elsewhere (vhost) raises used-buffer interrupts through the irqfd without
   * us: while the driver is live, answer as if one were pending. A spurious VRING bit only makes
   * the driver look at its used rings (bao-virtio-dm does the same, bao-abi.md §5.4).
   */
  private externalInterrupts(): number {
    if (this.device.bindExternalQueues === undefined || (this.statusValue & DRIVER_OK) === 0) return 0;
    return R.INTERRUPT_VRING;
  }

  /** @internal Activation.notifyUsed */
  signalUsed(index: number): void {
    const state = this.lifecycle;
    if (state.kind !== 'active') return;
    const q = state.queues[index];
    if (q === undefined) return;
    const due = q.needsNotification();
    this.trace?.used(index, q.nextUsed, due);
    if (!due) {
      bump(this.stats.usedSuppressedByQueue, index);
      return;
    }
    // bao-abi.md §3.8: the hypervisor knows nothing of InterruptStatus; set it before the irq.
    Atomics.or(this.isrWords, this.isrIndex, R.INTERRUPT_VRING);
    this.stats.usedInterrupts += 1;
    bump(this.stats.usedInterruptsByQueue, index);
    this.options.interrupt.signal();
  }

  /** @internal Activation.configChanged */
  configChanged(): void {
    this.generation = (this.generation + 1) >>> 0;
    if ((this.statusValue & DRIVER_OK) !== 0) this.raiseConfigInterrupt();
    this.saveState();
  }

  private raiseConfigInterrupt(): void {
    Atomics.or(this.isrWords, this.isrIndex, R.INTERRUPT_CONFIG);
    this.stats.configInterrupts += 1;
    this.options.interrupt.signal();
  }

  private fault(code: TransportFaultCode, detail: Record<string, unknown>): 0 {
    const count = this.count(code);
    this.trace?.fault(code, detail);
    this.log.warn({ code, count, ...detail }, 'guest fault: virtio-mmio access ignored');
    return 0;
  }

  /** @internal Activation.ringFault: counted only; the device's fail() does the logging. */
  countRingFault(code: RingFaultCode): void {
    this.count(code);
    this.trace?.fault(code, {});
  }

  private count(code: TransportFaultCode | RingFaultCode): number {
    const count = (this.stats.faults[code] ?? 0) + 1;
    this.stats.faults[code] = count;
    this.stats.guestFaults += 1;
    return count;
  }
}

/** The DeviceActivation the transport hands out; dead (a no-op) once the device is reset. */
class Activation implements DeviceActivation {
  live = true;

  constructor(
    private readonly transport: MmioTransport,
    readonly memory: GuestMemory,
    readonly queues: readonly (SplitQueue | undefined)[],
    readonly features: bigint,
    readonly log: Logger,
  ) {}

  notifyUsed(queueIndex: number): void {
    if (this.live) this.transport.signalUsed(queueIndex);
  }

  configChanged(): void {
    if (this.live) this.transport.configChanged();
  }

  fail(reason: string, detail?: Record<string, unknown>): void {
    if (this.live) this.transport.enterNeedsReset(reason, detail);
  }

  ringFault(code: RingFaultCode): void {
    if (this.live) this.transport.countRingFault(code);
  }
}

/** counts[index] += 1, filling the queues below it with 0 (an array JSON can carry). */
function bump(counts: number[], index: number): void {
  while (counts.length <= index) counts.push(0);
  counts[index] = (counts[index] as number) + 1;
}

function wordsOf(address: number): [low: number, high: number] {
  return [address >>> 0, Math.floor(address / 0x1_0000_0000) >>> 0];
}

function newQueueRegisters(maxSize: number): QueueRegisters {
  return {
    maxSize,
    size: maxSize, // §4.2.2 leaves QueueNum's reset value open; the maximum is a usable one
    ready: false,
    descLow: 0,
    descHigh: 0,
    driverLow: 0,
    driverHigh: 0,
    deviceLow: 0,
    deviceHigh: 0,
  };
}

/** §4.2.2.2: 8/16/32-bit, naturally aligned, inside the device's config space. */
function configAccessOk(offset: number, width: number, length: number): boolean {
  return (width === 1 || width === 2 || width === 4) && offset % width === 0 && offset + width <= length;
}

function maskToWidth(value: number, width: number): number {
  const v = Number.isFinite(value) ? value : 0;
  if (width === 1) return v & 0xff;
  if (width === 2) return v & 0xffff;
  return v >>> 0;
}
