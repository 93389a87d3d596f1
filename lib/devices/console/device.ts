// virtio-console with one port and no MULTIPORT (virtio 1.2 §5.3): receiveq 0 carries host
// input to the guest, transmitq 1 carries guest output to a ConsoleBackend. Each queue is
// served by a QueueWorker (a budget of chains per run, then a yield to the event loop).
//
// Transmit: the bytes of each chain are copied into a ConsoleOutput (output.ts) and the chain
// goes back to the guest at once, whatever the backend does: Linux's hvc output spins with
// interrupts off until it does, and no backend write reads guest memory later (reset and unmap
// are safe at any time). What is held for a slow peer is bounded (txBufferLimit), beyond which
// output is dropped and counted; one chain contributes at most maxTxBytesPerChain bytes (a
// chain of aliased descriptors claiming gigabytes costs a bounded copy; the rest is dropped and
// counted); and output is rate-limited (txBytesPerSecond): a chain that finds the bucket empty
// waits for it, which slows a flooding guest down instead of spending our time on it.
//
// Receive: host input is copied into guest writable buffers as they become available; until
// then it waits in a buffer bounded by `rxBufferLimit` (backend input paused at the limit,
// resumed at half of it) with a hard bound of twice that, beyond which the oldest bytes are
// dropped and counted (for a backend that ignores pause).
//
// emerg_wr writes go through the same bounded output. Guest faults (a chain in the wrong
// direction, a notify for a queue we lack) are counted in metrics.ts and logged through the
// activation's logger, which the transport rate-limits in time.

import type { DeviceActivation, VirtioDevice } from '../../virtio/device.js';
import type { DescriptorChain } from '../../virtio/descriptor-chain.js';
import { bufferCount, copyFromReadable, copyToWritable } from '../../virtio/descriptor-chain.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC } from '../../virtio/features.js';
import type { Logger } from '../../virtio/logger.js';
import { silentLogger } from '../../virtio/logger.js';
import { QueueWorker, type Admission, type QueueWorkerBudget, type WorkerScheduler } from '../../virtio/queue-worker.js';
import type { SplitQueue } from '../../virtio/split-queue.js';
import { TokenBucket } from '../../virtio/token-bucket.js';
import type { ConsoleBackend } from './backends/backend.js';
import {
  CONFIG_EMERG_WR,
  CONSOLE_DEVICE_ID,
  type ConsoleGeometry,
  RECEIVEQ,
  TRANSMITQ,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
  buildConfigSpace,
} from './config.js';
import { ConsoleMetrics } from './metrics.js';
import { ConsoleOutput } from './output.js';

/** bao-virtio-dm's console queues are 1024 entries (spec §5.2). */
export const DEFAULT_CONSOLE_QUEUE_SIZE = 1024;
export const DEFAULT_RX_BUFFER_LIMIT = 64 * 1024;
export const DEFAULT_TX_BUFFER_LIMIT = 256 * 1024;
export const DEFAULT_MAX_TX_BYTES_PER_CHAIN = 64 * 1024;
export const DEFAULT_TX_BYTES_PER_SECOND = 1024 * 1024;
export const DEFAULT_TX_BURST_BYTES = 1024 * 1024;

export interface ConsoleDeviceOptions {
  readonly backend: ConsoleBackend;
  readonly log?: Logger;
  readonly queueSize?: number;
  /** Bytes of host input held while the guest has no receive buffers. */
  readonly rxBufferLimit?: number;
  /** Bytes of guest output held for a backend that does not keep up. */
  readonly txBufferLimit?: number;
  /** Bytes of one transmit chain passed on; the rest is dropped and counted. */
  readonly maxTxBytesPerChain?: number;
  /** Guest output bytes per second (Infinity: no limit) and burst. */
  readonly txBytesPerSecond?: number;
  readonly txBurstBytes?: number;
  readonly geometry?: ConsoleGeometry;
  /** Per-run budget of each queue's worker. */
  readonly budget?: QueueWorkerBudget;
  /** Injected time (tests): the rate limit's clock in ms and the workers' scheduler. */
  readonly now?: () => number;
  readonly scheduler?: WorkerScheduler;
}

type State =
  | { readonly kind: 'inactive' }
  | {
      readonly kind: 'active';
      readonly activation: DeviceActivation;
      readonly rx: QueueWorker | undefined;
      readonly tx: QueueWorker | undefined;
    };

export class ConsoleDevice implements VirtioDevice {
  readonly deviceId = CONSOLE_DEVICE_ID;
  readonly name = 'console';
  /** Both queues complete each chain in the turn that takes it (device-state.ts). */
  readonly resumesFromUsed = true;
  readonly features = RING_EVENT_IDX | RING_INDIRECT_DESC | VIRTIO_CONSOLE_F_EMERG_WRITE;
  readonly queueMaxSizes: readonly number[];
  readonly config: Uint8Array;
  readonly metrics = new ConsoleMetrics();
  readonly backend: ConsoleBackend;

