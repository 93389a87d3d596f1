// virtio-net over a tap (virtio 1.2 §5.1, device ID 1): queue pairs (receiveq 2k, transmitq
// 2k+1) and a control queue, each pair bound to one queue of a (multi-queue) tap. Data moves
// between the tap and guest memory in the kernel's own readv/writev (rx.ts, tx.ts); this file
// wires queues to tap queues, follows the driver's control commands (ctrl.ts), keeps the link
// status, and applies the negotiated receive offloads to the tap (off the event loop).
//
// Fairness: the transmit and control queues are served by QueueWorkers (a bounded budget per
// run, then a yield to the event loop: the mechanism every device shares). Receive is driven by
// the tap, not by the guest's kicks: each time libuv reports the tap readable, at most one
// budget of frames is read (the poller is level-triggered, so the rest comes on its next turn),
// and so after a transmit run, before its interrupt, for the replies already there (tx.ts);
// when the guest has no buffers the tap is left unread until the next receive kick. Its
// unit of work is a frame, which with MRG_RXBUF spans several chains that must reach the used
// ring together, which is why it does not take chains one by one through a worker.
//
// Lifecycle: the tap is opened by the caller before the device exists and outlives resets; a
// reset brings back the configured MAC and the receive filter's initial state, stops every queue (reads and writes are synchronous system calls, and a transmit chain
// held for a full tap is dropped, so nothing touches guest memory after reset() returns), the
// next activation starts afresh.

import type { DeviceActivation, VirtioDevice } from '../../virtio/device.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC, hasFeature } from '../../virtio/features.js';
import { silentLogger, worthLogging, type Logger } from '../../virtio/logger.js';
import type { SplitQueue } from '../../virtio/split-queue.js';
import { QueueWorker, type QueueWorkerBudget, type WorkerScheduler } from '../../virtio/queue-worker.js';
import {
  DEFAULT_MTU,
  NET_DEVICE_ID,
  NET_F_CTRL_MAC_ADDR,
  NET_F_CTRL_VQ,
  NET_F_MQ,
  NET_F_MRG_RXBUF,
  NET_F_MTU,
  NET_OFFERED_FEATURES,
  type Mac,
  type NetConfigSpace,
  buildConfigSpace,
  ctrlQueueIndex,
  formatMac,
  rxQueueIndex,
  txQueueIndex,
} from './config.js';
import { CTRL_ERR, type CtrlState, executeCommand, newCtrlState } from './ctrl.js';
import { RxFilter } from './filter.js';
import { ETH_OVERHEAD, VNET_HDR_SIZE, maxRxFrame, maxTxFrame, tapOffloadsFor } from './header.js';
import { NetMetrics } from './metrics.js';
import { RxQueue } from './rx.js';
import type { TapInterface, TapQueue } from './tap.js';
import { NET_QUEUE_BUDGET, TxQueue } from './tx.js';

/** Queue size offered when the config gives none. */
export const DEFAULT_NET_QUEUE_SIZE = 256;

export interface NetDeviceOptions {
  readonly tap: TapInterface;
  readonly mac: Mac;
  readonly mtu?: number;
  readonly queueSize?: number;
  readonly log?: Logger;
  /** Per-run budget of each queue (default NET_QUEUE_BUDGET). */
  readonly budget?: QueueWorkerBudget;
  /** When queue workers continue after a yield (tests inject a manual one). */
  readonly scheduler?: WorkerScheduler;
}

interface Active {
  readonly activation: DeviceActivation;
  readonly features: bigint;
  /** Indexed by pair; undefined where the driver did not enable the queue. */
  readonly rx: readonly (RxQueue | undefined)[];
  readonly tx: readonly (TxQueue | undefined)[];
  /** Made right after the state it refers to. */
  ctrl: QueueWorker | undefined;
  readonly ctrlIndex: number;
  /** Pairs the driver uses (VQ_PAIRS_SET); 1 until it says otherwise (§5.1.6.5.5). */
  pairs: number;
  /** Receive queues out of buffers, waiting for a kick. */
  readonly starved: Set<number>;
}

export class NetDevice implements VirtioDevice {
  readonly deviceId = NET_DEVICE_ID;
  readonly name = 'net';
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly config: Uint8Array;
  readonly metrics = new NetMetrics();
  readonly ctrlState: CtrlState = newCtrlState();
  readonly mtu: number;

  private readonly space: NetConfigSpace;
  /** The MAC of the config entry (or derived): what a reset brings back after MAC_ADDR_SET. */
  private readonly configuredMac: Mac;
  private readonly tap: TapInterface;
  private readonly log: Logger;
  private readonly maxPairs: number;
  private readonly budget: Required<QueueWorkerBudget>;
  private readonly scheduler: WorkerScheduler | undefined;
  private active: Active | undefined;
  /** Tap queues that failed for good (the interface went away). */
  private readonly tapGone: boolean[];
  private offloadWanted = 0;
  private offloadApplied = 0;
  private offloadBusy = false;
  private closed = false;

