// Parsing one virtio-blk request (virtio 1.2 §5.2.6) out of a descriptor chain, without
// trusting anything in it. The result says what to do: an I/O on views of the guest's own
// buffers (never copies of the data), or an answer right away (an error status), or nothing
// at all when the chain has no byte to put a status in. Every check happens here, before any
// I/O is started, so a malformed request never reaches the engine. The driver may frame a
// request any way it likes (§2.6.4): the header may span descriptors, and the status is the
// last writable byte whatever descriptor holds it.

import type { DescriptorChain } from '../../virtio/descriptor-chain.js';
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
  | { readonly kind: 'reject'; readonly status: number; readonly statusByte: Uint8Array; readonly reason: MalformedKind | 'unsupported'; readonly type: number }
  | { readonly kind: 'read' | 'write'; readonly statusByte: Uint8Array; readonly views: Uint8Array[]; readonly offset: number; readonly length: number }
  | { readonly kind: 'flush'; readonly statusByte: Uint8Array }
  | { readonly kind: 'get-id'; readonly statusByte: Uint8Array; readonly views: Uint8Array[] }
  | { readonly kind: 'discard'; readonly statusByte: Uint8Array; readonly ranges: ByteRange[] }
  | { readonly kind: 'write-zeroes'; readonly statusByte: Uint8Array; readonly ranges: ZeroRange[] };

const U32 = 0x1_0000_0000;

export function parseRequest(chain: DescriptorChain, limits: RequestLimits): ParsedRequest {
  const split = splitStatus(chain.writable);
  if (split === undefined) return { kind: 'unanswerable' };
  const { status, data: writableData, dataLength: writableDataLength } = split;

  if (chain.readableLength < REQUEST_HEADER_SIZE) return reject(status, VIRTIO_BLK_S_IOERR, 'shortHeader');
  // The header is metadata: read once into locals, so a driver changing it meanwhile changes
  // nothing. Read in place when its first descriptor holds it whole (Linux's always does);
  // gathered into a copy otherwise.
  let first = chain.readable[0]!;
  if (first.length < REQUEST_HEADER_SIZE) first = gather(chain.readable, 0, REQUEST_HEADER_SIZE);
  const type = u32At(first, 0);
  const sectorLow = u32At(first, 8);
  const sectorHigh = u32At(first, 12);
  const readableDataLength = chain.readableLength - REQUEST_HEADER_SIZE;

  switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const isRead = type === VIRTIO_BLK_T_IN;
      // Data flows one way: a read has no readable data, a write nothing writable but the status.
      if (isRead ? readableDataLength !== 0 : writableDataLength !== 0) return reject(status, VIRTIO_BLK_S_IOERR, 'wrongDirection', type);
      if (!isRead && limits.readOnly) return reject(status, VIRTIO_BLK_S_IOERR, 'readOnly', type);
      const views = isRead ? writableData : slice(chain.readable, REQUEST_HEADER_SIZE, readableDataLength);
      const length = isRead ? writableDataLength : readableDataLength;
      if (length % SECTOR_SIZE !== 0) return reject(status, VIRTIO_BLK_S_IOERR, 'badLength', type);
      const check = checkSegments(views, limits);
      if (check !== undefined) return reject(status, VIRTIO_BLK_S_IOERR, check, type);
      const offset = rangeOffset(sectorLow, sectorHigh, length / SECTOR_SIZE, limits.capacitySectors);
      if (offset < 0) return reject(status, VIRTIO_BLK_S_IOERR, 'outOfRange', type);
      return { kind: isRead ? 'read' : 'write', statusByte: status, views, offset, length };
    }
    case VIRTIO_BLK_T_FLUSH:
      // Served even if FLUSH was not negotiated: syncing is always correct, and cheap then.
      return { kind: 'flush', statusByte: status };
    case VIRTIO_BLK_T_GET_ID:
      if (readableDataLength !== 0) return reject(status, VIRTIO_BLK_S_IOERR, 'wrongDirection', type);
      return { kind: 'get-id', statusByte: status, views: writableData };
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
      const segments = gather(chain.readable, REQUEST_HEADER_SIZE, readableDataLength);
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
        ? { kind: 'discard', statusByte: status, ranges: ranges.map(({ offset, length }) => ({ offset, length })) }
        : { kind: 'write-zeroes', statusByte: status, ranges };
    }
    default:
      return reject(status, VIRTIO_BLK_S_UNSUPP, 'unsupported', type);
  }
}

// A plain function rather than a closure per request: parsing allocates only what it returns.
function reject(statusByte: Uint8Array, status: number, reason: MalformedKind | 'unsupported', type = -1): ParsedRequest {
  return { kind: 'reject', status, statusByte, reason, type };
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

function checkSegments(views: readonly Uint8Array[], limits: RequestLimits): MalformedKind | undefined {
  if (views.length > limits.segMax) return 'tooManySegments';
  for (const v of views) if (v.length > limits.sizeMax) return 'segmentTooLarge';
  return undefined;
}

/** The last writable byte (the status) and the writable bytes before it, as views. */
function splitStatus(
  writable: readonly Uint8Array[],
): { status: Uint8Array; data: Uint8Array[]; dataLength: number } | undefined {
  let last = writable.length - 1;
  while (last >= 0 && writable[last]!.length === 0) last -= 1;
  if (last < 0) return undefined;
  const tail = writable[last]!;
  const status = tail.subarray(tail.length - 1);
  const data: Uint8Array[] = [];
  let dataLength = 0;
  for (let i = 0; i < last; i += 1) {
    const v = writable[i]!;
    if (v.length === 0) continue;
    data.push(v);
    dataLength += v.length;
  }
  if (tail.length > 1) {
    data.push(tail.subarray(0, tail.length - 1));
    dataLength += tail.length - 1;
  }
  return { status, data, dataLength };
}

/** Views of `length` bytes starting `skip` bytes into `buffers` (empty buffers dropped). */
function slice(buffers: readonly Uint8Array[], skip: number, length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let toSkip = skip;
  let left = length;
  for (const b of buffers) {
    if (left === 0) break;
    if (toSkip >= b.length) {
      toSkip -= b.length;
      continue;
    }
    const n = Math.min(b.length - toSkip, left);
    out.push(b.subarray(toSkip, toSkip + n));
    left -= n;
    toSkip = 0;
  }
  return out;
}

/** A copy of `length` metadata bytes starting `skip` bytes into `buffers`. */
function gather(buffers: readonly Uint8Array[], skip: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const v of slice(buffers, skip, length)) {
    out.set(v, at);
    at += v.length;
  }
  return out;
}
