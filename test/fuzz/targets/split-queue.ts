// Fuzz target: the split-queue chain walk (SplitQueue + readDescriptorChain), direct and
// indirect, over any ring contents and indices. The input decodes into a queue configuration
// (size, ring addresses, negotiated ring features), a descriptor table, indirect tables, avail
// entries and indices, then a few rounds of "the driver changes something, the device drains":
// the device side does what every device does (takeChain's policy: skip an invalid chain with
// length 0, stop on a corrupt ring), writes into writable buffers and gives chains back.

import { copyFromReadable, copyToWritable } from '../../../lib/virtio/descriptor-chain.js';
import { InvalidChainError, QueueConfigError, QueueCorruptError } from '../../../lib/virtio/errors.js';
import { SplitQueue } from '../../../lib/virtio/split-queue.js';
import {
  type AddressSpace,
  decodeDescriptor,
  decodeIndex,
  decodeQueueSize,
  FuzzInput,
  INDIRECT_SLOT_BYTES,
  writeDescriptor,
} from '../decode.js';
import {
  beginInput,
  beginNotification,
  checkAllCompleted,
  endNotification,
  expectOnly,
  GuardedRegion,
  queueWatch,
  violated,
} from '../oracle.js';

const BASE = 0x4000_0000;
const SIZE = 64 * 1024;
const MAX_SIZE = 256;
// Canonical layout for the largest queue: descriptors, avail, used, indirect tables, data.
const DESC = BASE;
const AVAIL = BASE + 0x1000;
const USED = BASE + 0x1400;
const TABLES = BASE + 0x2000;
const TABLE_COUNT = 4;
const DATA = BASE + 0x3000;
const DATA_SIZE = SIZE - 0x3000;

const region = new GuardedRegion(BASE, SIZE);
const space: AddressSpace = {
  base: BASE,
  size: SIZE,
  dataStart: DATA,
  dataSize: DATA_SIZE,
  tables: Array.from({ length: TABLE_COUNT }, (_, i) => TABLES + i * INDIRECT_SLOT_BYTES),
  rings: [DESC, AVAIL, USED],
};
const scratch = new Uint8Array(4096);

/** A ring address: mostly the canonical one, sometimes shifted, misaligned or absurd. */
function ringAddress(input: FuzzInput, canonical: number): number {
  const b = input.u8();
  if (b < 0xd0) return canonical;
  if (b < 0xe8) return canonical + (input.u8() - 128);
  return input.pick([0, BASE - 16, BASE + SIZE - 8, BASE + SIZE, 2 ** 53, -16, 1.5, input.u32(), BASE + input.u16()]);
}

export function fuzz(data: Uint8Array): void {
  beginInput();
  region.clear();
  const input = new FuzzInput(data);
  const view = region.memory.view;
  const size = decodeQueueSize(input, MAX_SIZE);
  const flags = input.u8();
  const config = {
    size,
    maxSize: (flags & 0x80) !== 0 ? input.u16() : MAX_SIZE,
    descTable: ringAddress(input, DESC),
    availRing: ringAddress(input, AVAIL),
    usedRing: ringAddress(input, USED),
    eventIdx: (flags & 1) !== 0,
    indirect: (flags & 2) !== 0,
  };

  let queue: SplitQueue;
  try {
    queue = new SplitQueue(region.memory, config);
  } catch (err) {
    expectOnly(err, [QueueConfigError]);
    region.checkGuards();
    return;
  }
  const w = queueWatch(queue);
  const descOffset = config.descTable - BASE;
  const availOffset = config.availRing - BASE;

  // The driver's initial table, indirect tables and avail ring.
  const filled = Math.min(size, 1 + input.below(32));
  for (let i = 0; i < filled; i += 1) writeDescriptor(view, descOffset + 16 * input.below(size), decodeDescriptor(input, space, size));
  const tables = input.below(TABLE_COUNT + 1);
  for (let t = 0; t < tables; t += 1) {
    const entries = 1 + input.below(INDIRECT_SLOT_BYTES / 16);
    for (let j = 0; j < entries; j += 1) {
      writeDescriptor(view, TABLES - BASE + t * INDIRECT_SLOT_BYTES + 16 * j, decodeDescriptor(input, space, entries));
    }
  }
  let availIdx = 0;
  const posted = input.below(size + 1);
  for (let i = 0; i < posted; i += 1) {
    view.setUint16(availOffset + 4 + 2 * (availIdx % size), decodeIndex(input, size), true);
    availIdx += 1;
  }
  view.setUint16(availOffset + 2, (flags & 4) !== 0 ? input.u16() : availIdx, true);

  const rounds = 1 + input.below(4);
  let corrupt = false;
  for (let round = 0; round < rounds && !corrupt; round += 1) {
    if (round > 0) mutate(input, view, size, descOffset, availOffset);
    beginNotification();
    corrupt = drain(queue, input);
    endNotification(`drain ${round}`);
    if (corrupt) queue.close(); // what the transport does at NEEDS_RESET
    checkAllCompleted(`drain ${round}`);
    // The notification decisions must not throw or touch memory outside the region.
    queue.needsNotification();
    if (input.bool()) queue.disableNotification();
  }
  if (w.used > 0 && !queue.closed && queue.nextUsed !== view.getUint16(config.usedRing - BASE + 2, true)) {
    violated('USED_IDX', `used idx in memory differs from the device's ${queue.nextUsed}`);
  }
  region.checkGuards();
}

/** One drain as a device does it; returns true when the ring turned out corrupt. */
function drain(queue: SplitQueue, input: FuzzInput): boolean {
  queue.disableNotification();
  for (;;) {
    for (;;) {
      let chain;
      try {
        chain = queue.pop();
      } catch (err) {
        expectOnly(err, [InvalidChainError, QueueCorruptError]);
        if (err instanceof QueueCorruptError) return true;
        queue.addUsed((err as InvalidChainError).head, 0);
        continue;
      }
      if (chain === null) break;
      copyFromReadable(chain, scratch);
      const fill = scratch.subarray(0, Math.min(scratch.length, input.u16()));
      const written = copyToWritable(chain, fill, input.below(4));
      if (written > chain.writableLength) violated('COPY_OVERRUN', `copied ${written} into ${chain.writableLength} writable bytes`);
      queue.addUsed(chain.head, written);
    }
    let again: boolean;
    try {
      again = queue.enableNotification();
    } catch (err) {
      expectOnly(err, [QueueCorruptError]);
      return true;
    }
    if (!again) return false;
  }
}

/** Between drains the driver rewrites descriptors, posts heads, moves indices. */
function mutate(input: FuzzInput, view: DataView, size: number, descOffset: number, availOffset: number): void {
  const steps = input.below(8);
  let idx = view.getUint16(availOffset + 2, true);
  for (let s = 0; s < steps; s += 1) {
    switch (input.u8() & 3) {
      case 0:
        writeDescriptor(view, descOffset + 16 * input.below(size), decodeDescriptor(input, space, size));
        break;
      case 1:
        view.setUint16(availOffset + 4 + 2 * (idx % size), decodeIndex(input, size), true);
        idx = (idx + 1) & 0xffff;
        view.setUint16(availOffset + 2, idx, true);
        break;
      case 2:
        idx = input.bool() ? input.u16() : (idx + input.below(4)) & 0xffff;
        view.setUint16(availOffset + 2, idx, true);
        break;
      default:
        // used_event / avail flags (EVENT_IDX and NO_INTERRUPT)
        view.setUint16(input.bool() ? availOffset : availOffset + 4 + 2 * size, input.u16(), true);
    }
  }
}