  constructor(options: NetDeviceOptions) {
    this.tap = options.tap;
    this.log = options.log ?? silentLogger;
    this.mtu = options.mtu ?? DEFAULT_MTU;
    this.budget = { ...NET_QUEUE_BUDGET, ...options.budget };
    this.scheduler = options.scheduler;
    this.maxPairs = options.tap.queues.length;
    if (this.maxPairs < 1) throw new RangeError('a net device needs at least one tap queue');
    const size = options.queueSize ?? DEFAULT_NET_QUEUE_SIZE;
    this.queueMaxSizes = Array.from({ length: 2 * this.maxPairs + 1 }, () => size);
    let features = NET_OFFERED_FEATURES | RING_EVENT_IDX | RING_INDIRECT_DESC;
    if (this.maxPairs === 1) features &= ~NET_F_MQ;
    this.features = features;
    this.configuredMac = options.mac;
    this.space = buildConfigSpace(options.mac, this.maxPairs, this.mtu);
    this.config = this.space.bytes;
    this.tapGone = options.tap.queues.map(() => false);
    options.tap.queues.forEach((q, j) => {
      q.watch({
        readable: () => this.onTapReadable(j),
        writable: () => this.onTapWritable(j),
        error: (err) => this.onTapError(q, err),
      });
      q.want(false, false);
    });
  }

  get mac(): string {
    return formatMac(this.space.mac());
  }

  get linkUp(): boolean {
    return this.space.linkUp();
  }

  /** Pairs in use by the driver (0 when inactive). */
  get pairsInUse(): number {
    return this.active?.pairs ?? 0;
  }

  /**
   * Chains taken from queue `queueIndex` and not given back yet: receive chains waiting in the
   * merge reserve for a frame, or a transmit chain held for a full tap (until its completion,
   * queued as a microtask, has been published).
   */
  chainsHeld(queueIndex: number): number {
    const state = this.active;
    if (state === undefined) return 0;
    const pair = queueIndex >>> 1;
    if (queueIndex === state.ctrlIndex) return state.ctrl?.inFlight ?? 0;
    if (pair >= state.rx.length) return 0;
    return (queueIndex & 1) === 0 ? (state.rx[pair]?.reserved ?? 0) : (state.tx[pair]?.worker.inFlight ?? 0);
  }

  activate(activation: DeviceActivation): void {
    if (this.closed) throw new Error('net device is closed');
    const guarded = this.guard(activation);
    const features = activation.features;
    const mq = hasFeature(features, NET_F_MQ);
    const pairsOffered = mq ? this.maxPairs : 1;
    // A new driver starts from the state after reset (promiscuous, empty tables).
    Object.assign(this.ctrlState, newCtrlState());
    const rxSettings = {
      features,
      filter: new RxFilter(this.ctrlState, () => this.space.mac()),
      mergeable: hasFeature(features, NET_F_MRG_RXBUF),
      maxFrame: maxRxFrame(features, this.mtu),
      maxPlainFrame: hasFeature(features, NET_F_MTU) ? VNET_HDR_SIZE + this.mtu + ETH_OVERHEAD : Infinity,
      metrics: this.metrics,
      activation: guarded,
      onTapError: (tap: TapQueue, err: unknown) => this.onTapError(tap, err),
    };
    const txSettings = {
      features,
      maxFrame: maxTxFrame(features, this.mtu),
      metrics: this.metrics,
      activation: guarded,
      budget: this.budget,
      scheduler: this.scheduler,
      waitWritable: () => this.updateWants(),
      onTapError: (tap: TapQueue, err: unknown) => this.onTapError(tap, err),
      afterSend: (tap: TapQueue) => this.takeReplies(tap),
    };
    const rx: (RxQueue | undefined)[] = [];
    const tx: (TxQueue | undefined)[] = [];
    for (let p = 0; p < pairsOffered; p += 1) {
      const rq = activation.queues[rxQueueIndex(p)];
      const tq = activation.queues[txQueueIndex(p)];
      rx.push(rq === undefined ? undefined : new RxQueue(rxQueueIndex(p), rq, rxSettings));
      tx.push(tq === undefined ? undefined : new TxQueue(txQueueIndex(p), tq, this.tap.queues[p] as TapQueue, txSettings));
    }
    const ctrlIndex = ctrlQueueIndex(this.maxPairs, mq);
    const ctrlQueue = hasFeature(features, NET_F_CTRL_VQ) ? activation.queues[ctrlIndex] : undefined;
    const state: Active = { activation: guarded, features, rx, tx, ctrl: undefined, ctrlIndex, pairs: 1, starved: new Set() };
    if (ctrlQueue !== undefined) state.ctrl = this.ctrlWorker(ctrlQueue, state);
    this.active = state;
    this.metrics.pairsInUse = 1;
    this.metrics.activations += 1;
    this.applyOffloads(tapOffloadsFor(features));
    activation.log.info({ tap: this.tap.name, mac: this.mac, mtu: this.mtu, pairs: pairsOffered, mergeable: rxSettings.mergeable }, 'net device active');
    this.updateWants();
    // Buffers posted before DRIVER_OK had their kicks dropped: look at every queue once.
    for (const t of tx) t?.process();
    state.ctrl?.kick();
  }

