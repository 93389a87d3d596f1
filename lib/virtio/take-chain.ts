// Taking the next chain off a queue, with the one policy every device shares for a frontend
// whose rings are corrupt (STYLE.md guideline 5, as QEMU's virtio_error): a malformed chain or
// an inconsistent ring is counted by its code (activation.ringFault) and fails the activation
// (DEVICE_NEEDS_RESET); the queue is closed by then and nothing more is taken from it. No used
// entry is written for a malformed chain: the driver's state is garbage, it must reset.

import type { DeviceActivation } from './device.js';
import type { DescriptorChain } from './descriptor-chain.js';
import { InvalidChainError, QueueCorruptError } from './errors.js';
import type { SplitQueue } from './split-queue.js';

export interface ChainFaultCounters {
  /** Malformed chains seen (each one also failed the device). */
  invalidChains: number;
}

/**
 * The next chain of `queue`, or null when it is empty, closed, or its rings are corrupt (then
 * the activation has been failed and the queue is closed).
 */
export function takeChain(
  queue: SplitQueue,
  queueIndex: number,
  activation: DeviceActivation,
  counters: ChainFaultCounters,
): DescriptorChain | null {
  try {
    return queue.pop();
  } catch (err) {
    if (err instanceof InvalidChainError) {
      counters.invalidChains += 1;
      activation.ringFault(err.code);
      activation.fail(`malformed descriptor chain: ${err.message}`, { queue: queueIndex, code: err.code, ...err.detail });
    } else if (err instanceof QueueCorruptError) {
      activation.ringFault(err.code);
      activation.fail(err.message, { queue: queueIndex, code: err.code, ...err.detail });
    } else {
      throw err;
    }
    // fail() closes the queue through the transport; a device handed a bare activation (tests,
    // other transports) must not read a corrupt ring again either.
    queue.close();
    return null;
  }
}
