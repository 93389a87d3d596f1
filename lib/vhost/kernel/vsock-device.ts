// KernelVsockDevice: virtio-vsock served by the kernel's vhost-vsock (bao-virtio-dm's
// `type: vsock, data_plane: vhost`). We serve the registers and the config space (the guest
// CID); the kernel drives rx and tx straight from the shared region: its memory table maps the
// region's GPAs to our mapping, its kick fds are the queues' ioeventfds and its call fd the
// irqfd. The event queue (2) stays ours and idle, as bao-virtio-dm leaves it (bao-abi.md §5.2).
// Features are negotiated three ways: we offer what both we and the kernel handle, the driver
// picks, the kernel gets the driver's choice without ACCESS_PLATFORM (that one is between the
// driver and us: the addresses the kernel sees are GPAs our table maps).

import type { DeviceActivation, ExternalQueueHost, VirtioDevice } from '../../virtio/device.js';
import { VERSION_1 } from '../../virtio/features.js';
import { silentLogger, type Logger } from '../../virtio/logger.js';
import { KernelVhostDevice, type KernelVhostMetrics } from './kernel-device.js';
import { VhostFd } from './vhost-fd.js';
import { drainVhostRings, setUpVhostRings, type VhostRingOps } from './vring-setup.js';

export const VHOST_VSOCK_PATH = '/dev/vhost-vsock';
const RX = 0;
const TX = 1;
const QUEUE_SIZE = 1024;

/** bao-virtio-dm's offer for vhost devices ("VHOST_FEATURES") plus SEQPACKET, minus vhost-only bits. */
const RING_INDIRECT_DESC = 1n << 28n;
const RING_EVENT_IDX = 1n << 29n;
const VSOCK_F_SEQPACKET = 1n << 1n;
const OFFER = RING_INDIRECT_DESC | RING_EVENT_IDX | VSOCK_F_SEQPACKET;

/** The ioctls this device makes (VhostFd; a recording double in tests). */
export type VhostVsockOps = VhostRingOps & Pick<VhostFd, 'getFeatures' | 'setGuestCid' | 'setRunning' | 'close'>;

export interface KernelVsockOptions {
  readonly guestCid: bigint;
  readonly log?: Logger;
  readonly path?: string;
  /** An already opened vhost device (default: open `path`). */
  readonly vhost?: VhostVsockOps;
}

export type KernelVsockMetrics = KernelVhostMetrics;

export class KernelVsockDevice extends KernelVhostDevice implements VirtioDevice {
  readonly deviceId = 19;
  readonly name = 'vsock';
  readonly queueMaxSizes = [QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE];
  readonly config = new Uint8Array(8);
  readonly features: bigint;

  private readonly log: Logger;

  private constructor(
    private readonly vhost: VhostVsockOps,
    readonly guestCid: bigint,
    kernelFeatures: bigint,
    log: Logger,
  ) {
    super('vhost-vsock', [RX, TX]); // the event queue (2) stays ours
    this.features = OFFER & kernelFeatures;
    new DataView(this.config.buffer).setBigUint64(0, guestCid, true);
    this.log = log;
  }

  /**
   * Opens /dev/vhost-vsock and claims the CID now, before the frontend driver probes: in a
   * kernel that also runs a guest-side vsock transport with the same CID (the test machine),
   * vhost refuses a CID that transport already holds.
   */
  static open(options: KernelVsockOptions): KernelVsockDevice {
    const vhost = options.vhost ?? VhostFd.open(options.path ?? VHOST_VSOCK_PATH);
    try {
      const kernel = vhost.getFeatures();
      if ((kernel & VERSION_1) === 0n) throw new Error(`${vhost.path} does not offer VERSION_1`);
      vhost.setGuestCid(options.guestCid);
      const log = (options.log ?? silentLogger).child({ vhost: vhost.path });
      log.info({ guestCid: options.guestCid.toString(), kernelFeatures: `0x${kernel.toString(16)}` }, 'vhost-vsock opened');
      return new KernelVsockDevice(vhost, options.guestCid, kernel, log);
    } catch (err) {
      vhost.close();
      throw err;
    }
  }

  reset(): void {
    this.stop();
  }

  /** Stops the device and releases /dev/vhost-vsock (the kernel drops the CID with it). */
  close(): void {
    this.stop();
    this.vhost.close();
  }

  protected start(activation: DeviceActivation, host: ExternalQueueHost): void {
    const v = this.vhost;
    // The kernel takes VERSION_1 and the ring features the offer held.
    setUpVhostRings(v, activation.features, activation, host, [RX, TX], 'vsock');
    v.setRunning(true);
    this.running = true;
    activation.log.info({ guestCid: this.guestCid.toString() }, 'vhost-vsock running');
  }

  protected stop(): void {
    if (!this.running) return;
    this.running = false;
    try {
      this.vhost.setRunning(false);
      // GET_VRING_BASE waits for the worker to leave the ring: nothing runs against it afterwards.
      drainVhostRings(this.vhost, [RX, TX]);
      this.metrics.stops += 1;
    } catch (err) {
      this.log.error({ err: String(err) }, 'stopping vhost-vsock failed');
    }
  }
}