  queueNotify(queueIndex: number): void {
    const state = this.active;
    if (state === undefined) return;
    if (queueIndex === state.ctrlIndex && state.ctrl !== undefined) {
      state.ctrl.kick();
      return;
    }
    const pair = queueIndex >>> 1;
    if (queueIndex < 2 * state.rx.length) {
      if ((queueIndex & 1) === 0) {
        const rx = state.rx[pair];
        if (rx !== undefined && state.starved.delete(queueIndex)) {
          rx.quiet();
          this.updateWants();
        }
      } else state.tx[pair]?.process();
      return;
    }
    this.metrics.unknownQueueNotifies += 1;
    if (worthLogging(this.metrics.unknownQueueNotifies)) state.activation.log.warn({ queue: queueIndex }, 'guest fault: notify for a queue the device does not use');
  }

  writeConfig(): boolean {
    // §5.1.4: every field is read-only for a modern driver (the MAC changes through ctrl).
    return false;
  }

  reset(): void | Promise<void> {
    // A MAC the driver set (MAC_ADDR_SET) lasts until reset: the next driver reads the
    // configured one from the config space, as its "physical" address (QEMU's device does the
    // same; Linux reads the config MAC at probe and sends MAC_ADDR_SET again when it changes it).
    this.space.setMac(this.configuredMac);
    const state = this.active;
    if (state === undefined) return undefined;
    this.active = undefined;
    const waits: Promise<void>[] = [];
    for (const t of state.tx) {
      const quiet = t?.stop();
      if (quiet) waits.push(quiet);
    }
    const ctrlQuiet = state.ctrl?.stop();
    if (ctrlQuiet) waits.push(ctrlQuiet);
    this.metrics.resets += 1;
    this.metrics.pairsInUse = 0;
    this.updateWants();
    // The next driver may accept fewer offloads: none until it negotiates.
    this.applyOffloads(0);
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => undefined);
  }

  /** Reset, then close the tap (daemon shutdown). Idempotent. */
  close(): void {
    if (this.closed) return;
    void this.reset();
    this.closed = true;
    this.tap.close();
  }

  private guard(activation: DeviceActivation): DeviceActivation {
    const guarded: DeviceActivation = {
      memory: activation.memory,
      queues: activation.queues,
      features: activation.features,
      log: activation.log,
      notifyUsed: (i) => activation.notifyUsed(i),
      configChanged: () => activation.configChanged(),
      ringFault: (code) => activation.ringFault(code),
      fail: (reason, detail) => {
        if (this.active?.activation === guarded) this.reset();
        activation.fail(reason, detail);
      },
    };
    return guarded;
  }

  /** The receive queue frames of tap queue `j` go to: its own pair, folded onto the pairs in use. */
  private rxFor(j: number): RxQueue | undefined {
    const state = this.active;
    if (state === undefined) return undefined;
    const pairs = Math.min(state.pairs, state.rx.length);
    return state.rx[j < pairs ? j : j % pairs];
  }

  private updateWants(): void {
    const state = this.active;
    this.tap.queues.forEach((q, j) => {
      if (this.closed) return;
      if (state === undefined || this.tapGone[j]) {
        q.want(false, false);
        return;
      }
      const rx = this.rxFor(j);
      const readable = rx !== undefined && !state.starved.has(rx.index);
      const writable = state.tx[j]?.waitingForTap ?? false;
      q.want(readable, writable);
    });
  }

  private onTapReadable(j: number): void {
    const state = this.active;
    const rx = this.rxFor(j);
    const tap = this.tap.queues[j];
    if (state === undefined || rx === undefined || tap === undefined) {
      this.updateWants();
      return;
    }
    for (;;) {
      const result = rx.pump(tap, this.budget);
      if (result !== 'no-buffers') return; // tap empty or budget spent: the poller calls again
      if (this.active !== state) return;
      if (rx.rearm()) continue; // buffers arrived while re-arming
      this.metrics.rxNoBuffers += 1;
      state.starved.add(rx.index);
      this.updateWants();
      return;
    }
  }

  /**
   * After frames went out on `tap`: read what its other side already answered, as the poller
   * would on its next turn, but before the transmit interrupt (tx.ts, "Replies"). Only when the
   * device reads that tap queue now (a receive queue with buffers, the queue not gone).
   */
  private takeReplies(tap: TapQueue): void {
    const state = this.active;
    const j = this.tap.queues.indexOf(tap);
    if (state === undefined || j < 0 || this.tapGone[j] || this.closed) return;
    const rx = this.rxFor(j);
    if (rx === undefined || state.starved.has(rx.index)) return;
    this.metrics.txReplyPolls += 1;
    const before = this.metrics.rxFrames;
    this.onTapReadable(j);
    this.metrics.txReplyFrames += this.metrics.rxFrames - before;
  }

  private onTapWritable(j: number): void {
    this.active?.tx[j]?.tapWritable();
    this.updateWants();
  }

  private onTapError(tap: TapQueue, err: unknown): void {
    const j = this.tap.queues.indexOf(tap);
    const code = (err as { code?: unknown } | null)?.code;
    if (code === 'EBADFD' || code === 'EBADF' || code === 'ENODEV' || code === 'ENXIO') {
      // The interface was deleted under us: this queue is gone; the link is down when all are.
      if (j >= 0 && !this.tapGone[j]) {
        this.tapGone[j] = true;
        // A chain held for the tap will never be written: drop it (later ones fail and drop too).
        this.active?.tx[j]?.tapGone();
        this.log.warn({ tap: this.tap.name, queue: j, code }, 'tap queue went away');
        if (this.tapGone.every(Boolean)) this.setLink(false);
      }
      this.updateWants();
      return;
    }
    if (worthLogging(this.metrics.rxTapErrors + this.metrics.txTapErrors)) this.log.warn({ tap: this.tap.name, queue: j, err: String(err) }, 'tap read/write failed; frame dropped');
  }

  private setLink(up: boolean): void {
    if (this.space.linkUp() === up) return;
    this.space.setLinkUp(up);
    this.metrics.linkChanges += 1;
    this.active?.activation.configChanged();
  }

  private ctrlWorker(queue: SplitQueue, state: Active): QueueWorker {
    const handlers = {
      maxPairs: this.maxPairs,
      mq: hasFeature(state.features, NET_F_MQ),
      macAddr: hasFeature(state.features, NET_F_CTRL_MAC_ADDR),
      state: this.ctrlState,
      setPairs: (pairs: number) => {
        state.pairs = pairs;
        this.metrics.pairsInUse = pairs;
        this.log.info({ pairs }, 'driver set the number of queue pairs');
        this.updateWants();
      },
      setMac: (mac: Uint8Array) => this.space.setMac(mac),
    };
    return new QueueWorker({
      queue,
      queueIndex: state.ctrlIndex,
      activation: state.activation,
      counters: this.metrics,
      budget: this.budget,
      ...(this.scheduler ? { scheduler: this.scheduler } : {}),
      handler: {
        handle: (chain) => {
          // The ack is the first device-writable byte (struct virtio_net_ctrl: anything after it
          // is result data a command may define), wherever the driver put descriptor boundaries.
          const ack = chain.writable.find((b) => b.length > 0);
          if (ack === undefined) {
            this.metrics.ctrlBadCommands += 1;
            if (worthLogging(this.metrics.ctrlBadCommands)) state.activation.log.warn({ head: chain.head }, 'guest fault: control command without room for its ack');
            return 0;
          }
          const result = executeCommand(chain, handlers);
          this.metrics.ctrlCommands += 1;
          if (!result.ok) {
            this.metrics.ctrlBadCommands += 1;
            if (worthLogging(this.metrics.ctrlBadCommands)) state.activation.log.warn({ reason: result.reason }, 'control command refused');
          }
          ack[0] = result.ok ? result.ack : CTRL_ERR;
          return 1;
        },
      },
    });
  }

  /** TUNSETOFFLOAD one at a time, last wish wins (the thread pool would not keep their order). */
  private applyOffloads(flags: number): void {
    this.offloadWanted = flags;
    if (this.offloadBusy || this.offloadApplied === flags || this.closed) return;
    this.offloadBusy = true;
    this.tap.setOffload(flags, (err) => {
      this.offloadBusy = false;
      if (err !== null) this.log.warn({ tap: this.tap.name, flags, err: err.message }, 'cannot set the tap offloads; frames using them are dropped');
      else this.offloadApplied = flags;
      if (err === null && this.offloadWanted !== this.offloadApplied) this.applyOffloads(this.offloadWanted);
    });
  }
}