  private state: State = { kind: 'inactive' };
  private readonly log: Logger;
  private readonly rxLimit: number;
  private readonly maxTxPerChain: number;
  private readonly output: ConsoleOutput;
  private readonly txBucket: TokenBucket;
  private readonly budget: QueueWorkerBudget | undefined;
  private readonly scheduler: WorkerScheduler | undefined;
  /** Host input waiting for guest buffers; the first chunk may be partly consumed. */
  private readonly rxPending: Uint8Array[] = [];
  private rxPaused = false;
  private closing: Promise<void> | undefined;

  constructor(options: ConsoleDeviceOptions) {
    this.backend = options.backend;
    this.log = options.log ?? silentLogger;
    const size = options.queueSize ?? DEFAULT_CONSOLE_QUEUE_SIZE;
    this.queueMaxSizes = [size, size];
    this.rxLimit = options.rxBufferLimit ?? DEFAULT_RX_BUFFER_LIMIT;
    this.maxTxPerChain = options.maxTxBytesPerChain ?? DEFAULT_MAX_TX_BYTES_PER_CHAIN;
    this.output = new ConsoleOutput(this.backend, options.txBufferLimit ?? DEFAULT_TX_BUFFER_LIMIT);
    this.txBucket = new TokenBucket({
      rate: options.txBytesPerSecond ?? DEFAULT_TX_BYTES_PER_SECOND,
      burst: options.txBurstBytes ?? DEFAULT_TX_BURST_BYTES,
      ...(options.now ? { now: options.now } : {}),
    });
    this.budget = options.budget;
    this.scheduler = options.scheduler;
    this.config = buildConfigSpace(options.geometry);
    // Input before the driver is up is kept (bounded) for it; see the banner.
    this.backend.start({ data: (chunk) => this.onHostInput(chunk), drain: () => this.output.drained() });
  }

  /** Guest output bytes held for the backend now. */
  get txHeldBytes(): number {
    return this.output.heldBytes;
  }

  activate(activation: DeviceActivation): void {
    const rxQueue = activation.queues[RECEIVEQ];
    const txQueue = activation.queues[TRANSMITQ];
    if (rxQueue === undefined || txQueue === undefined) {
      activation.log.warn({ receiveq: rxQueue !== undefined, transmitq: txQueue !== undefined }, 'console activated without both queues');
    }
    const guarded = this.guard(activation);
    const rx = rxQueue && this.worker(rxQueue, RECEIVEQ, guarded, {
      admit: () => (this.rxPending.length > 0 ? 'now' : 'idle'),
      handle: (chain) => this.receive(chain, guarded),
    });
    const tx = txQueue && this.worker(txQueue, TRANSMITQ, guarded, {
      admit: () => this.admitTx(),
      handle: (chain) => this.transmit(chain, guarded),
    });
    this.state = { kind: 'active', activation: guarded, rx, tx };
    activation.log.info({ backend: this.backend.description }, 'console active');
    rx?.kick();
    tx?.kick();
  }

  queueNotify(queueIndex: number): void {
    const state = this.state;
    if (state.kind !== 'active') return;
    if (queueIndex === RECEIVEQ) state.rx?.kick();
    else if (queueIndex === TRANSMITQ) state.tx?.kick();
    else {
      this.metrics.unknownQueueNotifies += 1;
      state.activation.log.warn({ queue: queueIndex, count: this.metrics.unknownQueueNotifies }, 'guest fault: notify for a queue the console does not have');
    }
  }

  writeConfig(offset: number, data: Uint8Array): boolean {
    // emerg_wr (§5.3.4): the driver writes one character (in the low byte) to print it now.
    if (offset !== CONFIG_EMERG_WR || data.length === 0) return false;
    this.metrics.emergWrites += 1;
    if (this.output.push(data.subarray(0, 1)) === 0) this.metrics.txDroppedBytes += 1;
    return true;
  }

  private worker(
    queue: SplitQueue,
    queueIndex: number,
    activation: DeviceActivation,
    handler: { admit(): Admission; handle(chain: DescriptorChain): number },
  ): QueueWorker {
    return new QueueWorker({
      queue,
      queueIndex,
      activation,
      counters: this.metrics,
      handler,
      ...(this.budget ? { budget: this.budget } : {}),
      ...(this.scheduler ? { scheduler: this.scheduler } : {}),
    });
  }

  /**
   * The activation as the queue workers see it: a fail() (corrupt ring) also makes this device
   * stop using its queues at once, before the transport gets round to resetting it.
   */
  private guard(activation: DeviceActivation): DeviceActivation {
    const stop = (): void => {
      if (this.state.kind === 'active' && this.state.activation === guarded) this.reset();
    };
    const guarded: DeviceActivation = {
      memory: activation.memory,
      queues: activation.queues,
      features: activation.features,
      log: activation.log,
      notifyUsed: (queueIndex) => activation.notifyUsed(queueIndex),
      configChanged: () => activation.configChanged(),
      ringFault: (code) => activation.ringFault(code),
      fail: (reason, detail) => {
        stop();
        activation.fail(reason, detail);
      },
    };
    return guarded;
  }

