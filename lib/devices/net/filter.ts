// The receive filter a virtio-net driver programs through the control queue (virtio 1.2
// §5.1.6.5.1-2: RX mode and the MAC table), enforced on each frame read from the tap, as a NIC
// does in hardware. A tap hands over whatever the host stack sends it (a bridge floods unknown
// unicast and multicast to every port); the guest would drop what is not for it anyway, but
// only after its driver and stack have spent time on it.
//
// Until the driver asks for filtering (a reset, or a driver without VIRTIO_NET_F_CTRL_RX) every
// frame is accepted, as QEMU's device does: promiscuous is the state after reset.
// Accepted: broadcast; everything when promiscuous; our MAC (config space, MAC_ADDR_SET) and the
// unicast table; multicast when all-multicast or listed in the multicast table.

import type { CtrlState } from './ctrl.js';
import { VNET_HDR_SIZE } from './header.js';

const ETH_DST = VNET_HDR_SIZE;

export class RxFilter {
  private readonly dst = new Uint8Array(6);
  private tables: { readonly uc: readonly string[]; readonly mc: readonly string[]; readonly set: Set<string> } | undefined;

  constructor(
    private readonly state: CtrlState,
    /** The device's current MAC (it changes with MAC_ADDR_SET). */
    private readonly mac: () => readonly number[],
  ) {}

  /** Whether the frame in `buffers` (vnet header first, `length` bytes in all) may reach the guest. */
  accepts(buffers: readonly Uint8Array[], length: number): boolean {
    const s = this.state;
    if (s.promisc || length < ETH_DST + 6) return true;
    const d = this.dst;
    readAcross(buffers, ETH_DST, d);
    const multicast = ((d[0] as number) & 1) !== 0;
    if (multicast) {
      if (s.allmulti) return true;
      if (d.every((b) => b === 0xff)) return true; // broadcast
      return this.listed(d);
    }
    const mac = this.mac();
    let ours = true;
    for (let i = 0; i < 6; i += 1) if (d[i] !== mac[i]) ours = false;
    return ours || this.listed(d);
  }

  private listed(d: Uint8Array): boolean {
    const s = this.state;
    if (s.unicastFilter.length === 0 && s.multicastFilter.length === 0) return false;
    // The tables are replaced whole by each MAC_TABLE_SET: rebuild the set when they change.
    if (this.tables === undefined || this.tables.uc !== s.unicastFilter || this.tables.mc !== s.multicastFilter) {
      this.tables = { uc: s.unicastFilter, mc: s.multicastFilter, set: new Set([...s.unicastFilter, ...s.multicastFilter]) };
    }
    return this.tables.set.has(Array.from(d, (b) => b.toString(16).padStart(2, '0')).join(':'));
  }
}

function readAcross(buffers: readonly Uint8Array[], offset: number, out: Uint8Array): void {
  let skip = offset;
  let done = 0;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const n = Math.min(b.length - skip, out.length - done);
    out.set(b.subarray(skip, skip + n), done);
    done += n;
    skip = 0;
    if (done === out.length) return;
  }
}
