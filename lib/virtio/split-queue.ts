// SplitQueue: the device side of one split virtqueue (virtio 1.2 §2.7). It knows only the
// ring format: it is built from the queue registers and a GuestMemory, pops available
// descriptor chains, publishes used elements, and decides whether the driver wants an
// interrupt (VIRTIO_F_EVENT_IDX §2.7.10, VIRTQ_AVAIL_F_NO_INTERRUPT §2.7.7).
//
// Memory ordering. The rings live in memory shared with a frontend vCPU running on another
// physical CPU, so three orderings matter (they are the device halves of the driver's
// virtio_wmb/virtio_rmb/virtio_mb pairs, §2.7.13):
//   (a) acquire: the avail idx load must happen before the reads of the avail ring entries
//       and descriptors it covers;
//   (b) release: the used element (and the data the device wrote into the buffers) must be
//       visible before the used idx store;
//   (c) full barrier: between the used idx store and the load of used_event / avail flags
//       (and, symmetrically, between the avail_event store and the avail idx re-check),
//       otherwise both sides can miss each other's update and an interrupt or kick is lost.
// Every ring index is therefore accessed with Atomics.load / Atomics.store on a Uint16Array
// over the mapping, and everything else with plain loads and stores. Atomics on a non-shared
// (external, mmap-backed) ArrayBuffer compile exactly as on a SharedArrayBuffer: the
// Atomics builtins (V8 builtins-sharedarraybuffer-gen.cc) validate "an integer typed array"
// and then emit the same sequentially consistent AtomicLoad / AtomicStore machine operators
// whatever the buffer kind (only wait/notify care that it is shared).
//   * arm64: Atomics.load is `ldar` (load-acquire) and Atomics.store is `stlr`
//     (store-release). ldar gives (a) and stlr gives (b). ARMv8 acquire/release is RCsc: an
//     ldar is never reordered before an earlier stlr in program order, which is (c).
//   * x86_64: Atomics.load is a plain `mov` (TSO already gives loads acquire semantics) and
//     Atomics.store is `xchg`, a locked instruction that is a full fence; TSO stores are
//     release, so (a), (b) hold and xchg supplies (c).
// Seen on x86_64 with Node 20 (--print-builtin-code): the AtomicsStore builtin stores a
// Uint16Array element with `xchgw`, AtomicsLoad with `movzxwl`; optimised code calls these
// builtins rather than inlining them, and the call is also a compiler barrier, so plain
// typed-array accesses are not moved across an Atomics operation by the JIT either.
// test/unit/virtio/memory-ordering.test.ts pins that the ring indices go through Atomics,
// checks those instructions on the host when V8 can disassemble, and runs a producer thread
// against this consumer.

import { readDescriptorChain, DESCRIPTOR_SIZE, type DescriptorChain } from './descriptor-chain.js';
import { QueueConfigError, QueueCorruptError } from './errors.js';
import type { GuestMemory } from './guest-memory.js';

export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** §2.7: the largest queue size a split ring can express. */
export const MAX_SPLIT_QUEUE_SIZE = 32768;

export interface SplitQueueConfig {
  /** QueueNum: a power of two, at most maxSize. */
  readonly size: number;
  /** QueueNumMax of this queue; defaults to MAX_SPLIT_QUEUE_SIZE. */
  readonly maxSize?: number;
  /** QueueDesc: GPA of the descriptor table (16-aligned, 16*size bytes). */
  readonly descTable: number;
  /** QueueDriver: GPA of the available ring (2-aligned, 6+2*size bytes). */
  readonly availRing: number;
  /** QueueDevice: GPA of the used ring (4-aligned, 6+8*size bytes). */
  readonly usedRing: number;
  /** VIRTIO_F_EVENT_IDX was negotiated. */
  readonly eventIdx?: boolean;
  /** VIRTIO_F_INDIRECT_DESC was negotiated. */
  readonly indirect?: boolean;
}

export class SplitQueue {
  readonly size: number;
  readonly descTable: number;
  /** Guest-physical addresses of the two rings (as the driver gave them; for vhost data planes). */
  readonly availRing: number;
  readonly usedRing: number;
  readonly eventIdx: boolean;
  readonly indirect: boolean;

  private readonly mask: number;
  private readonly view: DataView;
  private readonly cells: Uint16Array;
  private readonly availRingOffset: number;
  private readonly usedRingOffset: number;
  private readonly availFlagsCell: number;
  private readonly availIdxCell: number;
  private readonly usedEventCell: number;
  private readonly usedFlagsCell: number;
  private readonly usedIdxCell: number;
  private readonly availEventCell: number;
  /** Where pop() gathers a chain's spans (reused: the chain gets an array of its own length). */
  private readonly spanScratch: number[] = [];

