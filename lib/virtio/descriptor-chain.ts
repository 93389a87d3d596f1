// Walking one descriptor chain of a split virtqueue (virtio 1.2 §2.7.5, indirect §2.7.5.3)
// into spans of the shared region: each buffer's offset and length, device-readable buffers
// first. Everything read from the table is untrusted: indices, lengths and addresses are
// checked, and the walk is bounded so a loop written by the driver terminates: a chain holds
// at most queue-size buffers, indirect tables included (an indirect table longer than the
// queue is refused before it is read). A failure throws InvalidChainError carrying the head;
// the policy (the rings are corrupt: DEVICE_NEEDS_RESET) belongs to take-chain.ts.
//
// Why spans and not views: a Uint8Array per buffer (about 100 bytes each, with the arrays
// holding them) was most of what a chain cost, and at 32 block requests in flight that garbage
// outlives a scavenge and is paid again when promoted. A device on the hot path reads its
// metadata and data through the spans (the block device reads its header and writes its status
// byte in place and hands its data to io_uring as spans; net transmit hands the tap the spans);
// `readable` and `writable` make the views on first use, for everyone else. The views are the same bytes the spans name, so
// which one a device uses changes nothing a driver can see.

import { InvalidChainError, type InvalidChainCode } from './errors.js';
import { addressFromWords, type GuestMemory } from './guest-memory.js';

export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const DESCRIPTOR_SIZE = 16;

/** An indirect table longer than this is refused (its `next` fields are u16). */
export const MAX_INDIRECT_DESCRIPTORS = 0xffff;
/** The used ring reports lengths as u32; a chain whose total does not fit is refused. */
const MAX_CHAIN_BYTES = 0xffff_ffff;

export interface DescriptorChain {
  /** Head descriptor index: the id to give back with addUsed. */
  readonly head: number;
  /** Device-readable buffers, in chain order; views onto guest memory (made on first use). */
  readonly readable: readonly Uint8Array[];
  /** Device-writable buffers, in chain order; views onto guest memory (made on first use). */
  readonly writable: readonly Uint8Array[];
  readonly readableLength: number;
  readonly writableLength: number;
  /** The region every span is in (GuestMemory.bytes). */
  readonly region: Uint8Array;
  /** Each buffer as a region offset and a length (offset0, length0, offset1, ...), readable ones first. */
  readonly spans: readonly number[];
  /** How many of the buffers are device-readable (the first ones). */
  readonly readableCount: number;
}

/** The number of buffers of `chain` (readable and writable). */
export function bufferCount(chain: DescriptorChain): number {
  return chain.spans.length >>> 1;
}

/** A view of buffer `i` of `chain` onto the region (no copy). */
export function bufferView(chain: DescriptorChain, i: number): Uint8Array {
  const region = chain.region;
  return new Uint8Array(region.buffer, region.byteOffset + chain.spans[2 * i]!, chain.spans[2 * i + 1]!);
}

class WalkedChain implements DescriptorChain {
  private readableViews: Uint8Array[] | undefined;
  private writableViews: Uint8Array[] | undefined;

  constructor(
    readonly head: number,
    readonly region: Uint8Array,
    readonly spans: readonly number[],
    readonly readableCount: number,
    readonly readableLength: number,
    readonly writableLength: number,
  ) {}

  get readable(): readonly Uint8Array[] {
    return (this.readableViews ??= this.views(0, this.readableCount));
  }

  get writable(): readonly Uint8Array[] {
    return (this.writableViews ??= this.views(this.readableCount, this.spans.length >>> 1));
  }

  private views(from: number, to: number): Uint8Array[] {
    const out = new Array<Uint8Array>(to - from);
    for (let i = from; i < to; i += 1) out[i - from] = bufferView(this, i);
    return out;
  }
}

/**
 * A chain over `region` made of these spans (offset, length pairs; the first `readableCount`
 * device-readable). For tests and for devices that build a chain themselves; every span must
 * lie inside the region.
 */
export function chainFromSpans(head: number, region: Uint8Array, spans: readonly number[], readableCount: number): DescriptorChain {
  let readableLength = 0;
  let writableLength = 0;
  for (let i = 0; i < spans.length; i += 2) {
    const offset = spans[i]!;
    const length = spans[i + 1]!;
    if (offset < 0 || length < 0 || offset + length > region.length) throw new RangeError(`span ${i >>> 1} is outside the region`);
    if (i >>> 1 < readableCount) readableLength += length;
    else writableLength += length;
  }
  return new WalkedChain(head, region, spans.slice(), readableCount, readableLength, writableLength);
}

/**
 * Read the chain starting at `head` of the descriptor table at `table` (a queue of `size`
 * entries; head < size is checked by the caller). `scratch` is the caller's to reuse from one
 * walk to the next (the spans are gathered there, then copied into an array of the chain's
 * exact length). Throws InvalidChainError.
 */
