// IoRequest: one trapped MMIO access as ATTACH delivers it (spec §3.3, §3.9), decoded from the
// addon's raw batch. Hot path: one plain object per request and nothing else where it can be
// helped: the 64-bit addresses and ids are numbers (physical addresses and slot ids are far below
// 2^53), small enough to be stored unboxed, and the value is a bigint only when its upper half is
// not zero. Every extra heap cell here is young garbage on every access, and the scavenges it
// brings pause every device model in the process.

import { VIRTIO_REQUEST } from '../uapi/layouts.js';

export interface IoRequest {
  readonly dmId: number;
  /** Frontend guest-physical address of the register (absolute). */
  readonly addr: number;
  /** Raw op: IoOp.Write (0) or IoOp.Read (1); echoed unchanged on COMPLETE. */
  readonly op: number;
  /**
   * WRITE: the guest's source register, NOT truncated to accessWidth (§3.9): a number when it is
   * below 2^32, else a bigint (low32() reads either). READ: 0.
   */
  readonly value: number | bigint;
  /** 1, 2, 4 or 8 */
  readonly accessWidth: number;
  /** Hypervisor slot id, echoed on COMPLETE. */
  readonly requestId: number;
}

const SIZE = VIRTIO_REQUEST.size;
const O = VIRTIO_REQUEST.offsets as Record<'dm_id' | 'addr' | 'op' | 'value' | 'access_width' | 'request_id', number>;

/**
 * A u64 field as a number. The common case (upper half zero) returns the low word itself: an
 * arithmetic result with the 2^32 constant would be a heap number even when it is integral, and
 * one heap number stored into a field makes V8 box that field in every request decoded after it.
 */
function u64(view: DataView, at: number): number {
  const lo = view.getUint32(at, true);
  const hi = view.getUint32(at + 4, true);
  return hi === 0 ? lo : lo + hi * 0x1_0000_0000;
}

/** The low 32 bits of a request's value (what a register of up to 4 bytes is written with). */
export function low32(value: number | bigint): number {
  return typeof value === 'number' ? value >>> 0 : Number(value & 0xffffffffn);
}

/**
 * Decode `count` raw bao_virtio_request structs (little-endian on every Bao target). `view`: one
 * over `buffer` made earlier (the addon delivers into the same buffer each time).
 */
export function decodeRequests(buffer: ArrayBuffer, count: number, view: DataView = new DataView(buffer)): IoRequest[] {
  const out: IoRequest[] = new Array<IoRequest>(count);
  for (let i = 0; i < count; i++) {
    const base = i * SIZE;
    const at = base + O.value;
    out[i] = {
      dmId: u64(view, base + O.dm_id),
      addr: u64(view, base + O.addr),
      op: u64(view, base + O.op),
      value: view.getUint32(at + 4, true) === 0 ? view.getUint32(at, true) : view.getBigUint64(at, true),
      accessWidth: u64(view, base + O.access_width),
      requestId: u64(view, base + O.request_id),
    };
  }
  return out;
}

/** Encode requests the same way (for tests and for fakes of the addon). */
export function encodeRequests(requests: readonly IoRequest[]): ArrayBuffer {
  const buffer = new ArrayBuffer(requests.length * SIZE);
  const view = new DataView(buffer);
  requests.forEach((r, i) => {
    const base = i * SIZE;
    view.setBigUint64(base + O.dm_id, BigInt(r.dmId), true);
    view.setBigUint64(base + O.addr, BigInt(r.addr), true);
    view.setBigUint64(base + O.op, BigInt(r.op), true);
    view.setBigUint64(base + O.value, BigInt(r.value), true);
    view.setBigUint64(base + O.access_width, BigInt(r.accessWidth), true);
    view.setBigUint64(base + O.request_id, BigInt(r.requestId), true);
  });
  return buffer;
}