  private nextAvailIdx = 0;
  private nextUsedIdx = 0;
  /** Used idx at the last interrupt decision (the driver zeroed the ring: it starts at 0). */
  private signalledUsed = 0;
  private isClosed = false;

  /** Validates the configuration (throws QueueConfigError: a guest fault at activation). */
  constructor(
    readonly memory: GuestMemory,
    config: SplitQueueConfig,
  ) {
    const { size, descTable, availRing, usedRing } = config;
    const maxSize = Math.min(config.maxSize ?? MAX_SPLIT_QUEUE_SIZE, MAX_SPLIT_QUEUE_SIZE);
    if (!Number.isInteger(size) || size < 1 || size > maxSize || (size & (size - 1)) !== 0) {
      throw new QueueConfigError('QUEUE_SIZE_INVALID', `queue size ${size} is not a power of two <= ${maxSize}`, {
        size,
        maxSize,
      });
    }
    // §2.7 table "Virtqueue Part Alignment and Size".
    const parts = [
      ['descriptor table', descTable, 16, DESCRIPTOR_SIZE * size],
      ['available ring', availRing, 2, 6 + 2 * size],
      ['used ring', usedRing, 4, 6 + 8 * size],
    ] as const;
    const offsets: number[] = [];
    for (const [name, gpa, align, length] of parts) {
      if (!Number.isSafeInteger(gpa) || gpa % align !== 0) {
        throw new QueueConfigError('QUEUE_RING_MISALIGNED', `${name} at ${gpa} is not ${align}-aligned`, { gpa, align });
      }
      const offset = memory.offsetOf(gpa, length);
      if (offset < 0) {
        throw new QueueConfigError('QUEUE_RING_OUT_OF_RANGE', `${name} [${gpa}, +${length}) is outside the region`, {
          gpa,
          length,
        });
      }
      offsets.push(offset);
    }
    this.size = size;
    this.mask = size - 1;
    this.descTable = descTable;
    this.availRing = availRing;
    this.usedRing = usedRing;
    this.eventIdx = config.eventIdx ?? false;
    this.indirect = config.indirect ?? false;
    this.view = memory.view;
    this.cells = memory.u16;
    const availOffset = offsets[1] as number;
    const usedOffset = offsets[2] as number;
    this.availRingOffset = availOffset + 4;
    this.usedRingOffset = usedOffset + 4;
    // The region starts 8-aligned (GuestMemory) and these parts are 2/4-aligned GPAs on an
    // 8-aligned base, so every u16 field below falls on a whole Uint16Array cell.
    this.availFlagsCell = availOffset >>> 1;
    this.availIdxCell = (availOffset + 2) >>> 1;
    this.usedEventCell = (availOffset + 4 + 2 * size) >>> 1;
    this.usedFlagsCell = usedOffset >>> 1;
    this.usedIdxCell = (usedOffset + 2) >>> 1;
    this.availEventCell = (usedOffset + 4 + 8 * size) >>> 1;
  }

  /** Index of the next avail ring entry the device will take (free-running u16). */
  get nextAvail(): number {
    return this.nextAvailIdx;
  }

