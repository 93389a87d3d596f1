// virtio-console with one port and no MULTIPORT (virtio 1.2 §5.3): receiveq 0 carries host
// input to the guest, transmitq 1 carries guest output to a ConsoleBackend.
//
// Transmit is zero-copy: each readable guest buffer is handed to the backend as a view onto the
// shared region, and the chain goes back to the guest only when the backend says the bytes left
// it. While the backend is draining we stop popping the transmit queue, so a slow backend makes
// the guest wait instead of making us buffer without bound. Used entries are published in the
// order the chains were taken.
//
// Receive: host input is copied into guest writable buffers as they become available; until
// then it waits in a buffer bounded by `rxBufferLimit` (backend input paused at the limit,
// resumed at half of it) with a hard bound of twice that, beyond which the oldest bytes are
// dropped and counted (for a backend that ignores pause).
//
// Guest faults (a chain in the wrong direction, a notify for a queue we lack) are counted in
// metrics.ts and logged rate-limited (worthLogging), so a hostile driver cannot flood the log.

import type { DeviceActivation, VirtioDevice } from '../../virtio/device.js';
import type { DescriptorChain } from '../../virtio/descriptor-chain.js';
import { copyToWritable } from '../../virtio/descriptor-chain.js';
import { QueueCorruptError } from '../../virtio/errors.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC } from '../../virtio/features.js';
import type { Logger } from '../../virtio/logger.js';
import { silentLogger, worthLogging } from '../../virtio/logger.js';
import type { SplitQueue } from '../../virtio/split-queue.js';
import { takeChain } from '../../virtio/take-chain.js';
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

/** bao-virtio-dm's console queues are 1024 entries (spec §5.2). */
export const DEFAULT_CONSOLE_QUEUE_SIZE = 1024;
export const DEFAULT_RX_BUFFER_LIMIT = 64 * 1024;

export interface ConsoleDeviceOptions {
  readonly backend: ConsoleBackend;
  readonly log?: Logger;
  readonly queueSize?: number;
  /** Bytes of host input held while the guest has no receive buffers. */
  readonly rxBufferLimit?: number;
  readonly geometry?: ConsoleGeometry;
}

interface TxEntry {
  readonly head: number;
  pending: number;
}

type State =
  | { readonly kind: 'inactive' }
  | {
      readonly kind: 'active';
      readonly activation: DeviceActivation;
      readonly rx: SplitQueue | undefined;
      readonly tx: SplitQueue | undefined;
    };

export class ConsoleDevice implements VirtioDevice {
  readonly deviceId = CONSOLE_DEVICE_ID;
  readonly name = 'console';
  readonly features = RING_EVENT_IDX | RING_INDIRECT_DESC | VIRTIO_CONSOLE_F_EMERG_WRITE;
  readonly queueMaxSizes: readonly number[];
  readonly config: Uint8Array;
  readonly metrics = new ConsoleMetrics();
  readonly backend: ConsoleBackend;

  private state: State = { kind: 'inactive' };
  private readonly log: Logger;
  private readonly rxLimit: number;
  /** Host input waiting for guest buffers; the first chunk may be partly consumed. */
  private readonly rxPending: Uint8Array[] = [];
  private rxPaused = false;
  /** Transmit chains handed to the backend, oldest first, awaiting their write callbacks. */
  private txInFlight: TxEntry[] = [];
  private txWaitingForDrain = false;
  private inTxLoop = false;
  private txUsedSinceNotify = false;
  private closing: Promise<void> | undefined;

  constructor(options: ConsoleDeviceOptions) {
    this.backend = options.backend;
    this.log = options.log ?? silentLogger;
    const size = options.queueSize ?? DEFAULT_CONSOLE_QUEUE_SIZE;
    this.queueMaxSizes = [size, size];
    this.rxLimit = options.rxBufferLimit ?? DEFAULT_RX_BUFFER_LIMIT;
    this.config = buildConfigSpace(options.geometry);
    // Input before the driver is up is kept (bounded) for it; see the banner.
    this.backend.start({ data: (chunk) => this.onHostInput(chunk), drain: () => this.onBackendDrain() });
  }

