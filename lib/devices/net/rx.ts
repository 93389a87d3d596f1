// Receive: frames from a tap queue land straight in the guest's receive buffers (readv with
// iovecs onto the shared mapping; the tap writes the vnet header too, we add num_buffers).
//
// Without MRG_RXBUF each frame takes one chain. With it, chains are taken ahead into a small
// reserve until they can hold the largest frame the driver negotiated, the frame is read across
// them, and the chains it used are returned (num_buffers of them); the rest wait for the next
// frame. A frame that did not fit (truncated), whose header carries offloads the driver did not
// accept, or that the driver's receive filter refuses (filter.ts) is dropped and counted, and
// the chains are reused. So is a frame larger than the driver may receive: past the largest
// frame its features allow, or, with VIRTIO_NET_F_MTU, a frame without GSO past the MTU (the
// tap's own MTU is the host's to set and may be larger; the guest's buffers may have room for
// more, but a driver told an MTU must never see a frame above it). When the guest has no buffers
// the device stops reading the tap: the kernel queues or drops, as on a NIC whose ring is full.

import type { DeviceActivation } from '../../virtio/device.js';
import type { DescriptorChain } from '../../virtio/descriptor-chain.js';
import { worthLogging } from '../../virtio/logger.js';
import type { SplitQueue } from '../../virtio/split-queue.js';
import { takeChain } from '../../virtio/take-chain.js';
import { GSO_ECN, GSO_NONE, HDR_F_DATA_VALID, HDR_NUM_BUFFERS, VNET_HDR_SIZE, checkRxHeader, decodeHeader, gatherHeader, writeU16Across } from './header.js';
import type { RxFilter } from './filter.js';
import type { NetMetrics } from './metrics.js';
import type { TapQueue } from './tap.js';

export type RxResult = 'tap-empty' | 'no-buffers' | 'budget' | 'stopped' | 'tap-error';

export interface RxSettings {
  readonly features: bigint;
  readonly mergeable: boolean;
  /** Largest frame the tap may hand over for these features, header included. */
  readonly maxFrame: number;
  /** Largest frame without GSO the driver may receive, header included (Infinity: no MTU negotiated). */
  readonly maxPlainFrame: number;
  readonly metrics: NetMetrics;
  readonly activation: DeviceActivation;
  /** The driver's RX mode and MAC table (frames it does not accept are dropped and counted). */
  readonly filter?: RxFilter;
  /** Called when a tap read fails for a reason other than "nothing to read". */
  readonly onTapError: (tap: TapQueue, err: unknown) => void;
}

export class RxQueue {
  private readonly reserve: DescriptorChain[] = [];
  private reserveBytes = 0;
  private readonly scratch = new Uint8Array(VNET_HDR_SIZE);
  /** The read vector, rebuilt for each frame in place (read synchronously, never kept). */
  private readonly vector: { buffers: Uint8Array[]; capacity: number } = { buffers: [], capacity: 0 };
  private published = false;

  constructor(
    readonly index: number,
    readonly queue: SplitQueue,
    private readonly settings: RxSettings,
  ) {}

  /** Chains taken from the ring but not used yet (returned to the driver only by its reset). */
  get reserved(): number {
    return this.reserve.length;
  }

  /** Delivers frames from `tap` until about `budget.chains` frames or `budget.bytes` bytes. */
  pump(tap: TapQueue, budget: { readonly chains: number; readonly bytes: number }): RxResult {
    const { metrics } = this.settings;
    let result: RxResult = 'budget';
    const maxFrames = Math.max(1, Math.min(budget.chains, this.queue.size));
    for (let frames = 0, bytes = 0; frames < maxFrames && bytes < budget.bytes; ) {
      if (!this.fill()) {
        result = this.queue.closed ? 'stopped' : 'no-buffers';
        break;
      }
      const iov = this.iovecs();
      let n: number;
      try {
        n = tap.readv(iov.buffers);
      } catch (err) {
        metrics.rxTapErrors += 1;
        this.settings.onTapError(tap, err);
        result = 'tap-error';
        break;
      }
      if (n < 0) {
        result = 'tap-empty';
        break;
      }
      frames += 1;
      bytes += n;
      if (n > iov.capacity || n < VNET_HDR_SIZE) {
        // The tap reports a frame's whole length even when the buffers held only its start.
        metrics.rxTruncated += 1;
        continue;
      }
      const first = this.reserve[0] as DescriptorChain;
      gatherHeader(first.writable, this.scratch);
      const header = decodeHeader(this.scratch);
      if (n > this.settings.maxFrame || (n > this.settings.maxPlainFrame && (header.gsoType & ~GSO_ECN) === GSO_NONE)) {
        metrics.rxOversize += 1;
        continue;
      }
      const verdict = checkRxHeader(header, this.settings.features);
      if (verdict === 'flags' || verdict === 'gso') {
        metrics.rxOffloadDropped += 1;
        continue;
      }
      if (this.settings.filter !== undefined && !this.settings.filter.accepts(iov.buffers, n)) {
        metrics.rxFiltered += 1;
        continue;
      }
      if (verdict === 'clear-data-valid') writeByteAcross(first.writable, 0, (this.scratch[0] as number) & ~HDR_F_DATA_VALID);
      this.publish(n);
      if (header.gsoType !== 0) metrics.rxGsoFrames += 1;
    }
    this.flush();
    return result;
  }

