// The driver side of one split virtqueue, for tests: it lays out the three ring parts in a
// GuestMemory, writes descriptor chains (direct and indirect) and avail entries the way a
// frontend driver would, and reads back used entries. It is shipped (not under test/) so
// every device's tests, ours and other packages', can drive a SplitQueue the same way.
// It writes raw descriptors too, for hostile cases. Its own mistakes throw MockDriverError.

import type { GuestMemory } from '../guest-memory.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../descriptor-chain.js';
import type { SplitQueueConfig } from '../split-queue.js';

export class MockDriverError extends Error {
  override readonly name = 'MockDriverError';
  readonly code = 'MOCK_DRIVER';
}

/** A bump allocator over the guest region: the frontend's DMA pool, simplified. */
export class GuestAllocator {
  private next: number;

  constructor(
    readonly memory: GuestMemory,
    readonly start: number = memory.base,
  ) {
    this.next = start;
  }

  /** GPA of `length` fresh bytes aligned to `align` (zeroed). */
  alloc(length: number, align = 16): number {
    const gpa = Math.ceil(this.next / align) * align;
    if (!this.memory.contains(gpa, length)) {
      throw new MockDriverError(`guest memory exhausted allocating ${length} bytes`);
    }
    this.next = gpa + length;
    this.memory.slice(gpa, length).fill(0);
    return gpa;
  }

  /** Forget every allocation (the memory is reused from the start). */
  reset(): void {
    this.next = this.start;
  }
}

/** One buffer of a chain to submit. Readable unless `writable`; `data` fills it. */
export interface MockBuffer {
  /** Byte length; defaults to data.length. */
  readonly length?: number;
  readonly data?: Uint8Array | readonly number[];
  readonly writable?: boolean;
}

export interface RawDescriptor {
  readonly addr: number | bigint;
  readonly len: number;
  readonly flags?: number;
  readonly next?: number;
}

export interface UsedElement {
  readonly id: number;
  readonly len: number;
}

export interface AddOptions {
  /** Put the chain in an indirect table (one descriptor in the ring). */
  readonly indirect?: boolean;
  /** Publish the avail idx right away (default true); false batches until publish(). */
  readonly publish?: boolean;
}

interface Submitted {
  readonly descriptors: number[];
  readonly buffers: Uint8Array[];
  done: boolean;
}

export class MockQueue {
  readonly descTable: number;
  readonly availRing: number;
  readonly usedRing: number;

  private readonly free: number[] = [];
  private readonly submitted = new Map<number, Submitted>();
  private availIdx = 0;
  private lastUsedIdx = 0;

  constructor(
    readonly memory: GuestMemory,
    readonly allocator: GuestAllocator,
    readonly size: number,
  ) {
    this.descTable = allocator.alloc(16 * size, 16);
    this.availRing = allocator.alloc(6 + 2 * size, 2);
    this.usedRing = allocator.alloc(6 + 8 * size, 4);
    for (let i = 0; i < size; i += 1) this.free.push(i);
  }

  /** The registers a transport would hand SplitQueue for this ring. */
  config(extra: Partial<SplitQueueConfig> = {}): SplitQueueConfig {
    return { size: this.size, descTable: this.descTable, availRing: this.availRing, usedRing: this.usedRing, ...extra };
  }

  /** Submit one chain (readable buffers first); returns its head descriptor index. */
  add(buffers: readonly MockBuffer[], options: AddOptions = {}): number {
    if (buffers.length === 0) throw new MockDriverError('a chain needs at least one buffer');
    const views: Uint8Array[] = [];
    const raws: RawDescriptor[] = [];
    buffers.forEach((b, i) => {
      const length = b.length ?? b.data?.length ?? 0;
      const addr = this.allocator.alloc(Math.max(length, 1), 8);
      const view = this.memory.slice(addr, length);
      if (b.data) view.set(b.data);
      views.push(view);
      const last = i === buffers.length - 1;
      raws.push({
        addr,
        len: length,
        flags: (b.writable ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT),
        next: last ? 0 : i + 1,
      });
    });
    let descriptors: number[];
    if (options.indirect) {
      const table = this.writeIndirectTable(raws);
      const [index] = this.take(1);
      this.writeDescriptor(index as number, { addr: table, len: 16 * raws.length, flags: VIRTQ_DESC_F_INDIRECT });
      descriptors = [index as number];
    } else {
      descriptors = this.take(raws.length);
      raws.forEach((raw, i) =>
        this.writeDescriptor(descriptors[i] as number, { ...raw, next: descriptors[i + 1] ?? 0 }),
      );
    }
    const head = descriptors[0] as number;
    this.submitted.set(head, { descriptors, buffers: views, done: false });
    this.pushAvail(head, options.publish ?? true);
    return head;
  }

