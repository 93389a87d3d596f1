// Transmit: each chain's readable buffers (the guest's vnet header followed by its frame) go to
// the tap in one writev, as they are in guest memory (the chain's spans of the region: no view
// is made per buffer, 18 of them for a TSO frame). The queue is served by a QueueWorker (the
// fairness budget every device shares: a bounded number of chains, descriptors and bytes per
// run, then a yield to the event loop, so one busy queue does not keep the loop from the other
// frontends). A header that uses offloads the driver did not negotiate, a frame larger than the
// MTU allows, or a chain shorter than the header is dropped and counted; the chain is returned
// and the queue goes on.
//
// Replies: writing a frame to the tap runs the receiving side's network stack in that same
// system call, so what it answers (a TCP ACK, the next data segments once an ACK arrives) is
// often queued on the tap by the time writev returns. After a run that sent frames, and before
// its interrupt, the device reads those (settings.afterSend), so the driver gets the transmit
// completions and the replies in one interrupt: on Bao each interrupt costs the frontend a
// trapped InterruptStatus read and InterruptACK write, and this takes one per round trip where
// there were two. The completions themselves are not delayed by it (the reads are bounded by
// the budget, and nothing waits).
//
// Backpressure: when the tap cannot take a frame (EAGAIN) the chain is held, handle() returns a
// Promise for it and admit() answers 'idle' until the tap is writable, so frames leave in the
// order the guest queued them. At reset the held chain is forgotten (never completed).

import type { DeviceActivation } from '../../virtio/device.js';
import { bufferCount, type DescriptorChain } from '../../virtio/descriptor-chain.js';
import { worthLogging } from '../../virtio/logger.js';
import { DEFAULT_TIME_BUDGET_MS, QueueWorker, type QueueWorkerBudget, type WorkerScheduler } from '../../virtio/queue-worker.js';
import type { SplitQueue } from '../../virtio/split-queue.js';
import { VNET_HDR_SIZE, checkTxHeader, decodeHeader, gatherHeaderFromSpans } from './header.js';
import type { NetMetrics } from './metrics.js';
import type { TapQueue } from './tap.js';

/**
 * Per-run budget of a net queue. A TSO frame is up to 64 KiB that the kernel copies in writev
 * (or readv), so the byte bound is a few such frames rather than the worker's 64 KiB default,
 * which would yield after every large frame.
 */
export const NET_QUEUE_BUDGET: Required<QueueWorkerBudget> = { chains: 64, descriptors: 1024, bytes: 256 * 1024, timeMs: DEFAULT_TIME_BUDGET_MS };

export interface TxSettings {
  readonly features: bigint;
  readonly maxFrame: number;
  readonly metrics: NetMetrics;
  readonly activation: DeviceActivation;
  readonly budget: QueueWorkerBudget;
  readonly scheduler?: WorkerScheduler | undefined;
  /** The tap cannot take more now: call tapWritable() when it can. */
  readonly waitWritable: (tap: TapQueue) => void;
  readonly onTapError: (tap: TapQueue, err: unknown) => void;
  /** A run wrote frames to `tap`; called before its used-buffer interrupt (see the banner). */
  readonly afterSend?: (tap: TapQueue) => void;
}

type Outcome = 'sent' | 'dropped' | 'full';

interface Held {
  readonly chain: DescriptorChain;
  readonly complete: (len: number) => void;
}

export class TxQueue {
  readonly worker: QueueWorker;
  private held: Held | null = null;
  private readonly scratch = new Uint8Array(VNET_HDR_SIZE);
  /** Frames reached the tap since the last afterSend call. */
  private sent = false;

  constructor(
    readonly index: number,
    readonly queue: SplitQueue,
    readonly tap: TapQueue,
    private readonly settings: TxSettings,
  ) {
    this.worker = new QueueWorker({
      queue,
      queueIndex: index,
      activation: settings.activation,
      counters: settings.metrics,
      budget: settings.budget,
      ...(settings.scheduler ? { scheduler: settings.scheduler } : {}),
      handler: {
        admit: () => (this.held === null ? 'now' : 'idle'),
        handle: (chain) => this.handle(chain),
      },
      beforeInterrupt: () => this.repliesBeforeInterrupt(),
    });
  }

  private repliesBeforeInterrupt(): void {
    if (!this.sent) return;
    this.sent = false;
    this.settings.afterSend?.(this.tap);
  }

  get waitingForTap(): boolean {
    return this.held !== null;
  }

  /** The driver kicked (or the device looks once at activation). */
  process(): void {
    this.worker.kick();
  }

  /** The tap can take frames again: send the held one, then go on with the queue. */
  tapWritable(): void {
    const held = this.held;
    if (held === null || this.worker.isStopped) return;
    if (this.send(held.chain) === 'full') {
      this.settings.waitWritable(this.tap);
      return;
    }
    this.held = null;
    held.complete(0);
    this.worker.kick();
  }

  /** The tap queue went away: the held chain is dropped (given back), the queue goes on. */
  tapGone(): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    this.settings.metrics.txTapErrors += 1;
    held.complete(0);
    this.worker.kick();
  }

  /** Never touch the queue again (reset); settles once the held chain is dropped. */
  stop(): void | Promise<void> {
    const quiet = this.worker.stop();
    const held = this.held;
    this.held = null;
    held?.complete(0); // after stop(): not published
    return quiet;
  }

  private handle(chain: DescriptorChain): number | Promise<number> {
    if (this.send(chain) !== 'full') return 0;
    this.settings.metrics.txTapFull += 1;
    return new Promise<number>((resolve) => {
      this.held = { chain, complete: resolve };
      this.settings.waitWritable(this.tap);
    });
  }

  private send(chain: DescriptorChain): Outcome {
    const { metrics, activation, features, maxFrame } = this.settings;
    const fault = (counter: 'txShortHeader' | 'txOversize' | 'txBadOffload' | 'txChainsWithWritable', message: string, detail: Record<string, unknown> = {}): Outcome => {
      metrics[counter] += 1;
      if (worthLogging(metrics[counter])) activation.log.warn({ queue: this.index, head: chain.head, ...detail }, `guest fault: ${message}; frame dropped`);
      return 'dropped';
    };
    if (chain.readableCount < bufferCount(chain)) return fault('txChainsWithWritable', 'transmit chain with writable buffers');
    if (chain.readableLength < VNET_HDR_SIZE) return fault('txShortHeader', 'transmit chain shorter than the virtio-net header', { length: chain.readableLength });
    if (chain.readableLength > maxFrame) return fault('txOversize', 'frame larger than the MTU allows', { length: chain.readableLength, max: maxFrame });
    gatherHeaderFromSpans(chain.region, chain.spans, this.scratch);
    const header = decodeHeader(this.scratch);
    if (checkTxHeader(header, features) !== 'ok') return fault('txBadOffload', 'header asks for an offload the driver did not negotiate', { flags: header.flags, gsoType: header.gsoType });
    let n: number;
    try {
      n = this.tap.writev(chain.region, chain.spans, chain.readableCount);
    } catch (err) {
      metrics.txTapErrors += 1;
      this.settings.onTapError(this.tap, err);
      return 'dropped';
    }
    if (n < 0) return 'full';
    this.sent = true;
    metrics.txFrames += 1;
    if (header.gsoType !== 0) metrics.txGsoFrames += 1;
    const pair = this.index >>> 1;
    metrics.txFramesByPair[pair] = (metrics.txFramesByPair[pair] ?? 0) + 1;
    metrics.txBytes += chain.readableLength - VNET_HDR_SIZE;
    return 'sent';
  }
}
