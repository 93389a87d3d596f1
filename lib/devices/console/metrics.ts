// Counters of one console device: traffic, bounds, and guest faults (STYLE.md guideline 5: a
// chain in the wrong direction is logged, counted and returned with length 0; a malformed one
// is counted and puts the device in NEEDS_RESET; never an exception).

export class ConsoleMetrics {
  /** Guest output bytes passed on to the backend, and the transmit chains taken. */
  txBytes = 0;
  txChains = 0;
  /**
   * Guest output dropped: beyond maxTxBytesPerChain, beyond what is held for a backend that
   * does not keep up (txBufferLimit), emerg_wr characters that found the output full.
   */
  txDroppedBytes = 0;
  /** Transmit chains longer than maxTxBytesPerChain. */
  txChainsTruncated = 0;
  /** Host input bytes written into guest buffers, and the chains that took them. */
  rxBytes = 0;
  rxChains = 0;
  /** Host input bytes waiting for guest rx buffers (a gauge). */
  rxBufferedBytes = 0;
  /** Host input dropped (oldest first) because the buffer hit its hard bound. */
  rxDroppedBytes = 0;
  /** Times backend input was paused because the buffer reached its limit. */
  rxBackpressurePauses = 0;
  /** Characters written through emerg_wr. */
  emergWrites = 0;
  /** Times a queue's per-run budget was spent with work left (served after a yield). */
  queueYields = 0;
  /** Times transmit waited for the output rate limit. */
  rateLimitWaits = 0;
  /** Guest faults: malformed chains (each put the device in NEEDS_RESET), wrong directions. */
  invalidChains = 0;
  rxChainsWithoutWritable = 0;
  rxChainsWithReadable = 0;
  txChainsWithWritable = 0;
  /** Notifications for a queue index the console does not have. */
  unknownQueueNotifies = 0;

  snapshot(): Record<string, number> {
    return Object.fromEntries(Object.entries(this).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
  }
}