  /** The buffers of a submitted chain, as views (read what the device wrote); kept after use. */
  buffers(head: number): readonly Uint8Array[] {
    return this.submitted.get(head)?.buffers ?? [];
  }

  /** Write descriptor `index` of the main table verbatim (hostile tests). */
  writeDescriptor(index: number, d: RawDescriptor): void {
    writeRaw(this.memory, this.descTable + 16 * index, d);
  }

  /** Allocate an indirect table holding these descriptors verbatim; returns its GPA. */
  writeIndirectTable(descriptors: readonly RawDescriptor[]): number {
    const table = this.allocator.alloc(16 * Math.max(descriptors.length, 1), 16);
    descriptors.forEach((d, i) => writeRaw(this.memory, table + 16 * i, d));
    return table;
  }

  /** Put `head` in the next avail slot; publish the idx unless told not to. */
  pushAvail(head: number, publish = true): void {
    this.memory.writeU16(this.availRing + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    if (publish) this.publish();
  }

  /** Store the avail idx (the driver's virtio_wmb + idx write). */
  publish(): void {
    this.memory.writeU16(this.availRing + 2, this.availIdx);
  }

  /** Force the published avail idx (hostile tests). */
  setAvailIdx(value: number): void {
    this.availIdx = value & 0xffff;
    this.publish();
  }

  get publishedAvailIdx(): number {
    return this.memory.readU16(this.availRing + 2);
  }

  setAvailFlags(flags: number): void {
    this.memory.writeU16(this.availRing, flags);
  }

  /** used_event (EVENT_IDX): interrupt me once the used idx passes this. */
  setUsedEvent(value: number): void {
    this.memory.writeU16(this.availRing + 4 + 2 * this.size, value & 0xffff);
  }

  /** avail_event (EVENT_IDX), as published by the device. */
  availEvent(): number {
    return this.memory.readU16(this.usedRing + 4 + 8 * this.size);
  }

  usedFlags(): number {
    return this.memory.readU16(this.usedRing);
  }

  usedIdx(): number {
    return this.memory.readU16(this.usedRing + 2);
  }

  /** Used elements published since the last call; their descriptors are freed. */
  used(): UsedElement[] {
    const out: UsedElement[] = [];
    const idx = this.usedIdx();
    while (this.lastUsedIdx !== idx) {
      const at = this.usedRing + 4 + 8 * (this.lastUsedIdx % this.size);
      const element = { id: this.memory.readU32(at), len: this.memory.readU32(at + 4) };
      out.push(element);
      const chain = this.submitted.get(element.id);
      if (chain && !chain.done) {
        chain.done = true;
        this.free.push(...chain.descriptors);
      }
      this.lastUsedIdx = (this.lastUsedIdx + 1) & 0xffff;
    }
    return out;
  }

  private take(count: number): number[] {
    if (this.free.length < count) throw new MockDriverError(`no room for ${count} descriptors`);
    return this.free.splice(0, count);
  }
}

function writeRaw(memory: GuestMemory, at: number, d: RawDescriptor): void {
  memory.writeU64(at, BigInt(d.addr));
  memory.writeU32(at + 8, d.len >>> 0);
  memory.writeU16(at + 12, d.flags ?? 0);
  memory.writeU16(at + 14, d.next ?? 0);
}
