// Transmit: each chain's readable buffers (the guest's vnet header followed by its frame) go to
// the tap in one writev, as they are in guest memory. Chains are served in batches of at most
// `budget` per turn; a longer backlog continues on the next turn of the event loop so one busy
// queue does not keep the loop from other devices. A header that uses offloads the driver did
// not negotiate, a frame larger than the MTU allows, or a chain shorter than the header is
// dropped and counted; the chain is returned and the queue goes on.

import type { DeviceActivation } from '../../virtio/device.js';
import type { DescriptorChain } from '../../virtio/descriptor-chain.js';
import { worthLogging } from '../../virtio/logger.js';
import type { SplitQueue } from '../../virtio/split-queue.js';
import { takeChain } from '../../virtio/take-chain.js';
import { VNET_HDR_SIZE, checkTxHeader, decodeHeader, gatherHeader } from './header.js';
import type { NetMetrics } from './metrics.js';
import type { TapQueue } from './tap.js';

/** Chains per turn: bounded so other devices' work interleaves (replaceable by a shared budget). */
export function txBudget(queueSize: number): number {
  return Math.min(queueSize, 64);
}

export interface TxSettings {
  readonly features: bigint;
  readonly maxFrame: number;
  readonly metrics: NetMetrics;
  readonly activation: DeviceActivation;
  /** The tap cannot take more now: wake process() when it can. */
  readonly waitWritable: (tap: TapQueue) => void;
  readonly onTapError: (tap: TapQueue, err: unknown) => void;
}

type Outcome = 'sent' | 'dropped' | 'full';

export class TxQueue {
  private stalled: DescriptorChain | null = null;
  private immediate: NodeJS.Immediate | undefined;
  private stopped = false;
  private readonly scratch = new Uint8Array(VNET_HDR_SIZE);

  constructor(
    readonly index: number,
    readonly queue: SplitQueue,
    readonly tap: TapQueue,
    private readonly settings: TxSettings,
  ) {}

  get waitingForTap(): boolean {
    return this.stalled !== null;
  }

  /** Serve up to one budget of chains now; the rest on the next turn. */
  process(): void {
    if (this.stopped || this.immediate !== undefined) return;
    const { activation } = this.settings;
    const queue = this.queue;
    const budget = txBudget(queue.size);
    let served = 0;
    let published = false;
    queue.disableNotification();
    for (;;) {
      if (served === budget) {
        this.settings.metrics.txBudgetYields += 1;
        this.immediate = setImmediate(() => {
          this.immediate = undefined;
          this.process();
        });
        break;
      }
      const chain = this.stalled ?? takeChain(queue, this.index, activation, this.settings.metrics);
      if (chain === null) {
        if (this.stopped || queue.closed || !queue.enableNotification()) break;
        queue.disableNotification();
        continue;
      }
      this.stalled = null;
      const outcome = this.send(chain);
      if (outcome === 'full') {
        this.stalled = chain;
        this.settings.metrics.txTapFull += 1;
        this.settings.waitWritable(this.tap);
        break;
      }
      queue.addUsed(chain.head, 0);
      published = true;
      served += 1;
    }
    if (published && !this.stopped) activation.notifyUsed(this.index);
  }

  /** Never touch the queue again (reset): a pending turn is cancelled, a stalled chain forgotten. */
  stop(): void {
    this.stopped = true;
    this.stalled = null;
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.immediate = undefined;
  }

  private send(chain: DescriptorChain): Outcome {
    const { metrics, activation, features, maxFrame } = this.settings;
    const fault = (counter: 'txShortHeader' | 'txOversize' | 'txBadOffload' | 'txChainsWithWritable', message: string, detail: Record<string, unknown> = {}): Outcome => {
      metrics[counter] += 1;
      if (worthLogging(metrics[counter])) activation.log.warn({ queue: this.index, head: chain.head, ...detail }, `guest fault: ${message}; frame dropped`);
      return 'dropped';
    };
    if (chain.writable.length > 0) return fault('txChainsWithWritable', 'transmit chain with writable buffers');
    if (chain.readableLength < VNET_HDR_SIZE) return fault('txShortHeader', 'transmit chain shorter than the virtio-net header', { length: chain.readableLength });
    if (chain.readableLength > maxFrame) return fault('txOversize', 'frame larger than the MTU allows', { length: chain.readableLength, max: maxFrame });
    gatherHeader(chain.readable, this.scratch);
    const header = decodeHeader(this.scratch);
    if (checkTxHeader(header, features) !== 'ok') return fault('txBadOffload', 'header asks for an offload the driver did not negotiate', { flags: header.flags, gsoType: header.gsoType });
    let n: number;
    try {
      n = this.tap.writev(chain.readable);
    } catch (err) {
      metrics.txTapErrors += 1;
      this.settings.onTapError(this.tap, err);
      return 'dropped';
    }
    if (n < 0) return 'full';
    metrics.txFrames += 1;
    const pair = this.index >>> 1;
    metrics.txFramesByPair[pair] = (metrics.txFramesByPair[pair] ?? 0) + 1;
    metrics.txBytes += chain.readableLength - VNET_HDR_SIZE;
    return 'sent';
  }
}
