// Counters of one console device: traffic, backpressure, and guest faults (STYLE.md guideline 5:
// a hostile chain is logged, counted and returned with length 0, never an exception).

export class ConsoleMetrics {
  /** Guest output bytes handed to the backend, and the chains that carried them. */
  txBytes = 0;
  txChains = 0;
  /** Times the backend asked us to wait (write() returned false) and we stopped popping. */
  txBackpressureWaits = 0;
  /** Backend write callbacks that reported an error (the chain is still returned). */
  txWriteErrors = 0;
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
  /** Guest faults: malformed chains (from takeChain) and chains with the wrong direction. */
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
