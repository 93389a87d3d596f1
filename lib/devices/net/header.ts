// The virtio-net header (virtio 1.2 §5.1.6, struct virtio_net_hdr_v1, 12 bytes with VERSION_1)
// and what the negotiated features allow in it. The header is the guest's own: on transmit it
// goes to the tap as the guest wrote it (the kernel reads the same layout, TUNSETVNETHDRSZ 12),
// on receive the tap writes it into the guest's buffer and we fill in num_buffers. We only
// look at it, through a 12-byte scratch copy (it may straddle descriptors), to refuse what the
// driver did not negotiate.

import {
  NET_F_CSUM,
  NET_F_GUEST_CSUM,
  NET_F_GUEST_ECN,
  NET_F_GUEST_TSO4,
  NET_F_GUEST_TSO6,
  NET_F_HOST_ECN,
  NET_F_HOST_TSO4,
  NET_F_HOST_TSO6,
} from './config.js';

export const VNET_HDR_SIZE = 12;
export const HDR_NUM_BUFFERS = 10;

export const HDR_F_NEEDS_CSUM = 1;
export const HDR_F_DATA_VALID = 2;
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
export const GSO_UDP = 3;
export const GSO_TCPV6 = 4;
export const GSO_ECN = 0x80;

/** Ethernet header plus one VLAN tag: what a frame carries beyond its MTU-sized payload. */
export const ETH_OVERHEAD = 18;
/** The largest frame a GSO packet can be (an IP datagram of 64 KiB plus Ethernet and VLAN). */
export const MAX_GSO_FRAME = 65535 + ETH_OVERHEAD;

// TUN_F_* (linux/if_tun.h): stable kernel ABI values.
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;

export interface VnetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

/** Reads the first 12 bytes spread over `buffers` into `scratch`; false if there are fewer. */
export function gatherHeader(buffers: readonly Uint8Array[], scratch: Uint8Array): boolean {
  let done = 0;
  for (const b of buffers) {
    const n = Math.min(b.length, VNET_HDR_SIZE - done);
    scratch.set(n === b.length ? b : b.subarray(0, n), done);
    done += n;
    if (done === VNET_HDR_SIZE) return true;
  }
  return false;
}

/** gatherHeader over (offset, length) spans of `region` (a chain's readable buffers first). */
export function gatherHeaderFromSpans(region: Uint8Array, spans: readonly number[], scratch: Uint8Array): boolean {
  // Byte by byte: 12 bytes, per frame, without a subarray per piece.
  let done = 0;
  for (let i = 0; i < spans.length; i += 2) {
    const at = spans[i]!;
    const n = Math.min(spans[i + 1]!, VNET_HDR_SIZE - done);
    for (let k = 0; k < n; k += 1) scratch[done + k] = region[at + k]!;
    done += n;
    if (done === VNET_HDR_SIZE) return true;
  }
  return false;
}

export function decodeHeader(scratch: Uint8Array): VnetHeader {
  const v = new DataView(scratch.buffer, scratch.byteOffset, VNET_HDR_SIZE);
  return {
    flags: v.getUint8(0),
    gsoType: v.getUint8(1),
    hdrLen: v.getUint16(2, true),
    gsoSize: v.getUint16(4, true),
    csumStart: v.getUint16(6, true),
    csumOffset: v.getUint16(8, true),
  };
}

/** Writes a little-endian u16 at byte `offset` of the concatenation of `buffers` (per frame: no allocation). */
export function writeU16Across(buffers: readonly Uint8Array[], offset: number, value: number): boolean {
  let skip = offset;
  let done = 0;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    while (done < 2 && skip < b.length) {
      b[skip] = done === 0 ? value & 0xff : (value >>> 8) & 0xff;
      skip += 1;
      done += 1;
    }
    if (done === 2) return true;
    skip = 0;
  }
  return false;
}

export type HeaderVerdict = 'ok' | 'flags' | 'gso';