export function readDescriptorChain(
  memory: GuestMemory,
  table: number,
  size: number,
  head: number,
  indirectAllowed: boolean,
  scratch: number[] = [],
): DescriptorChain {
  const view = memory.view;
  let count = 0;
  let readableCount = 0;
  let readableLength = 0;
  let writableLength = 0;
  let tableOffset = memory.offsetOf(table, size * DESCRIPTOR_SIZE);
  let tableEntries = size;
  let index = head;
  // §2.7.5.3.1 / §2.7.4.2: a chain is at most queue-size long. The budget is shared by the
  // main table and an indirect table, so any loop terminates and one chain never costs more
  // than `size` descriptors to walk, whatever length an indirect descriptor claims.
  let ttl = size;
  let inIndirect = false;
  if (tableOffset < 0) throw invalid('CHAIN_BUFFER_OUT_OF_RANGE', head, index, 'descriptor table outside the region');

  for (;;) {
    if (ttl === 0) throw invalid('CHAIN_TOO_LONG', head, index, 'descriptor chain longer than the queue (a loop?)');
    ttl -= 1;
    const at = tableOffset + index * DESCRIPTOR_SIZE;
    const addr = addressFromWords(view.getUint32(at, true), view.getUint32(at + 4, true));
    const len = view.getUint32(at + 8, true);
    const flags = view.getUint16(at + 12, true);
    const next = view.getUint16(at + 14, true);

    if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
      if (!indirectAllowed) throw invalid('CHAIN_INDIRECT_NOT_NEGOTIATED', head, index, 'indirect descriptor without VIRTIO_F_INDIRECT_DESC');
      if (inIndirect) throw invalid('CHAIN_INDIRECT_NESTED', head, index, 'indirect descriptor inside an indirect table');
      if ((flags & VIRTQ_DESC_F_NEXT) !== 0) throw invalid('CHAIN_INDIRECT_WITH_NEXT', head, index, 'indirect descriptor with NEXT set');
      const entries = len / DESCRIPTOR_SIZE;
      if (len === 0 || len % DESCRIPTOR_SIZE !== 0 || entries > MAX_INDIRECT_DESCRIPTORS) {
        throw invalid('CHAIN_INDIRECT_BAD_LENGTH', head, index, 'indirect table length is not a non-zero multiple of 16', {
          len,
        });
      }
      if (entries > size) {
        throw invalid('CHAIN_TOO_LONG', head, index, 'indirect table longer than the queue', { entries, size });
      }
      const offset = memory.offsetOf(addr, len);
      if (offset < 0) throw invalid('CHAIN_INDIRECT_OUT_OF_RANGE', head, index, 'indirect table outside the region', { addr, len });
      tableOffset = offset;
      tableEntries = entries;
      // The indirect descriptor itself is no buffer: give its unit back to the shared budget.
      ttl += 1;
      index = 0;
      inIndirect = true;
      continue;
    }

    const offset = memory.offsetOf(addr, len);
    if (offset < 0) throw invalid('CHAIN_BUFFER_OUT_OF_RANGE', head, index, 'buffer outside the region', { addr, len });
    if ((flags & VIRTQ_DESC_F_WRITE) !== 0) {
      writableLength += len;
    } else {
      // §2.7.4.2: device-readable descriptors come before device-writable ones.
      if (readableCount < count) throw invalid('CHAIN_READABLE_AFTER_WRITABLE', head, index, 'readable descriptor after a writable one');
      readableCount += 1;
      readableLength += len;
    }
    scratch[2 * count] = offset;
    scratch[2 * count + 1] = len;
    count += 1;
    if (readableLength + writableLength > MAX_CHAIN_BYTES) {
      throw invalid('CHAIN_TOTAL_LENGTH_OVERFLOW', head, index, 'chain length exceeds 2^32-1 bytes');
    }

    if ((flags & VIRTQ_DESC_F_NEXT) === 0) break;
    if (next >= tableEntries) throw invalid('CHAIN_NEXT_OUT_OF_RANGE', head, index, 'next index beyond the table', { next });
    index = next;
  }

  const spans = new Array<number>(2 * count);
  for (let i = 0; i < 2 * count; i += 1) spans[i] = scratch[i]!;
  return new WalkedChain(head, memory.bytes, spans, readableCount, readableLength, writableLength);
}

// A plain function rather than a closure per chain: the walk stays allocation-free until it fails.
function invalid(
  code: InvalidChainCode,
  head: number,
  index: number,
  message: string,
  detail: Record<string, number> = {},
): InvalidChainError {
  return new InvalidChainError(code, head, message, { head, index, ...detail });
}

/**
 * Copy `src` into the chain's writable buffers, starting `offset` bytes into them; returns
 * the number of bytes copied (less than src.length when the buffers are too small).
 */
export function copyToWritable(chain: DescriptorChain, src: Uint8Array, offset = 0): number {
  return copyAcross(chain.writable, src, offset, true);
}

/** Copy from the chain's readable buffers, starting `offset` bytes into them, into `dst`. */
export function copyFromReadable(chain: DescriptorChain, dst: Uint8Array, offset = 0): number {
  return copyAcross(chain.readable, dst, offset, false);
}

function copyAcross(buffers: readonly Uint8Array[], data: Uint8Array, offset: number, intoBuffers: boolean): number {
  let skip = offset;
  let done = 0;
  for (const buffer of buffers) {
    if (done === data.length) break;
    if (skip >= buffer.length) {
      skip -= buffer.length;
      continue;
    }
    const n = Math.min(buffer.length - skip, data.length - done);
    if (intoBuffers) buffer.set(data.subarray(done, done + n), skip);
    else data.set(buffer.subarray(skip, skip + n), done);
    done += n;
    skip = 0;
  }
  return done;
}
