// The vnet header rules: what a transmit header may ask for under each feature set, what a
// received header may carry to the driver, and which tap offloads follow from the features.

import { describe, expect, it } from 'vitest';

import {
  NET_F_CSUM,
  NET_F_GUEST_CSUM,
  NET_F_GUEST_ECN,
  NET_F_GUEST_TSO4,
  NET_F_GUEST_TSO6,
  NET_F_HOST_ECN,
  NET_F_HOST_TSO4,
  NET_F_HOST_TSO6,
} from '../../../../lib/devices/net/config.js';
import {
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  checkRxHeader,
  checkTxHeader,
  decodeHeader,
  gatherHeader,
  gatherHeaderFromSpans,
  maxRxFrame,
  maxTxFrame,
  tapOffloadsFor,
  writeU16Across,
} from '../../../../lib/devices/net/header.js';

const h = (flags: number, gsoType: number) => ({ flags, gsoType, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 });
const ALL_HOST = NET_F_CSUM | NET_F_HOST_TSO4 | NET_F_HOST_TSO6 | NET_F_HOST_ECN;
const ALL_GUEST = NET_F_GUEST_CSUM | NET_F_GUEST_TSO4 | NET_F_GUEST_TSO6 | NET_F_GUEST_ECN;

describe('transmit header', () => {
  it.each([
    ['plain frame, nothing negotiated', h(0, 0), 0n, 'ok'],
    ['NEEDS_CSUM with CSUM', h(1, 0), NET_F_CSUM, 'ok'],
    ['NEEDS_CSUM without CSUM', h(1, 0), 0n, 'flags'],
    ['DATA_VALID from a driver', h(2, 0), ALL_HOST, 'flags'],
    ['TSO4 with HOST_TSO4', h(1, 1), ALL_HOST, 'ok'],
    ['TSO4 without HOST_TSO4', h(1, 1), NET_F_CSUM | NET_F_HOST_TSO6, 'gso'],
    ['TSO6 with HOST_TSO6', h(1, 4), ALL_HOST, 'ok'],
    ['TSO4+ECN with HOST_ECN', h(1, 0x81), ALL_HOST, 'ok'],
    ['TSO4+ECN without HOST_ECN', h(1, 0x81), NET_F_CSUM | NET_F_HOST_TSO4, 'gso'],
    ['UFO (never offered)', h(1, 3), ALL_HOST, 'gso'],
    ['ECN alone', h(0, 0x80), ALL_HOST, 'gso'],
    ['unknown GSO type', h(1, 5), ALL_HOST, 'gso'],
  ] as const)('%s -> %s', (_name, header, features, verdict) => {
    expect(checkTxHeader(header, features)).toBe(verdict);
  });
});

describe('received header', () => {
  it.each([
    ['plain', h(0, 0), 0n, 'ok'],
    ['NEEDS_CSUM to a driver with GUEST_CSUM', h(1, 0), NET_F_GUEST_CSUM, 'ok'],
    ['NEEDS_CSUM to a driver without it', h(1, 0), 0n, 'flags'],
    ['DATA_VALID to a driver without GUEST_CSUM', h(2, 0), 0n, 'clear-data-valid'],
    ['TSO4 to a driver with GUEST_TSO4', h(1, 1), ALL_GUEST, 'ok'],
    ['TSO6 to a driver with only GUEST_TSO4', h(1, 4), NET_F_GUEST_CSUM | NET_F_GUEST_TSO4, 'gso'],
    ['TSO4+ECN without GUEST_ECN', h(1, 0x81), NET_F_GUEST_CSUM | NET_F_GUEST_TSO4, 'gso'],
    ['UDP segmentation', h(1, 3), ALL_GUEST, 'gso'],
  ] as const)('%s -> %s', (_name, header, features, verdict) => {
    expect(checkRxHeader(header, features)).toBe(verdict);
  });
});

describe('tap offloads', () => {
  it('follow the receive features, TSO only together with checksum offload', () => {
    expect(tapOffloadsFor(0n)).toBe(0);
    expect(tapOffloadsFor(NET_F_GUEST_TSO4)).toBe(0);
    expect(tapOffloadsFor(NET_F_GUEST_CSUM)).toBe(TUN_F_CSUM);
    expect(tapOffloadsFor(ALL_GUEST)).toBe(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN);
    expect(tapOffloadsFor(NET_F_GUEST_CSUM | NET_F_GUEST_ECN)).toBe(TUN_F_CSUM);
    expect(tapOffloadsFor(ALL_HOST)).toBe(0); // host offloads concern the other direction
  });

  it('size frames by MTU without segmentation and by 64 KiB with it', () => {
    expect(maxTxFrame(0n, 1500)).toBe(12 + 1518);
    expect(maxTxFrame(NET_F_HOST_TSO4, 1500)).toBe(12 + 65553);
    expect(maxRxFrame(NET_F_GUEST_TSO6, 9000)).toBe(12 + 65553);
    expect(maxRxFrame(0n, 9000)).toBe(12 + 9018);
  });
});

describe('header across descriptors', () => {
  it('gathers a header split over buffers and writes num_buffers across a boundary', () => {
    const a = Uint8Array.from([1, 4, 0x36, 0, 0xa8, 0x05, 34, 0, 16, 0, 0]);
    const b = new Uint8Array(4);
    const scratch = new Uint8Array(12);
    expect(gatherHeader([a, b], scratch)).toBe(true);
    expect(decodeHeader(scratch)).toEqual({ flags: 1, gsoType: 4, hdrLen: 0x36, gsoSize: 1448, csumStart: 34, csumOffset: 16 });
    expect(gatherHeader([a], scratch)).toBe(false);
    expect(writeU16Across([a, b], 10, 0x0302)).toBe(true);
    expect(a[10]).toBe(2);
    expect(b[0]).toBe(3);
  });

  it('gathers a header split over spans of a region, as a transmit chain names its buffers', () => {
    const region = new Uint8Array(64);
    region.set([1, 4, 0x36, 0, 0xa8], 40); // the header's first 5 bytes at 40, the rest at 8
    region.set([0x05, 34, 0, 16, 0, 0, 0], 8);
    const scratch = new Uint8Array(12);
    expect(gatherHeaderFromSpans(region, [40, 5, 8, 20], scratch)).toBe(true);
    expect(decodeHeader(scratch)).toEqual({ flags: 1, gsoType: 4, hdrLen: 0x36, gsoSize: 1448, csumStart: 34, csumOffset: 16 });
    expect(gatherHeaderFromSpans(region, [40, 5, 8, 6], scratch)).toBe(false);
  });
});