  /** Raise the used-buffer interrupt for what pump() returned, if the driver wants one. */
  flush(): void {
    if (!this.published) return;
    this.published = false;
    this.settings.activation.notifyUsed(this.index);
  }

  /** Re-arm kicks for new buffers; true when some arrived meanwhile (keep pumping). */
  rearm(): boolean {
    return this.queue.enableNotification();
  }

  quiet(): void {
    this.queue.disableNotification();
  }

  /** Takes chains until the reserve can hold one frame; false when the guest has too few. */
  private fill(): boolean {
    const { mergeable, maxFrame } = this.settings;
    for (;;) {
      if (mergeable ? this.reserveBytes >= maxFrame : this.reserve.length > 0) return true;
      // A ring smaller than one frame: read into all of it (a larger frame is counted truncated).
      if (mergeable && this.reserve.length > 0 && this.reserve.length >= this.queue.size) return true;
      const chain = takeChain(this.queue, this.index, this.settings.activation, this.settings.metrics);
      if (chain === null) return false;
      if (!this.acceptable(chain)) {
        this.queue.addUsed(chain.head, 0);
        this.published = true;
        continue;
      }
      this.reserve.push(chain);
      this.reserveBytes += chain.writableLength;
    }
  }

  private acceptable(chain: DescriptorChain): boolean {
    const { metrics, activation } = this.settings;
    if (chain.readableCount > 0) {
      metrics.rxChainsWithReadable += 1;
      if (worthLogging(metrics.rxChainsWithReadable)) activation.log.warn({ queue: this.index, head: chain.head }, 'guest fault: receive chain with readable buffers; returned unused');
      return false;
    }
    if (chain.writableLength < VNET_HDR_SIZE) {
      metrics.rxChainsWithoutWritable += 1;
      if (worthLogging(metrics.rxChainsWithoutWritable)) activation.log.warn({ queue: this.index, head: chain.head, length: chain.writableLength }, 'guest fault: receive chain without room for the header; returned unused');
      return false;
    }
    return true;
  }

  /** The buffers one read may fill: the first chain, or (MRG_RXBUF) enough chains for a frame. */
  private iovecs(): { buffers: Uint8Array[]; capacity: number } {
    if (!this.settings.mergeable) {
      const chain = this.reserve[0] as DescriptorChain;
      return { buffers: chain.writable as Uint8Array[], capacity: chain.writableLength };
    }
    const v = this.vector;
    v.buffers.length = 0;
    v.capacity = 0;
    for (const chain of this.reserve) {
      for (const b of chain.writable) v.buffers.push(b);
      v.capacity += chain.writableLength;
      if (v.capacity >= this.settings.maxFrame) break;
    }
    return v;
  }

  /** Returns the chains holding an `n`-byte frame, first one with num_buffers set. */
  private publish(n: number): void {
    const { metrics } = this.settings;
    let left = n;
    let used = 0;
    while (left > 0) {
      const chain = this.reserve[used] as DescriptorChain;
      left -= Math.min(left, chain.writableLength);
      used += 1;
    }
    const first = this.reserve[0] as DescriptorChain;
    writeU16Across(first.writable, HDR_NUM_BUFFERS, used);
    left = n;
    for (let i = 0; i < used; i += 1) {
      const chain = this.reserve.shift() as DescriptorChain;
      const len = Math.min(left, chain.writableLength);
      left -= len;
      this.reserveBytes -= chain.writableLength;
      this.queue.addUsed(chain.head, len);
    }
    this.published = true;
    metrics.rxFrames += 1;
    const pair = this.index >>> 1;
    metrics.rxFramesByPair[pair] = (metrics.rxFramesByPair[pair] ?? 0) + 1;
    metrics.rxBytes += n - VNET_HDR_SIZE;
    metrics.rxMergedBuffers += used - 1;
  }
}

function writeByteAcross(buffers: readonly Uint8Array[], offset: number, value: number): void {
  let skip = offset;
  for (const b of buffers) {
    if (skip < b.length) {
      b[skip] = value;
      return;
    }
    skip -= b.length;
  }
}