/**
 * Whether a transmit header only uses what the driver negotiated (§5.1.6.2.1): NEEDS_CSUM
 * needs CSUM; TCPv4/TCPv6 segmentation needs HOST_TSO4/6, ECN needs HOST_ECN; UFO is not
 * offered. Anything else the kernel would have to second-guess.
 */
export function checkTxHeader(h: VnetHeader, features: bigint): HeaderVerdict {
  if ((h.flags & ~HDR_F_NEEDS_CSUM) !== 0) return 'flags';
  if ((h.flags & HDR_F_NEEDS_CSUM) !== 0 && (features & NET_F_CSUM) === 0n) return 'flags';
  const gso = h.gsoType & ~GSO_ECN;
  if ((h.gsoType & GSO_ECN) !== 0 && (features & NET_F_HOST_ECN) === 0n) return 'gso';
  if (gso === GSO_NONE) return (h.gsoType & GSO_ECN) !== 0 ? 'gso' : 'ok';
  if (gso === GSO_TCPV4 && (features & NET_F_HOST_TSO4) !== 0n) return 'ok';
  if (gso === GSO_TCPV6 && (features & NET_F_HOST_TSO6) !== 0n) return 'ok';
  return 'gso';
}

/**
 * Whether a received header (written by the tap) may reach a driver with these features
 * (§5.1.6.4.1). The tap follows our offload flags, but frames queued before a flag change can
 * still carry the old ones; those are dropped rather than handed to a driver that cannot read
 * them. DATA_VALID without GUEST_CSUM is harmless to clear, so the caller clears it ('flags').
 */
export function checkRxHeader(h: VnetHeader, features: bigint): HeaderVerdict | 'clear-data-valid' {
  const guestCsum = (features & NET_F_GUEST_CSUM) !== 0n;
  if ((h.flags & HDR_F_NEEDS_CSUM) !== 0 && !guestCsum) return 'flags';
  const gso = h.gsoType & ~GSO_ECN;
  if (gso !== GSO_NONE) {
    if (gso === GSO_TCPV4 && (features & NET_F_GUEST_TSO4) === 0n) return 'gso';
    if (gso === GSO_TCPV6 && (features & NET_F_GUEST_TSO6) === 0n) return 'gso';
    if (gso !== GSO_TCPV4 && gso !== GSO_TCPV6) return 'gso';
    if ((h.gsoType & GSO_ECN) !== 0 && (features & NET_F_GUEST_ECN) === 0n) return 'gso';
  }
  if ((h.flags & HDR_F_DATA_VALID) !== 0 && !guestCsum) return 'clear-data-valid';
  return 'ok';
}

/**
 * The tap offloads (TUNSETOFFLOAD) for what the driver accepted on receive: the tap hands us
 * partial checksums and large segments only if the guest can take them. The kernel refuses
 * TSO without CSUM, so segmentation is only asked for together with checksum offload.
 */
export function tapOffloadsFor(features: bigint): number {
  if ((features & NET_F_GUEST_CSUM) === 0n) return 0;
  let flags = TUN_F_CSUM;
  if ((features & NET_F_GUEST_TSO4) !== 0n) flags |= TUN_F_TSO4;
  if ((features & NET_F_GUEST_TSO6) !== 0n) flags |= TUN_F_TSO6;
  if ((flags & (TUN_F_TSO4 | TUN_F_TSO6)) !== 0 && (features & NET_F_GUEST_ECN) !== 0n) flags |= TUN_F_TSO_ECN;
  return flags;
}

/** Largest frame (header included) the driver may send, and the tap may give us for it. */
export function maxTxFrame(features: bigint, mtu: number): number {
  const gso = (features & (NET_F_HOST_TSO4 | NET_F_HOST_TSO6)) !== 0n;
  return VNET_HDR_SIZE + (gso ? MAX_GSO_FRAME : mtu + ETH_OVERHEAD);
}

export function maxRxFrame(features: bigint, mtu: number): number {
  const gso = (features & (NET_F_GUEST_TSO4 | NET_F_GUEST_TSO6)) !== 0n;
  return VNET_HDR_SIZE + (gso ? MAX_GSO_FRAME : mtu + ETH_OVERHEAD);
}
