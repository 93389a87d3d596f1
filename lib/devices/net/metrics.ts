// Counters of one virtio-net device: traffic, backpressure and guest faults (each malformed
// input is dropped, counted here and logged rate-limited; the queue keeps going).

export class NetMetrics {
  /** Frames (and their bytes, header excluded) sent from the guest to the tap. */
  txFrames = 0;
  txBytes = 0;
  /** Of those, segmentation offload (TSO) frames: larger than the MTU, carried whole. */
  txGsoFrames = 0;
  /** Queue runs (transmit, control) that stopped at the budget and yielded to the event loop. */
  queueYields = 0;
  /** Runs that waited for a rate limit (none is set on net queues today). */
  rateLimitWaits = 0;
  /** Transmit runs after which the tap was read before the interrupt (replies taken along). */
  txReplyPolls = 0;
  /** Frames those reads delivered (each in the same interrupt as the transmit completions). */
  txReplyFrames = 0;
  /** Times the tap would not take a frame (EAGAIN) and transmit waited for it. */
  txTapFull = 0;
  /** The tap refused a frame (an error other than EAGAIN): dropped. */
  txTapErrors = 0;
  /** Frames from the tap (header excluded) delivered into guest buffers. */
  rxFrames = 0;
  rxBytes = 0;
  /** Of those, segmentation offload (GRO/TSO) frames, carried whole. */
  rxGsoFrames = 0;
  /** Guest receive buffers merged into one frame beyond the first (MRG_RXBUF). */
  rxMergedBuffers = 0;
  /** Times the guest had no receive buffers and the tap was left unread. */
  rxNoBuffers = 0;
  /** Frames larger than the buffers the guest offered: dropped. */
  rxTruncated = 0;
  /** Frames larger than the driver may receive (its MTU, or the GSO maximum): dropped. */
  rxOversize = 0;
  /** Frames whose tap header carried offloads the driver had not accepted: dropped. */
  rxOffloadDropped = 0;
  /** Frames the driver's receive filter (RX mode, MAC table) refused: dropped. */
  rxFiltered = 0;
  rxTapErrors = 0;
  /** Guest faults. */
  invalidChains = 0;
  txShortHeader = 0;
  txOversize = 0;
  txBadOffload = 0;
  txChainsWithWritable = 0;
  rxChainsWithoutWritable = 0;
  rxChainsWithReadable = 0;
  ctrlBadCommands = 0;
  ctrlCommands = 0;
  unknownQueueNotifies = 0;
  /** The tap went away or came back (link status changes reported to the guest). */
  linkChanges = 0;
  activations = 0;
  resets = 0;
  /** Queue pairs the driver uses now (0 while inactive). */
  pairsInUse = 0;
  /** Frames per queue pair, by pair index (which queues carry traffic). */
  readonly rxFramesByPair: number[] = [];
  readonly txFramesByPair: number[] = [];

  snapshot(): Record<string, number> {
    const out = Object.fromEntries(Object.entries(this).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
    this.rxFramesByPair.forEach((n, p) => (out[`rxFramesPair${p}`] = n));
    this.txFramesByPair.forEach((n, p) => (out[`txFramesPair${p}`] = n));
    return out;
  }
}