  /**
   * Transmit work is synchronous (bytes are copied when the chain is taken), so the device is
   * quiet on return: output already copied keeps draining to the backend from host memory.
   */
  reset(): void {
    const state = this.state;
    this.state = { kind: 'inactive' };
    if (state.kind !== 'active') return;
    void state.rx?.stop();
    void state.tx?.stop();
  }

  /** Resets the device and closes its backend (daemon shutdown). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.reset();
      await this.backend.close();
    })();
    return this.closing;
  }

  // --- transmit -------------------------------------------------------------------------

  private admitTx(): Admission {
    const wait = this.txBucket.msUntilAvailable();
    return wait === 0 ? 'now' : wait;
  }

  private transmit(chain: DescriptorChain, activation: DeviceActivation): number {
    if (chain.readableCount < bufferCount(chain)) {
      // §5.3.6.1: transmitq buffers are device-readable only.
      this.metrics.txChainsWithWritable += 1;
      activation.log.warn({ queue: TRANSMITQ, head: chain.head, count: this.metrics.txChainsWithWritable }, 'guest fault: transmit chain with writable buffers; returned unused');
      return 0;
    }
    const claimed = chain.readableLength;
    this.metrics.txChains += 1;
    let passed = Math.min(claimed, this.maxTxPerChain);
    if (passed < claimed) {
      this.metrics.txChainsTruncated += 1;
      this.metrics.txDroppedBytes += claimed - passed;
    }
    // Copy only what the output can hold: the rest would be dropped anyway.
    const room = this.output.room();
    if (passed > room) {
      this.metrics.txDroppedBytes += passed - room;
      passed = room;
    }
    if (passed > 0) {
      const copy = new Uint8Array(passed);
      copyFromReadable(chain, copy);
      this.output.pushCopy(copy);
      this.metrics.txBytes += passed;
      this.txBucket.take(passed);
    }
    return 0;
  }

  // --- receive --------------------------------------------------------------------------

  private onHostInput(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.rxPending.push(chunk);
    this.metrics.rxBufferedBytes += chunk.length;
    if (this.state.kind === 'active') this.state.rx?.kick();
    this.boundRx();
  }

  private boundRx(): void {
    const buffered = this.metrics.rxBufferedBytes;
    if (buffered >= this.rxLimit && !this.rxPaused) {
      this.rxPaused = true;
      this.metrics.rxBackpressurePauses += 1;
      this.backend.pauseInput();
      this.log.debug({ buffered }, 'console input paused: the guest is not taking input');
    }
    // Hard bound for a backend that keeps delivering while paused: drop the oldest input.
    let excess = this.metrics.rxBufferedBytes - 2 * this.rxLimit;
    while (excess > 0 && this.rxPending.length > 0) {
      const first = this.rxPending[0]!;
      const n = Math.min(first.length, excess);
      if (n === first.length) this.rxPending.shift();
      else this.rxPending[0] = first.subarray(n);
      excess -= n;
      this.metrics.rxBufferedBytes -= n;
      this.metrics.rxDroppedBytes += n;
    }
  }

  /** Copies waiting input into one chain; returns the bytes written (0 for a refused chain). */
  private receive(chain: DescriptorChain, activation: DeviceActivation): number {
    if (chain.readableCount > 0) {
      // §5.3.6.1: receiveq buffers are device-writable only.
      this.metrics.rxChainsWithReadable += 1;
      activation.log.warn({ queue: RECEIVEQ, head: chain.head, count: this.metrics.rxChainsWithReadable }, 'guest fault: receive chain with readable buffers; returned unused');
      return 0;
    }
    if (chain.writableLength === 0) {
      this.metrics.rxChainsWithoutWritable += 1;
      activation.log.warn({ queue: RECEIVEQ, head: chain.head, count: this.metrics.rxChainsWithoutWritable }, 'guest fault: receive chain without writable space; returned unused');
      return 0;
    }
    let written = 0;
    while (this.rxPending.length > 0 && written < chain.writableLength) {
      const first = this.rxPending[0]!;
      const n = copyToWritable(chain, first, written);
      written += n;
      if (n === first.length) this.rxPending.shift();
      else this.rxPending[0] = first.subarray(n);
      if (n === 0) break;
    }
    this.metrics.rxBufferedBytes -= written;
    this.metrics.rxBytes += written;
    this.metrics.rxChains += 1;
    if (this.rxPaused && this.metrics.rxBufferedBytes <= this.rxLimit / 2) {
      this.rxPaused = false;
      this.backend.resumeInput();
    }
    return written;
  }
}
