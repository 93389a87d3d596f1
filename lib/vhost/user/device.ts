// VhostUserDevice: a VirtioDevice whose queues a vhost-user backend drives (virtiofsd,
// vhost-device-vsock, any vhost-device-*). The transport still owns the registers and feature
// negotiation; at DRIVER_OK this device hands the backend the shared region (the DM fd, mappable
// from offset 0), each ring's addresses, the queue's ioeventfd as kick and the irqfd as call, and
// from then on data never crosses this process. A backend that goes away puts the device in
// DEVICE_NEEDS_RESET; the device reconnects in the background, and the driver's next reset and
// activation run on the new connection.

import * as fs from 'node:fs';

import type { DeviceActivation, ExternalQueueHost, VirtioDevice } from '../../virtio/device.js';
import { ACCESS_PLATFORM, VERSION_1 } from '../../virtio/features.js';
import { silentLogger, type Logger } from '../../virtio/logger.js';
import type { NativeAddon } from '../../native.js';
import { VhostUserError } from './errors.js';
import { VhostUserFrontend } from './frontend.js';
import { F_PROTOCOL_FEATURES, ProtocolFeature } from './protocol.js';

export const DEFAULT_RECONNECT_MS = 500;

/** Bits 24 (NOTIFY_ON_EMPTY), 26 (VHOST_F_LOG_ALL), 27 (ANY_LAYOUT): legacy or vhost-only. */
const VHOST_ONLY_FEATURES = (1n << 24n) | (1n << 26n) | (1n << 27n);

export interface VhostUserDeviceOptions {
  /** Short name for logs ("fs", "vsock", ...). */
  readonly name: string;
  readonly deviceId: number;
  readonly socketPath: string;
  readonly queueMaxSizes: readonly number[];
  /** Size of the device config space (read with GET_CONFIG when the backend serves it). */
  readonly configSize: number;
  /**
   * The config space when the backend does not serve it (no CONFIG protocol feature); without
   * it such a backend is refused.
   */
  readonly defaultConfig?: Uint8Array;
  readonly log?: Logger;
  readonly timeoutMs?: number;
  /** Delay between reconnection attempts after the backend went away. */
  readonly reconnectMs?: number;
  readonly addon?: NativeAddon;
  /** Opens a connected socket to the backend (default: connect to socketPath); for tests. */
  readonly dial?: () => number;
}

export interface VhostUserDeviceMetrics {
  connects: number;
  disconnects: number;
  activations: number;
  stops: number;
  failedActivations: number;
  /** Kicks that reached this process (no ioeventfd) and were passed on to the backend. */
  forwardedKicks: number;
  /**
   * Of those, kicks that came while the activation was still handing the rings over (before
   * the backend had the queue's ring): kept in the kick eventfd for the backend to find.
   */
  earlyKicks: number;
}

export class VhostUserDevice implements VirtioDevice {
  readonly deviceId: number;
  readonly name: string;
  readonly queueMaxSizes: readonly number[];
  readonly config: Uint8Array;
  readonly metrics: VhostUserDeviceMetrics = { connects: 0, disconnects: 0, activations: 0, stops: 0, failedActivations: 0, forwardedKicks: 0, earlyKicks: 0 };
  /** Fixed by the first connection: the transport offers it once, at construction. */
  features = 0n;

  private readonly log: Logger;
  private frontend: VhostUserFrontend | undefined;
  private host: ExternalQueueHost | undefined;
  private activation: DeviceActivation | undefined;
  private started: number[] = [];
  private work: Promise<unknown> = Promise.resolve();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly kickBuf = Buffer.alloc(8);

  private constructor(private readonly options: VhostUserDeviceOptions) {
    this.deviceId = options.deviceId;
    this.name = options.name;
    this.queueMaxSizes = options.queueMaxSizes;
    this.config = new Uint8Array(options.configSize);
    if (options.defaultConfig !== undefined) this.config.set(options.defaultConfig.subarray(0, options.configSize));
    this.log = (options.log ?? silentLogger).child({ vhostUser: options.socketPath });
    this.kickBuf.writeBigUInt64LE(1n, 0);
  }

