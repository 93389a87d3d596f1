// Parsing one virtio-blk request (virtio 1.2 §5.2.6) out of a descriptor chain, without
// trusting anything in it. The result says what to do: an I/O on ranges of the guest's own
// buffers (never copies of the data), or an answer right away (an error status), or nothing
// at all when the chain has no byte to put a status in. The chain is read through its spans:
// the header in place, the status byte as a region offset, and the data as an IoVector (one
// typed array of spans per request, however many buffers it has). Every check happens here,
// before any I/O is started, so a malformed request never reaches the engine. The driver may
// frame a request any way it likes (§2.6.4): the header may span descriptors, and the status
// is the last writable byte whatever descriptor holds it.

import type { DescriptorChain } from '../../virtio/descriptor-chain.js';
import { IoVector } from './io-vector.js';
import {
  DISCARD_SEGMENT_SIZE,
  REQUEST_HEADER_SIZE,
  SECTOR_SIZE,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
} from './config.js';

/** What the parser needs to know about the device and the negotiated features. */
export interface RequestLimits {
  readonly capacitySectors: number;
  readonly readOnly: boolean;
  /** Data segments per request (SEG_MAX). */
  readonly segMax: number;
  /** Bytes per data segment (SIZE_MAX). */
  readonly sizeMax: number;
  readonly discard: boolean;
  readonly writeZeroes: boolean;
  readonly maxDiscardSectors: number;
  readonly maxDiscardSeg: number;
  readonly maxWriteZeroesSectors: number;
  readonly maxWriteZeroesSeg: number;
}

/** Why a request was answered with an error status without any I/O (counted per kind). */
export type MalformedKind =
  | 'shortHeader'
  | 'badLength'
  | 'outOfRange'
  | 'readOnly'
  | 'tooManySegments'
  | 'segmentTooLarge'
  | 'wrongDirection'
  | 'badSegments';

export interface ByteRange {
  /** Byte offset in the backing. */
  readonly offset: number;
  readonly length: number;
}

export interface ZeroRange extends ByteRange {
  readonly unmap: boolean;
}

export type ParsedRequest =
  /** No writable byte for the status: return the chain with length 0. */
  | { readonly kind: 'unanswerable' }
  /** Answered at once with this status, no I/O. */
  | { readonly kind: 'reject'; readonly status: number; readonly statusAt: number; readonly reason: MalformedKind | 'unsupported'; readonly type: number }
  | { readonly kind: 'read' | 'write'; readonly statusAt: number; readonly data: IoVector; readonly offset: number; readonly length: number }
  | { readonly kind: 'flush'; readonly statusAt: number }
  | { readonly kind: 'get-id'; readonly statusAt: number; readonly data: IoVector }
  | { readonly kind: 'discard'; readonly statusAt: number; readonly ranges: ByteRange[] }
  | { readonly kind: 'write-zeroes'; readonly statusAt: number; readonly ranges: ZeroRange[] };

/** `statusAt` is the status byte's offset in the chain's region (DescriptorChain.region). */

const U32 = 0x1_0000_0000;

const UNANSWERABLE: ParsedRequest = Object.freeze({ kind: 'unanswerable' });

