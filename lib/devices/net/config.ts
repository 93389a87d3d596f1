// virtio-net feature bits, queue layout and configuration space (virtio 1.2 §5.1.3, §5.1.4),
// and the MAC a device gets when its config entry names none.

import { createHash } from 'node:crypto';

export const NET_DEVICE_ID = 1;

// §5.1.3 feature bits.
export const NET_F_CSUM = 1n << 0n;
export const NET_F_GUEST_CSUM = 1n << 1n;
export const NET_F_MTU = 1n << 3n;
export const NET_F_MAC = 1n << 5n;
export const NET_F_GUEST_TSO4 = 1n << 7n;
export const NET_F_GUEST_TSO6 = 1n << 8n;
export const NET_F_GUEST_ECN = 1n << 9n;
export const NET_F_GUEST_UFO = 1n << 10n;
export const NET_F_HOST_TSO4 = 1n << 11n;
export const NET_F_HOST_TSO6 = 1n << 12n;
export const NET_F_HOST_ECN = 1n << 13n;
export const NET_F_HOST_UFO = 1n << 14n;
export const NET_F_MRG_RXBUF = 1n << 15n;
export const NET_F_STATUS = 1n << 16n;
export const NET_F_CTRL_VQ = 1n << 17n;
export const NET_F_CTRL_RX = 1n << 18n;
export const NET_F_CTRL_VLAN = 1n << 19n;
export const NET_F_MQ = 1n << 22n;
export const NET_F_CTRL_MAC_ADDR = 1n << 23n;

/** What this device offers besides the ring features (UFO is gone from Linux's tap path). */
export const NET_OFFERED_FEATURES =
  NET_F_CSUM |
  NET_F_GUEST_CSUM |
  NET_F_MTU |
  NET_F_MAC |
  NET_F_GUEST_TSO4 |
  NET_F_GUEST_TSO6 |
  NET_F_GUEST_ECN |
  NET_F_HOST_TSO4 |
  NET_F_HOST_TSO6 |
  NET_F_HOST_ECN |
  NET_F_MRG_RXBUF |
  NET_F_STATUS |
  NET_F_CTRL_VQ |
  NET_F_CTRL_RX |
  NET_F_MQ |
  NET_F_CTRL_MAC_ADDR;

/** §5.1.4 status field. */
export const NET_S_LINK_UP = 1;

// Config space layout (§5.1.4): mac[6], status u16, max_virtqueue_pairs u16, mtu u16.
export const CONFIG_MAC = 0;
export const CONFIG_STATUS = 6;
export const CONFIG_MAX_PAIRS = 8;
export const CONFIG_MTU = 10;
export const CONFIG_SIZE = 12;

/** §5.1.4: max_virtqueue_pairs is 1..0x8000. */
export const MAX_QUEUE_PAIRS = 0x8000;
/** 68 is the IPv4 minimum; 65535 is what a u16 mtu can say. */
export const MIN_MTU = 68;
export const MAX_MTU = 65535;
export const DEFAULT_MTU = 1500;

/** Queue index of the receive queue of pair `pair`, and of its transmit queue (§5.1.2). */
export const rxQueueIndex = (pair: number): number => 2 * pair;
export const txQueueIndex = (pair: number): number => 2 * pair + 1;
/** Without MQ the control queue is queue 2; with MQ it follows the last pair. */
export function ctrlQueueIndex(maxPairs: number, mq: boolean): number {
  return mq ? 2 * maxPairs : 2;
}

export type Mac = readonly [number, number, number, number, number, number];

/** "52:54:00:aa:bb:01" -> bytes; undefined when it is not six hex pairs. */
export function parseMac(text: string): Mac | undefined {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(text);
  if (m === null) return undefined;
  return m.slice(1, 7).map((h) => parseInt(h, 16)) as unknown as Mac;
}

export function formatMac(mac: ArrayLike<number>): string {
  return Array.from({ length: 6 }, (_, i) => (mac[i] ?? 0).toString(16).padStart(2, '0')).join(':');
}

/**
 * A MAC for a device whose entry names none: the same on every start for the same `seed` (the
 * daemon passes the entry's id and window), so the guest's interface keeps its address and its
 * DHCP lease. Locally administered, unicast.
 */
export function deriveMac(seed: string): Mac {
  const h = createHash('sha256').update(`node-bao virtio-net ${seed}`).digest();
  return [((h[0] as number) & 0xfc) | 0x02, h[1], h[2], h[3], h[4], h[5]] as unknown as Mac;
}

export interface NetConfigSpace {
  readonly bytes: Uint8Array;
  setMac(mac: ArrayLike<number>): void;
  mac(): Mac;
  setLinkUp(up: boolean): void;
  linkUp(): boolean;
}

export function buildConfigSpace(mac: Mac, maxPairs: number, mtu: number): NetConfigSpace {
  const bytes = new Uint8Array(CONFIG_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint16(CONFIG_STATUS, NET_S_LINK_UP, true);
  view.setUint16(CONFIG_MAX_PAIRS, maxPairs, true);
  view.setUint16(CONFIG_MTU, mtu, true);
  const space: NetConfigSpace = {
    bytes,
    setMac: (m) => {
      for (let i = 0; i < 6; i += 1) bytes[CONFIG_MAC + i] = (m[i] ?? 0) & 0xff;
    },
    mac: () => Array.from(bytes.subarray(CONFIG_MAC, CONFIG_MAC + 6)) as unknown as Mac,
    setLinkUp: (up) => view.setUint16(CONFIG_STATUS, up ? NET_S_LINK_UP : 0, true),
    linkUp: () => (view.getUint16(CONFIG_STATUS, true) & NET_S_LINK_UP) !== 0,
  };
  space.setMac(mac);
  return space;
}
