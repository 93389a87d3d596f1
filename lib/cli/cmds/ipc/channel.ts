// What `baoctl ipc` needs beyond lib/ipc: the size of a channel, offsets and lengths checked
// against it, and a hex dump. The drivers report no size; a read at or past the end of the read
// channel returns 0 bytes, so the size is found by a binary search of 1-byte reads (a few dozen
// preads for any region), the same for a plain file standing in for a device in tests.

import type { IpcDevice } from '../../../ipc/index.js';

/** The read channel's size in bytes. */
export function channelSize(device: Pick<IpcDevice, 'readInto'>, limit = 2 ** 40): number {
  const one = new Uint8Array(1);
  if (device.readInto(one, 0) === 0) return 0;
  let lo = 1; // a read at lo - 1 returns a byte
  let hi = 1;
  while (hi < limit && device.readInto(one, hi) === 1) {
    lo = hi + 1;
    hi *= 2;
  }
  // The size is in [lo, hi]: a read at hi returned 0 (or hi reached the limit).
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (device.readInto(one, mid) === 1) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A byte count or offset in decimal or 0x hex; undefined when it is neither. */
export function parseByteCount(text: string): number | undefined {
  const t = text.trim().replaceAll('_', '');
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(t)) return undefined;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : undefined;
}

export class IpcRangeError extends Error {
  readonly code = 'IPC_RANGE';
}

/** Checks [offset, offset + length) against a channel of `size` bytes; returns the length to use. */
export function checkRange(what: string, offset: number, length: number | undefined, size: number): number {
  const hex = (n: number): string => `0x${n.toString(16)}`;
  if (offset >= size) {
    throw new IpcRangeError(`${what}: offset ${hex(offset)} is past the end of the channel (${hex(size)} bytes: offsets 0..${hex(Math.max(size - 1, 0))})`);
  }
  const len = length ?? size - offset;
  if (len === 0) throw new IpcRangeError(`${what}: length 0: nothing to do`);
  if (offset + len > size) {
    throw new IpcRangeError(`${what}: ${len} bytes at ${hex(offset)} run past the end of the channel (${hex(size)} bytes); at most ${size - offset} fit there`);
  }
  return len;
}

/** `hexdump -C` style: address, 16 bytes in hex, the printable ones as text. */
export function hexDump(bytes: Uint8Array, baseOffset = 0): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.subarray(i, Math.min(i + 16, bytes.length));
    const hexes = [...row].map((b) => b.toString(16).padStart(2, '0'));
    const left = hexes.slice(0, 8).join(' ');
    const right = hexes.slice(8).join(' ');
    const text = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${(baseOffset + i).toString(16).padStart(8, '0')}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${text}|`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** Parses "de ad be ef" / "deadbeef" / "0xdeadbeef" into bytes; undefined when it is not hex. */
export function parseHexBytes(text: string): Buffer | undefined {
  const t = text.replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (t.length === 0 || t.length % 2 !== 0 || !/^[0-9a-f]+$/i.test(t)) return undefined;
  return Buffer.from(t, 'hex');
}