export function parseRequest(chain: DescriptorChain, limits: RequestLimits): ParsedRequest {
  const spans = chain.spans;
  const region = chain.region;
  const readableCount = chain.readableCount;
  // The status is the last writable byte, whatever descriptor holds it (empty ones skipped).
  let last = (spans.length >>> 1) - 1;
  while (last >= readableCount && spans[2 * last + 1] === 0) last -= 1;
  if (last < readableCount) return UNANSWERABLE;
  const status = spans[2 * last]! + spans[2 * last + 1]! - 1;
  const writableDataLength = chain.writableLength - 1;

  if (chain.readableLength < REQUEST_HEADER_SIZE) return reject(status, VIRTIO_BLK_S_IOERR, 'shortHeader');
  // The header is metadata: read once into locals, so a driver changing it meanwhile changes
  // nothing. Read in place when its first descriptor holds it whole (Linux's always does);
  // gathered into a copy otherwise.
  let header = region;
  let at = spans[0]!;
  if (spans[1]! < REQUEST_HEADER_SIZE) {
    header = gather(chain, 0, REQUEST_HEADER_SIZE);
    at = 0;
  }
  const type = u32At(header, at);
  const sectorLow = u32At(header, at + 8);
  const sectorHigh = u32At(header, at + 12);
  const readableDataLength = chain.readableLength - REQUEST_HEADER_SIZE;

  switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const isRead = type === VIRTIO_BLK_T_IN;
      // Data flows one way: a read has no readable data, a write nothing writable but the status.
      if (isRead ? readableDataLength !== 0 : writableDataLength !== 0) return reject(status, VIRTIO_BLK_S_IOERR, 'wrongDirection', type);
      if (!isRead && limits.readOnly) return reject(status, VIRTIO_BLK_S_IOERR, 'readOnly', type);
      const length = isRead ? writableDataLength : readableDataLength;
      if (length % SECTOR_SIZE !== 0) return reject(status, VIRTIO_BLK_S_IOERR, 'badLength', type);
      const data = isRead ? dataVector(chain, readableCount, 0, length) : dataVector(chain, 0, REQUEST_HEADER_SIZE, length);
      const check = checkSegments(data.spans, limits);
      if (check !== undefined) return reject(status, VIRTIO_BLK_S_IOERR, check, type);
      const offset = rangeOffset(sectorLow, sectorHigh, length / SECTOR_SIZE, limits.capacitySectors);
      if (offset < 0) return reject(status, VIRTIO_BLK_S_IOERR, 'outOfRange', type);
      return { kind: isRead ? 'read' : 'write', statusAt: status, data, offset, length };
    }
    case VIRTIO_BLK_T_FLUSH:
      // Served even if FLUSH was not negotiated: syncing is always correct, and cheap then.
      return { kind: 'flush', statusAt: status };
    case VIRTIO_BLK_T_GET_ID:
      if (readableDataLength !== 0) return reject(status, VIRTIO_BLK_S_IOERR, 'wrongDirection', type);
      return { kind: 'get-id', statusAt: status, data: dataVector(chain, readableCount, 0, writableDataLength) };
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      const isDiscard = type === VIRTIO_BLK_T_DISCARD;
      if (isDiscard ? !limits.discard : !limits.writeZeroes) return reject(status, VIRTIO_BLK_S_UNSUPP, 'unsupported', type);
      if (writableDataLength !== 0) return reject(status, VIRTIO_BLK_S_IOERR, 'wrongDirection', type);
      if (limits.readOnly) return reject(status, VIRTIO_BLK_S_IOERR, 'readOnly', type);
      const maxSeg = isDiscard ? limits.maxDiscardSeg : limits.maxWriteZeroesSeg;
      const maxSectors = isDiscard ? limits.maxDiscardSectors : limits.maxWriteZeroesSectors;
      const count = readableDataLength / DISCARD_SEGMENT_SIZE;
      if (readableDataLength === 0 || !Number.isInteger(count)) return reject(status, VIRTIO_BLK_S_IOERR, 'badSegments', type);
      if (count > maxSeg) return reject(status, VIRTIO_BLK_S_IOERR, 'tooManySegments', type);
      const segments = gather(chain, REQUEST_HEADER_SIZE, readableDataLength);
      const sv = new DataView(segments.buffer);
      const ranges: ZeroRange[] = [];
      for (let i = 0; i < count; i += 1) {
        const at = i * DISCARD_SEGMENT_SIZE;
        const sectors = sv.getUint32(at + 8, true);
        const flags = sv.getUint32(at + 12, true);
        // §5.2.6.2: unknown flags, or unmap on a discard, are unsupported; too many sectors an error.
        const allowed = isDiscard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
        if ((flags & ~allowed) !== 0) return reject(status, VIRTIO_BLK_S_UNSUPP, 'unsupported', type);
        if (sectors > maxSectors) return reject(status, VIRTIO_BLK_S_IOERR, 'badSegments', type);
        const offset = rangeOffset(sv.getUint32(at, true), sv.getUint32(at + 4, true), sectors, limits.capacitySectors);
        if (offset < 0) return reject(status, VIRTIO_BLK_S_IOERR, 'outOfRange', type);
        ranges.push({ offset, length: sectors * SECTOR_SIZE, unmap: (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0 });
      }
      return isDiscard
        ? { kind: 'discard', statusAt: status, ranges: ranges.map(({ offset, length }) => ({ offset, length })) }
        : { kind: 'write-zeroes', statusAt: status, ranges };
    }
    default:
      return reject(status, VIRTIO_BLK_S_UNSUPP, 'unsupported', type);
  }
}