  activate(activation: DeviceActivation): void {
    const rx = activation.queues[RECEIVEQ];
    const tx = activation.queues[TRANSMITQ];
    if (rx === undefined || tx === undefined) {
      activation.log.warn({ receiveq: rx !== undefined, transmitq: tx !== undefined }, 'console activated without both queues');
    }
    this.state = { kind: 'active', activation: this.guard(activation), rx, tx };
    this.txInFlight = [];
    this.txWaitingForDrain = false;
    activation.log.info({ backend: this.backend.description }, 'console active');
    this.flushRx();
    this.processTx();
  }

  queueNotify(queueIndex: number): void {
    if (this.state.kind !== 'active') return;
    if (queueIndex === RECEIVEQ) this.flushRx();
    else if (queueIndex === TRANSMITQ) this.processTx();
    else {
      this.metrics.unknownQueueNotifies += 1;
      if (worthLogging(this.metrics.unknownQueueNotifies)) this.state.activation.log.warn({ queue: queueIndex }, 'guest fault: notify for a queue the console does not have');
    }
  }

  writeConfig(offset: number, data: Uint8Array): boolean {
    // emerg_wr (§5.3.4): the driver writes one character (in the low byte) to print it now.
    if (offset !== CONFIG_EMERG_WR || data.length === 0) return false;
    this.metrics.emergWrites += 1;
    this.backend.write(Uint8Array.of(data[0]!), () => {});
    return true;
  }

  /**
   * The activation as the queue helpers see it: a fail() (corrupt ring) also makes this device
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
      fail: (reason, detail) => {
        stop();
        activation.fail(reason, detail);
      },
    };
    return guarded;
  }

  /** enableNotification() re-reads avail idx, which may turn out corrupt: fail, never throw. */
  private rearm(queue: SplitQueue, queueIndex: number, activation: DeviceActivation): boolean {
    try {
      return queue.enableNotification();
    } catch (err) {
      if (!(err instanceof QueueCorruptError)) throw err;
      activation.fail(err.message, { queue: queueIndex, code: err.code, ...err.detail });
      return false;
    }
  }

