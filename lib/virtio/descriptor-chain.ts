// Walking one descriptor chain of a split virtqueue (virtio 1.2 §2.7.5, indirect §2.7.5.3)
// into zero-copy views of the guest buffers. Everything read from the table is untrusted:
// indices, lengths and addresses are checked, and the walk is bounded so a loop written by
// the driver terminates: a chain holds at most queue-size buffers, indirect tables included
// (an indirect table longer than the queue is refused before it is read). A failure throws
// InvalidChainError carrying the head; the policy (the rings are corrupt: DEVICE_NEEDS_RESET)
// belongs to take-chain.ts.

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
  /** Device-readable buffers, in chain order; views onto guest memory. */
  readonly readable: readonly Uint8Array[];
  /** Device-writable buffers, in chain order; views onto guest memory. */
  readonly writable: readonly Uint8Array[];
  readonly readableLength: number;
  readonly writableLength: number;
}

/**
 * Read the chain starting at `head` of the descriptor table at `table` (a queue of `size`
 * entries; head < size is checked by the caller). Throws InvalidChainError.
 */
export function readDescriptorChain(
  memory: GuestMemory,
  table: number,
  size: number,
  head: number,
  indirectAllowed: boolean,
): DescriptorChain {
  const view = memory.view;
  const readable: Uint8Array[] = [];
  const writable: Uint8Array[] = [];
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
    const buffer = memory.bytes.subarray(offset, offset + len);
    if ((flags & VIRTQ_DESC_F_WRITE) !== 0) {
      writable.push(buffer);
      writableLength += len;
    } else {
      // §2.7.4.2: device-readable descriptors come before device-writable ones.
      if (writable.length > 0) throw invalid('CHAIN_READABLE_AFTER_WRITABLE', head, index, 'readable descriptor after a writable one');
      readable.push(buffer);
      readableLength += len;
    }
    if (readableLength + writableLength > MAX_CHAIN_BYTES) {
      throw invalid('CHAIN_TOTAL_LENGTH_OVERFLOW', head, index, 'chain length exceeds 2^32-1 bytes');
    }

    if ((flags & VIRTQ_DESC_F_NEXT) === 0) break;
    if (next >= tableEntries) throw invalid('CHAIN_NEXT_OUT_OF_RANGE', head, index, 'next index beyond the table', { next });
    index = next;
  }

  return { head, readable, writable, readableLength, writableLength };
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