// A plain function rather than a closure per request: parsing allocates only what it returns.
function reject(statusAt: number, status: number, reason: MalformedKind | 'unsupported', type = -1): ParsedRequest {
  return { kind: 'reject', status, statusAt, reason, type };
}

/** The little-endian u32 at `at` of `bytes` (at + 4 <= bytes.length), each byte read once. */
function u32At(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

/** GET_ID's answer: the serial's bytes, at most 20, NUL-padded when shorter (§5.2.6). */
export function encodeSerial(serial: string): Uint8Array {
  const bytes = Buffer.from(serial, 'utf8');
  const out = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  out.set(bytes.subarray(0, VIRTIO_BLK_ID_BYTES));
  return out;
}

/**
 * Byte offset of `sectors` sectors from sector (high:low), or -1 when any of them lies past
 * the capacity. Written so that nothing can overflow: a sector beyond 2^53 is out of range.
 */
function rangeOffset(low: number, high: number, sectors: number, capacitySectors: number): number {
  if (high >= 0x20_0000) return -1;
  const sector = high * U32 + low;
  if (sector > capacitySectors || sectors > capacitySectors - sector) return -1;
  return sector * SECTOR_SIZE;
}

function checkSegments(spans: Float64Array, limits: RequestLimits): MalformedKind | undefined {
  if (spans.length >>> 1 > limits.segMax) return 'tooManySegments';
  for (let i = 1; i < spans.length; i += 2) if (spans[i]! > limits.sizeMax) return 'segmentTooLarge';
  return undefined;
}

/**
 * `length` bytes of the chain's buffers, from buffer `first` on, `skip` bytes into them (empty
 * buffers dropped), as spans of its region. The caller knows the chain holds that many bytes there.
 */
function dataVector(chain: DescriptorChain, first: number, skip: number, length: number): IoVector {
  const spans = chain.spans;
  const end = spans.length >>> 1;
  // Counted first, so the typed array is made at its length.
  let count = 0;
  let toSkip = skip;
  let left = length;
  for (let i = first; i < end && left > 0; i += 1) {
    const n = spans[2 * i + 1]!;
    if (toSkip >= n) {
      toSkip -= n;
      continue;
    }
    left -= Math.min(n - toSkip, left);
    toSkip = 0;
    count += 1;
  }
  const out = new Float64Array(2 * count);
  toSkip = skip;
  left = length;
  count = 0;
  for (let i = first; i < end && left > 0; i += 1) {
    const n = spans[2 * i + 1]!;
    if (toSkip >= n) {
      toSkip -= n;
      continue;
    }
    const take = Math.min(n - toSkip, left);
    out[2 * count] = spans[2 * i]! + toSkip;
    out[2 * count + 1] = take;
    count += 1;
    left -= take;
    toSkip = 0;
  }
  return new IoVector(chain.region, out, length);
}

/** A copy of `length` metadata bytes of the chain's readable buffers, `skip` bytes into them. */
function gather(chain: DescriptorChain, skip: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const { region, spans } = dataVector(chain, 0, skip, length);
  let at = 0;
  for (let i = 0; i < spans.length; i += 2) {
    out.set(region.subarray(spans[i]!, spans[i]! + spans[i + 1]!), at);
    at += spans[i + 1]!;
  }
  return out;
}