  /** Connects and negotiates; a missing backend or one lacking what we need is a clear error. */
  static async open(options: VhostUserDeviceOptions): Promise<VhostUserDevice> {
    const device = new VhostUserDevice(options);
    const fe = await device.connect();
    // Bit 30 is vhost-user's, VERSION_1/ACCESS_PLATFORM the transport's own to add, and the
    // vhost-only bits (NOTIFY_ON_EMPTY, LOG_ALL, ANY_LAYOUT) mean nothing to a modern driver.
    device.features = fe.backendFeatures & ~(F_PROTOCOL_FEATURES | VERSION_1 | ACCESS_PLATFORM | VHOST_ONLY_FEATURES);
    if ((fe.backendFeatures & VERSION_1) === 0n) {
      fe.close();
      throw new VhostUserError('FEATURES_MISSING', `the vhost-user backend at ${options.socketPath} does not offer VERSION_1; virtio-mmio on Bao is modern only`);
    }
    device.log.info({ features: `0x${fe.backendFeatures.toString(16)}`, protocolFeatures: `0x${fe.protocolFeatures.toString(16)}`, queues: fe.queueNum }, 'vhost-user backend connected');
    return device;
  }

  get connected(): boolean {
    return this.frontend?.connected ?? false;
  }

  bindExternalQueues(host: ExternalQueueHost): void {
    this.host = host;
  }

  activate(activation: DeviceActivation): Promise<void> {
    this.activation = activation;
    // The DRIVER_OK write completes when this returns, long before the backend has the rings
    // (a conversation of many messages): the driver may queue and kick at once (virtiofs's
    // FUSE_INIT at mount). Every kick eventfd is therefore an ioeventfd from here on, so such a
    // kick waits in its counter for the backend. With EVENT_IDX a lost kick is never repeated:
    // the driver waits for avail_event to move, which only the backend's processing does.
    for (const [index, q] of activation.queues.entries()) {
      if (q !== undefined) this.host?.kickFd(index);
    }
    return this.serialize(async () => {
      if (this.activation !== activation) return; // reset before we got to it
      try {
        await this.start(activation);
        this.metrics.activations += 1;
      } catch (err) {
        this.metrics.failedActivations += 1;
        // A half-configured backend must not keep running rings the driver will re-initialise.
        this.frontend?.close();
        this.frontend = undefined;
        this.started = [];
        this.scheduleReconnect();
        throw err;
      }
    });
  }

  /**
   * A kick that reached us (its ioeventfd could not be registered): pass it on, also while the
   * activation is still starting the rings. The eventfd keeps it until the backend waits on it;
   * dropping it would stall an EVENT_IDX queue for good (see activate).
   */
  queueNotify(queueIndex: number): void {
    const host = this.host;
    if (host === undefined || this.activation?.queues[queueIndex] === undefined) return;
    this.metrics.forwardedKicks += 1;
    if (!this.started.includes(queueIndex)) this.metrics.earlyKicks += 1;
    fs.writeSync(host.kickFd(queueIndex), this.kickBuf, 0, 8);
  }

  writeConfig(offset: number, data: Uint8Array): boolean {
    const fe = this.frontend;
    if (fe === undefined || !fe.connected || !fe.has(ProtocolFeature.CONFIG)) return false;
    this.config.set(data, offset);
    fe.setConfig(offset, data).catch((err: unknown) => this.log.warn({ err: String(err), offset }, 'SET_CONFIG failed'));
    return true;
  }

  reset(): Promise<void> {
    this.activation = undefined;
    return this.serialize(() => this.stop());
  }