  /** The used idx the device last published (free-running u16). */
  get nextUsed(): number {
    return this.nextUsedIdx;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** The driver's avail idx as it is now (free-running u16): how far its kicks would announce. */
  availIndex(): number {
    return Atomics.load(this.cells, this.availIdxCell);
  }

  /**
   * Whether the driver, moving avail idx from `from` to where it is now, was bound to notify the
   * device: with EVENT_IDX when it passed the avail_event the device last wrote (§2.7.10), else
   * unless the device had set VIRTQ_USED_F_NO_NOTIFY. A device that did not re-arm gets no kick
   * by design, and that is no kick lost.
   */
  notificationDue(from: number): boolean {
    if (this.isClosed) return false;
    const to = this.availIndex();
    if (to === from) return false;
    if (this.eventIdx) {
      const event = Atomics.load(this.cells, this.availEventCell);
      return ((to - event - 1) & 0xffff) < ((to - from) & 0xffff);
    }
    return (Atomics.load(this.cells, this.usedFlagsCell) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /**
   * The next available chain, or null when the driver has made none available. Throws
   * InvalidChainError (skip it: addUsed(err.head, 0)) or QueueCorruptError (fail the device).
   */
  pop(): DescriptorChain | null {
    if (this.isClosed) return null;
    const pending = this.pending();
    if (pending === 0) return null;
    const slot = this.nextAvailIdx & this.mask;
    const head = this.view.getUint16(this.availRingOffset + 2 * slot, true);
    this.nextAvailIdx = (this.nextAvailIdx + 1) & 0xffff;
    if (head >= this.size) {
      // No valid id to give back: the ring is garbage from here on.
      throw new QueueCorruptError('QUEUE_HEAD_OUT_OF_RANGE', `avail ring entry ${slot} names descriptor ${head}`, {
        head,
        size: this.size,
      });
    }
    return readDescriptorChain(this.memory, this.descTable, this.size, head, this.indirect, this.spanScratch);
  }

  /** Whether the driver has made chains available that pop() has not taken yet. */
  hasAvailable(): boolean {
    return !this.isClosed && this.somethingToPop();
  }

  /** Return chain `head` to the driver with `writtenLength` bytes written into it. */
  addUsed(head: number, writtenLength: number): void {
    if (this.isClosed) return;
    if (!Number.isInteger(head) || head < 0 || head >= this.size) {
      throw new RangeError(`addUsed: head ${head} is not a descriptor index of a queue of ${this.size}`);
    }
    const at = this.usedRingOffset + 8 * (this.nextUsedIdx & this.mask);
    this.view.setUint32(at, head, true);
    this.view.setUint32(at + 4, writtenLength >>> 0, true);
    this.nextUsedIdx = (this.nextUsedIdx + 1) & 0xffff;
    // (b) release: the element above and the buffer contents before it become visible first.
    Atomics.store(this.cells, this.usedIdxCell, this.nextUsedIdx);
  }

  /**
   * Whether the driver wants an interrupt for the used entries published since the last
   * call. Call after addUsed (the seq-cst pair store used idx / load used_event is (c)).
   */
  needsNotification(): boolean {
    if (this.isClosed) return false;
    const used = this.nextUsedIdx;
    const old = this.signalledUsed;
    if (used === old) return false; // nothing new since the last decision
    this.signalledUsed = used;
    if (this.eventIdx) {
      const usedEvent = Atomics.load(this.cells, this.usedEventCell);
      // vring_need_event (§2.7.10): notify iff used_event lies in [old, used).
      return ((used - usedEvent - 1) & 0xffff) < ((used - old) & 0xffff);
    }
    return (Atomics.load(this.cells, this.availFlagsCell) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * Ask the driver to kick again for new buffers, then re-check: returns true when buffers
   * arrived in the meantime, in which case the caller must keep popping (otherwise the kick
   * for them may already have been suppressed and they would wait forever). Also true when
   * the ring is corrupt, so that the caller's next pop() reports it.
   */
  enableNotification(): boolean {
    if (this.isClosed) return false;
    if (this.eventIdx) {
      // §2.7.10: avail_event = the next entry we will read; the driver kicks when it passes it.
      Atomics.store(this.cells, this.availEventCell, this.nextAvailIdx);
    } else {
      Atomics.store(this.cells, this.usedFlagsCell, 0);
    }
    // (c): the store above is ordered before this load.
    return this.somethingToPop();
  }

  /** Tell the driver it need not kick while the device is busy draining (§2.7.7). */
  disableNotification(): void {
    if (this.isClosed || this.eventIdx) return;
    Atomics.store(this.cells, this.usedFlagsCell, VIRTQ_USED_F_NO_NOTIFY);
  }

  /**
   * Continue a queue another process served (a daemon restart): the device's positions are
   * taken from the used idx in the ring, so the chains that process had taken and not
   * completed are taken again. Only for devices that complete chains in order (see
   * device-state.ts). Throws QueueCorruptError when the ring is inconsistent (the driver's
   * avail idx more than a queue size ahead of the used idx).
   */
  resumeFromUsed(): number {
    const used = Atomics.load(this.cells, this.usedIdxCell);
    const availIdx = Atomics.load(this.cells, this.availIdxCell);
    const distance = (availIdx - used) & 0xffff;
    if (distance > this.size) {
      throw new QueueCorruptError('QUEUE_AVAIL_IDX_JUMP', `avail idx ${availIdx} is ${distance} entries ahead of the used idx ${used} (queue size ${this.size})`, {
        availIdx,
        usedIdx: used,
        size: this.size,
      });
    }
    this.nextAvailIdx = used;
    this.nextUsedIdx = used;
    this.signalledUsed = used;
    return used;
  }

  /** Stop touching guest memory for good (device reset or NEEDS_RESET). */
  close(): void {
    this.isClosed = true;
  }

  /** Never throws: a corrupt ring counts as "something", and the next pop() reports it. */
  private somethingToPop(): boolean {
    try {
      return this.pending() !== 0;
    } catch {
      return true;
    }
  }

  private pending(): number {
    // (a) acquire: ring entries and descriptors are read only after this load.
    const availIdx = Atomics.load(this.cells, this.availIdxCell);
    const pending = (availIdx - this.nextAvailIdx) & 0xffff;
    if (pending > this.size) {
      throw new QueueCorruptError(
        'QUEUE_AVAIL_IDX_JUMP',
        `avail idx ${availIdx} is ${pending} entries ahead of ${this.nextAvailIdx} (queue size ${this.size})`,
        { availIdx, nextAvail: this.nextAvailIdx, size: this.size },
      );
    }
    return pending;
  }
}