  reset(): void {
    // In-flight transmit callbacks still arrive; they find no entry and change nothing.
    this.state = { kind: 'inactive' };
    this.txInFlight = [];
    this.txWaitingForDrain = false;
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

  private processTx(): void {
    const state = this.state;
    if (state.kind !== 'active' || state.tx === undefined || this.inTxLoop) return;
    const tx = state.tx;
    this.inTxLoop = true;
    try {
      for (;;) {
        while (!this.txWaitingForDrain && this.state === state) {
          const chain = takeChain(tx, TRANSMITQ, state.activation, this.metrics);
          if (chain === null) break;
          this.transmit(chain, state.activation);
        }
        if (this.txWaitingForDrain || this.state !== state || tx.closed) break;
        // Re-arm kicks, then re-check: buffers that raced with re-arming must not be missed.
        if (!this.rearm(tx, TRANSMITQ, state.activation)) break;
      }
    } finally {
      this.inTxLoop = false;
    }
    this.flushTxNotify(state);
  }

  private transmit(chain: DescriptorChain, activation: DeviceActivation): void {
    if (chain.writable.length > 0) {
      // §5.3.6.1: transmitq buffers are device-readable only.
      this.metrics.txChainsWithWritable += 1;
      if (worthLogging(this.metrics.txChainsWithWritable)) activation.log.warn({ queue: TRANSMITQ, head: chain.head }, 'guest fault: transmit chain with writable buffers; returned unused');
      this.completeTx({ head: chain.head, pending: 0 });
      return;
    }
    const entry: TxEntry = { head: chain.head, pending: 0 };
    this.txInFlight.push(entry);
    this.metrics.txChains += 1;
    this.metrics.txBytes += chain.readableLength;
    const buffers = chain.readable.filter((b) => b.length > 0);
    entry.pending = buffers.length;
    if (buffers.length === 0) {
      this.finishTxBuffer(entry);
      return;
    }
    // Count first: a backend may call back synchronously.
    entry.pending += 1;
    for (const buffer of buffers) {
      const more = this.backend.write(buffer, (err) => {
        if (err) {
          this.metrics.txWriteErrors += 1;
          this.log.debug({ err }, 'console backend write failed');
        }
        this.finishTxBuffer(entry);
      });
      if (!more && !this.txWaitingForDrain) {
        this.txWaitingForDrain = true;
        this.metrics.txBackpressureWaits += 1;
      }
    }
    this.finishTxBuffer(entry);
  }

  private finishTxBuffer(entry: TxEntry): void {
    entry.pending -= 1;
    if (entry.pending > 0) return;
    const state = this.state;
    if (state.kind !== 'active' || state.tx === undefined) return;
    // Publish in take order: an entry completes only when everything before it has.
    let published = false;
    while (this.txInFlight.length > 0 && this.txInFlight[0]!.pending <= 0) {
      const done = this.txInFlight.shift()!;
      state.tx.addUsed(done.head, 0);
      published = true;
    }
    if (published) {
      this.txUsedSinceNotify = true;
      if (!this.inTxLoop) this.flushTxNotify(state);
    }
  }

  /** Returns a rejected chain right away, keeping publication order behind in-flight ones. */
  private completeTx(entry: TxEntry): void {
    this.txInFlight.push(entry);
    entry.pending = 1;
    this.finishTxBuffer(entry);
  }

  private flushTxNotify(state: State): void {
    if (!this.txUsedSinceNotify || state.kind !== 'active' || this.state !== state) return;
    this.txUsedSinceNotify = false;
    state.activation.notifyUsed(TRANSMITQ);
  }

  private onBackendDrain(): void {
    if (!this.txWaitingForDrain) return;
    this.txWaitingForDrain = false;
    this.processTx();
  }

  // --- receive --------------------------------------------------------------------------

  private onHostInput(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.rxPending.push(chunk);
    this.metrics.rxBufferedBytes += chunk.length;
    this.flushRx();
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

  private flushRx(): void {
    const state = this.state;
    if (state.kind !== 'active' || state.rx === undefined) return;
    const rx = state.rx;
    let published = false;
    for (;;) {
      while (this.rxPending.length > 0 && this.state === state) {
        const chain = takeChain(rx, RECEIVEQ, state.activation, this.metrics);
        if (chain === null) break;
        published = true;
        rx.addUsed(chain.head, this.receive(chain, state.activation));
      }
      if (this.rxPending.length === 0 || this.state !== state || rx.closed) break;
      // Out of guest buffers with input waiting: ask for a kick when the driver adds some.
      if (!this.rearm(rx, RECEIVEQ, state.activation)) break;
    }
    if (published && this.state === state) state.activation.notifyUsed(RECEIVEQ);
    if (this.rxPaused && this.metrics.rxBufferedBytes <= this.rxLimit / 2) {
      this.rxPaused = false;
      this.backend.resumeInput();
    }
  }

  /** Copies waiting input into one chain; returns the bytes written (0 for a refused chain). */
  private receive(chain: DescriptorChain, activation: DeviceActivation): number {
    if (chain.readable.length > 0) {
      // §5.3.6.1: receiveq buffers are device-writable only.
      this.metrics.rxChainsWithReadable += 1;
      if (worthLogging(this.metrics.rxChainsWithReadable)) activation.log.warn({ queue: RECEIVEQ, head: chain.head }, 'guest fault: receive chain with readable buffers; returned unused');
      return 0;
    }
    if (chain.writableLength === 0) {
      this.metrics.rxChainsWithoutWritable += 1;
      if (worthLogging(this.metrics.rxChainsWithoutWritable)) activation.log.warn({ queue: RECEIVEQ, head: chain.head }, 'guest fault: receive chain without writable space; returned unused');
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
    return written;
  }
}
