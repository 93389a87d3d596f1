// The loop body every device shares: take the next chain, dealing with guest faults the
// same way everywhere (STYLE.md guideline 5). A malformed chain is logged, counted and given
// back with length 0; a corrupt ring fails the activation (DEVICE_NEEDS_RESET).

import type { DeviceActivation } from './device.js';
import type { DescriptorChain } from './descriptor-chain.js';
import { InvalidChainError, QueueCorruptError } from './errors.js';
import { worthLogging } from './logger.js';
import type { SplitQueue } from './split-queue.js';

export interface ChainFaultCounters {
  /** Chains returned with length 0 because they were malformed. */
  invalidChains: number;
}

/**
 * The next valid chain of `queue`, or null when it is empty or the ring is corrupt (then
 * the activation has been failed). Skipped chains are already on the used ring: call
 * activation.notifyUsed(queueIndex) after the drain as usual.
 */
export function takeChain(
  queue: SplitQueue,
  queueIndex: number,
  activation: DeviceActivation,
  counters: ChainFaultCounters,
): DescriptorChain | null {
  for (;;) {
    try {
      return queue.pop();
    } catch (err) {
      if (err instanceof InvalidChainError) {
        counters.invalidChains += 1;
        if (worthLogging(counters.invalidChains)) {
          activation.log.warn({ queue: queueIndex, code: err.code, ...err.detail }, `guest fault: ${err.message}`);
        }
        queue.addUsed(err.head, 0);
        continue; // each pop consumed one avail entry, so this loop ends
      }
      if (err instanceof QueueCorruptError) {
        activation.fail(err.message, { queue: queueIndex, code: err.code, ...err.detail });
        return null;
      }
      throw err;
    }
  }
}