  /** Stops the rings, ends the connection and any reconnection. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    await this.reset();
    this.frontend?.close();
    this.frontend = undefined;
  }

  private async connect(): Promise<VhostUserFrontend> {
    const o = this.options;
    const frontendOptions = {
      ...(o.addon === undefined ? {} : { addon: o.addon }),
      ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      onDisconnect: (reason: VhostUserError) => this.onDisconnect(fe, reason),
    };
    const fe: VhostUserFrontend =
      o.dial === undefined
        ? VhostUserFrontend.connect(o.socketPath, frontendOptions)
        : VhostUserFrontend.fromFd(o.dial(), { ...frontendOptions, peer: o.socketPath });
    try {
      const needConfig = o.configSize > 0 && o.defaultConfig === undefined;
      await fe.handshake(needConfig ? [ProtocolFeature.CONFIG] : []);
      if (this.features !== 0n && (fe.backendFeatures & this.features) !== this.features) {
        throw new VhostUserError('FEATURES_MISSING', `the restarted vhost-user backend at ${o.socketPath} offers 0x${fe.backendFeatures.toString(16)}, less than the 0x${this.features.toString(16)} the driver was offered; restart the daemon to renegotiate`);
      }
      if (o.configSize > 0 && fe.has(ProtocolFeature.CONFIG)) {
        this.config.set(await fe.getConfig(o.configSize));
      }
    } catch (err) {
      fe.close();
      throw err;
    }
    this.frontend = fe;
    this.metrics.connects += 1;
    return fe;
  }

  private async start(activation: DeviceActivation): Promise<void> {
    const host = this.host;
    if (host === undefined) throw new Error('vhost-user device activated without an external queue host');
    let fe = this.frontend;
    if (fe === undefined || !fe.connected) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      fe = await this.connect(); // one attempt: a driver must not wait on a backend that is not there
    }
    // ACCESS_PLATFORM stays between the driver and us: addresses are GPAs the memory table maps.
    const protocol = fe.backendFeatures & F_PROTOCOL_FEATURES;
    await fe.setFeatures((activation.features & ~ACCESS_PLATFORM) | protocol);
    const region = host.region;
    // userspace_addr = the GPA itself: ring addresses are then GPAs, the one space the driver speaks.
    await fe.setMemTable({ guestPhysAddr: region.guestAddress, memorySize: region.size, userspaceAddr: region.guestAddress, mmapOffset: 0n }, region.fd);
    for (const [index, q] of activation.queues.entries()) {
      if (q === undefined) continue;
      await fe.startVring({
        index,
        size: q.size,
        base: 0, // a fresh activation: the driver zeroed both rings
        desc: BigInt(q.descTable),
        avail: BigInt(q.availRing),
        used: BigInt(q.usedRing),
        kickFd: host.kickFd(index),
        callFd: host.callFd,
      });
      this.started.push(index);
      if (protocol !== 0n) await fe.enableVring(index, true);
    }
    // One kick per ring now that each is started and enabled: a backend that read a kick while
    // its ring was still disabled drops it (rust-vmm's vhost-user-backend reads the eventfd and
    // skips a disabled ring). Buffers the driver made available before are found either way;
    // a kick on an empty ring costs the backend one look.
    for (const index of this.started) fs.writeSync(host.kickFd(index), this.kickBuf, 0, 8);
    activation.log.info({ queues: this.started }, 'vhost-user backend drives the queues');
  }

  private async stop(): Promise<void> {
    const started = this.started;
    this.started = [];
    const fe = this.frontend;
    if (started.length === 0 || fe === undefined || !fe.connected) return;
    try {
      for (const index of started) {
        if (fe.backendFeatures & F_PROTOCOL_FEATURES) await fe.enableVring(index, false);
        await fe.stopVring(index);
      }
      this.metrics.stops += 1;
    } catch (err) {
      // The rings may still be live in the backend: drop the connection, it stops them for sure.
      this.log.error({ err: String(err) }, 'vhost-user backend did not stop its rings; disconnecting it');
      fe.close();
      this.frontend = undefined;
      this.scheduleReconnect();
    }
  }

  private onDisconnect(fe: VhostUserFrontend, reason: VhostUserError): void {
    if (this.frontend !== fe) return; // a connection never adopted, or already replaced
    this.frontend = undefined;
    this.started = [];
    if (this.closed) return;
    this.metrics.disconnects += 1;
    this.log.error({ code: reason.code }, `vhost-user backend lost: ${reason.message}`);
    this.activation?.fail('vhost-user backend disconnected', { socket: this.options.socketPath, reason: reason.message });
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer !== undefined) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.serialize(async () => {
        if (this.closed || this.frontend?.connected) return;
        try {
          await this.connect();
          this.log.info({}, 'vhost-user backend reconnected; the driver resets the device to use it');
        } catch (err) {
          this.log.debug({ err: String(err) }, 'vhost-user backend not back yet');
          this.scheduleReconnect();
        }
      });
    }, this.options.reconnectMs ?? DEFAULT_RECONNECT_MS);
    this.reconnectTimer.unref();
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const next = this.work.then(work, work);
    this.work = next.catch(() => {});
    return next;
  }
}
