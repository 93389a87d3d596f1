// KernelNetDevice: virtio-net served by the kernel's vhost-net (bao-virtio-dm's `type: net,
// data_plane: vhost`). We serve the registers and the config space (MAC, link status, MTU); the
// kernel moves frames between the shared region and the tap: its memory table maps the region's
// GPAs to our mapping, its kick fds are the queues' ioeventfds, its call fd the irqfd, and its
// backend the tap fd the net device's own openTap opened. One queue pair and no control queue
// (vhost-net drives rx and tx only). Features are negotiated three ways: we offer the offloads
// the tap handles plus the ring features the kernel takes, the driver picks, the kernel gets the
// driver's choice cut to the bits it knows, without ACCESS_PLATFORM (between the driver and us).

import type { DeviceActivation, ExternalQueueHost, VirtioDevice } from '../../virtio/device.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC, VERSION_1 } from '../../virtio/features.js';
import { silentLogger, type Logger } from '../../virtio/logger.js';
import {
  buildConfigSpace,
  formatMac,
  NET_F_CSUM,
  NET_F_GUEST_CSUM,
  NET_F_GUEST_ECN,
  NET_F_GUEST_TSO4,
  NET_F_GUEST_TSO6,
  NET_F_HOST_ECN,
  NET_F_HOST_TSO4,
  NET_F_HOST_TSO6,
  NET_F_MAC,
  NET_F_MRG_RXBUF,
  NET_F_MTU,
  NET_F_STATUS,
  tapOffloadsFor,
  type Mac,
  type NetConfigSpace,
  type TapInterface,
} from '../../devices/net/index.js';
import { KernelVhostDevice, type KernelVhostMetrics } from './kernel-device.js';
import { VhostFd } from './vhost-fd.js';
import { drainVhostRings, setUpVhostRings, type VhostRingOps } from './vring-setup.js';

export const VHOST_NET_PATH = '/dev/vhost-net';
const RX = 0;
const TX = 1;

/** Offloads between the driver and the tap: the tap takes them, vhost-net only carries the header. */
const TAP_FEATURES =
  NET_F_CSUM | NET_F_GUEST_CSUM | NET_F_GUEST_TSO4 | NET_F_GUEST_TSO6 | NET_F_GUEST_ECN | NET_F_HOST_TSO4 | NET_F_HOST_TSO6 | NET_F_HOST_ECN;
/** Config-space features: ours to serve. */
const CONFIG_FEATURES = NET_F_MAC | NET_F_STATUS | NET_F_MTU;
/** What the kernel must also take to offer them. */
const KERNEL_FEATURES = NET_F_MRG_RXBUF | RING_EVENT_IDX | RING_INDIRECT_DESC;

/** The ioctls this device makes (VhostFd; a recording double in tests). */
export type VhostNetOps = VhostRingOps & Pick<VhostFd, 'getFeatures' | 'setNetBackend' | 'close'>;

export interface KernelNetOptions {
  /** The tap, opened by openTap with one queue and the 12-byte vnet header. */
  readonly tap: TapInterface;
  readonly mac: Mac;
  readonly mtu: number;
  readonly queueSize: number;
  readonly log?: Logger;
  readonly path?: string;
  /** An already opened vhost device (default: open `path`). */
  readonly vhost?: VhostNetOps;
}

export type KernelNetMetrics = KernelVhostMetrics;

export class KernelNetDevice extends KernelVhostDevice implements VirtioDevice {
  readonly deviceId = 1;
  readonly name = 'net';
  readonly queueMaxSizes: readonly number[];
  readonly config: Uint8Array;
  readonly features: bigint;

  private readonly log: Logger;
  private readonly space: NetConfigSpace;
  private readonly tapFd: number;
  private offloadWanted = 0;
  private offloadApplied = 0;
  private offloadBusy = false;
  private closed = false;

  private constructor(
    private readonly vhost: VhostNetOps,
    private readonly tap: TapInterface,
    private readonly kernelFeatures: bigint,
    options: KernelNetOptions,
    log: Logger,
  ) {
    super('vhost-net', [RX, TX]);
    const fd = tap.fds?.[0];
    if (fd === undefined || tap.fds?.length !== 1) throw new Error('vhost-net needs a tap opened with exactly one queue');
    this.tapFd = fd;
    this.features = TAP_FEATURES | CONFIG_FEATURES | (KERNEL_FEATURES & kernelFeatures);
    this.space = buildConfigSpace(options.mac, 1, options.mtu);
    this.config = this.space.bytes;
    this.queueMaxSizes = [options.queueSize, options.queueSize];
    this.log = log;
  }

  /** Opens /dev/vhost-net (the tap is already open: see lib/devices/net/tap.ts on rtnl). */
  static open(options: KernelNetOptions): KernelNetDevice {
    const vhost = options.vhost ?? VhostFd.open(options.path ?? VHOST_NET_PATH);
    try {
      const kernel = vhost.getFeatures();
      if ((kernel & VERSION_1) === 0n) throw new Error(`${vhost.path} does not offer VERSION_1`);
      const log = (options.log ?? silentLogger).child({ vhost: vhost.path });
      const device = new KernelNetDevice(vhost, options.tap, kernel, options, log);
      log.info({ tap: options.tap.name, mac: formatMac(options.mac), kernelFeatures: `0x${kernel.toString(16)}` }, 'vhost-net opened');
      return device;
    } catch (err) {
      vhost.close();
      throw err;
    }
  }

  get mac(): string {
    return formatMac(this.space.mac());
  }

  writeConfig(): boolean {
    return false; // every field is read-only for a modern driver
  }

  reset(): void {
    this.stop();
    this.applyOffloads(0);
  }

  /** Stops the device, releases /dev/vhost-net, then closes the tap. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.stop();
    this.closed = true;
    this.vhost.close();
    this.tap.close();
  }

  protected start(activation: DeviceActivation, host: ExternalQueueHost): void {
    const v = this.vhost;
    // The kernel refuses bits it does not know (EOPNOTSUPP): the offloads are the tap's.
    setUpVhostRings(v, activation.features & this.kernelFeatures, activation, host, [RX, TX], 'net');
    this.running = true;
    for (const index of [RX, TX]) v.setNetBackend(index, this.tapFd);
    // Large segments towards the guest only once it said it takes them; off the event loop (rtnl).
    this.applyOffloads(tapOffloadsFor(activation.features));
    activation.log.info({ tap: this.tap.name, mac: this.mac }, 'vhost-net running');
  }

  protected stop(): void {
    if (!this.running) return;
    this.running = false;
    try {
      // Detaching the backend stops the ring and waits for the worker: nothing runs against it after.
      for (const index of [RX, TX]) this.vhost.setNetBackend(index, -1);
      drainVhostRings(this.vhost, [RX, TX]);
      this.metrics.stops += 1;
    } catch (err) {
      this.log.error({ err: String(err) }, 'stopping vhost-net failed');
    }
  }

  private applyOffloads(flags: number): void {
    this.offloadWanted = flags;
    if (this.offloadBusy || this.offloadApplied === flags || this.closed) return;
    this.offloadBusy = true;
    this.tap.setOffload(flags, (err) => {
      this.offloadBusy = false;
      if (err !== null) this.log.warn({ tap: this.tap.name, flags, err: err.message }, 'cannot set the tap offloads');
      else this.offloadApplied = flags;
      if (err === null && this.offloadWanted !== this.offloadApplied) this.applyOffloads(this.offloadWanted);
    });
  }
}
