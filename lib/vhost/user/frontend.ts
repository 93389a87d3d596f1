// VhostUserFrontend: our side of one vhost-user connection. It knows the protocol's conversation
// (handshake, memory table, vring setup and stop, config space), not virtio devices or Bao:
// device.ts maps a VirtioDevice's life onto it. One request at a time, each with a deadline, so a
// backend that stops answering fails the request (and the connection) instead of hanging.

import { isErrnoError, loadAddon, type NativeAddon } from '../../native.js';
import { VhostUserChannel, closeFds, type VhostUserMessage } from './channel.js';
import { VhostUserError } from './errors.js';
import {
  configPayload,
  F_PROTOCOL_FEATURES,
  FLAG_NEED_REPLY,
  FLAG_REPLY,
  formatProtocolFeatures,
  hasProtocolFeature,
  memTablePayload,
  ProtocolFeature,
  readConfig,
  readU64,
  readVringState,
  Req,
  requestName,
  SUPPORTED_PROTOCOL_FEATURES,
  u64Payload,
  VERSION,
  VERSION_MASK,
  vringAddrPayload,
  vringStatePayload,
  type MemoryRegion,
} from './protocol.js';

export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

export interface VhostUserFrontendOptions {
  /** Shown in messages (the socket path). */
  readonly peer: string;
  readonly timeoutMs?: number;
  /** The connection ended (peer gone, protocol error, timeout); called once. */
  readonly onDisconnect?: (reason: VhostUserError) => void;
  readonly addon?: NativeAddon;
}

/** One vring to start: addresses are in the frontend's address space (see SET_MEM_TABLE). */
export interface VringSetup {
  readonly index: number;
  readonly size: number;
  readonly base: number;
  readonly desc: bigint;
  readonly avail: bigint;
  readonly used: bigint;
  readonly kickFd: number;
  readonly callFd: number;
}

interface Pending {
  readonly request: number;
  readonly resolve: (message: VhostUserMessage) => void;
  readonly reject: (error: VhostUserError) => void;
  readonly timer: NodeJS.Timeout;
}

export class VhostUserFrontend {
  /** Backend features (GET_FEATURES), after the handshake. */
  backendFeatures = 0n;
  /** Protocol features both sides speak (0 when the backend lacks F_PROTOCOL_FEATURES). */
  protocolFeatures = 0n;
  /** Queues the backend serves (GET_QUEUE_NUM with MQ), else undefined. */
  queueNum: number | undefined;

  private readonly channel: VhostUserChannel;
  private readonly timeoutMs: number;
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private disconnected: VhostUserError | undefined;

  private constructor(
    fd: number,
    private readonly options: VhostUserFrontendOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.channel = new VhostUserChannel(fd, {
      ...(options.addon === undefined ? {} : { addon: options.addon }),
      onMessage: (m) => this.onMessage(m),
      onClose: (reason) => this.onClose(reason),
    });
  }

  /** Connects to a backend listening at `path` (a missing or dead socket is a clear error). */
  static connect(path: string, options: Omit<VhostUserFrontendOptions, 'peer'> = {}): VhostUserFrontend {
    const addon = options.addon ?? loadAddon();
    let fd: number;
    try {
      fd = addon.unixConnect(path);
    } catch (err) {
      throw connectError(path, err);
    }
    return new VhostUserFrontend(fd, { ...options, addon, peer: path });
  }

  /** Speaks over an already connected socket (owned from now on): tests, socket activation. */
  static fromFd(fd: number, options: VhostUserFrontendOptions): VhostUserFrontend {
    return new VhostUserFrontend(fd, options);
  }

  get connected(): boolean {
    return this.disconnected === undefined && !this.channel.closed;
  }

  get peer(): string {
    return this.options.peer;
  }

  has(bit: number): boolean {
    return hasProtocolFeature(this.protocolFeatures, bit);
  }

  /**
   * GET_FEATURES, protocol features (ours AND the backend's; `require` names the ones this
   * device cannot do without), GET_QUEUE_NUM, SET_OWNER.
   */
  async handshake(require: readonly number[] = []): Promise<void> {
    this.backendFeatures = await this.getU64(Req.GET_FEATURES);
    if ((this.backendFeatures & F_PROTOCOL_FEATURES) !== 0n) {
      const theirs = await this.getU64(Req.GET_PROTOCOL_FEATURES);
      this.protocolFeatures = theirs & SUPPORTED_PROTOCOL_FEATURES;
      // SET_PROTOCOL_FEATURES itself is never acknowledged: REPLY_ACK is not agreed yet.
      this.send(Req.SET_PROTOCOL_FEATURES, u64Payload(this.protocolFeatures));
    }
    for (const bit of require) {
      if (!this.has(bit)) {
        const name = Object.entries(ProtocolFeature).find(([, b]) => b === bit)?.[0] ?? `bit ${bit}`;
        throw this.fatal(
          new VhostUserError(
            'PROTOCOL_FEATURE_MISSING',
            `the vhost-user backend at ${this.peer} does not offer protocol feature ${name}, which this device needs (it offers ${formatProtocolFeatures(this.protocolFeatures)}); use a newer backend`,
            { required: name },
          ),
        );
      }
    }
    if (this.has(ProtocolFeature.MQ)) this.queueNum = Number(await this.getU64(Req.GET_QUEUE_NUM));
    await this.setting(Req.SET_OWNER);
  }

  /** GET_CONFIG (needs protocol feature CONFIG): `size` bytes of the device config space. */
  async getConfig(size: number): Promise<Uint8Array> {
    const reply = await this.call(Req.GET_CONFIG, configPayload(0, new Uint8Array(size)));
    const cfg = readConfig(reply.payload);
    if (cfg.size !== size) {
      throw this.fatal(new VhostUserError('PROTOCOL_ERROR', `GET_CONFIG answered ${cfg.size} bytes for ${size} asked`));
    }
    return cfg.data.slice();
  }

  async setConfig(offset: number, data: Uint8Array): Promise<void> {
    await this.setting(Req.SET_CONFIG, configPayload(offset, data));
  }

  async setFeatures(features: bigint): Promise<void> {
    await this.setting(Req.SET_FEATURES, u64Payload(features));
  }

  /** One region, backed by `fd` from offset 0 (the DM fd allows no other offset, bao-abi.md §3.5). */
  async setMemTable(region: MemoryRegion, fd: number): Promise<void> {
    await this.setting(Req.SET_MEM_TABLE, memTablePayload([region]), [fd]);
  }

  /** NUM, BASE, ADDR, CALL, KICK: after the kick the backend may process the ring. */
  async startVring(v: VringSetup): Promise<void> {
    await this.setting(Req.SET_VRING_NUM, vringStatePayload(v.index, v.size));
    await this.setting(Req.SET_VRING_BASE, vringStatePayload(v.index, v.base));
    await this.setting(Req.SET_VRING_ADDR, vringAddrPayload({ index: v.index, flags: 0, desc: v.desc, used: v.used, avail: v.avail, log: 0n }));
    await this.setting(Req.SET_VRING_CALL, u64Payload(BigInt(v.index)), [v.callFd]);
    await this.setting(Req.SET_VRING_KICK, u64Payload(BigInt(v.index)), [v.kickFd]);
  }

  /** With F_PROTOCOL_FEATURES rings start disabled until enabled (and can be paused). */
  async enableVring(index: number, enable: boolean): Promise<void> {
    await this.setting(Req.SET_VRING_ENABLE, vringStatePayload(index, enable ? 1 : 0));
  }

  /** GET_VRING_BASE stops the ring: the backend stops using it before it answers. */
  async stopVring(index: number): Promise<number> {
    const reply = await this.call(Req.GET_VRING_BASE, vringStatePayload(index, 0));
    return readVringState(reply.payload).num;
  }

  /** Ends the connection (the backend sees a hang-up). Idempotent. */
  close(): void {
    this.disconnected ??= new VhostUserError('NOT_CONNECTED', `the connection to ${this.peer} was closed`);
    this.channel.close();
    this.rejectPending(this.disconnected);
  }

  private async getU64(request: number): Promise<bigint> {
    const reply = await this.call(request);
    try {
      return readU64(reply.payload);
    } catch (err) {
      throw this.fatal(new VhostUserError('PROTOCOL_ERROR', `${requestName(request)}: ${String(err)}`));
    }
  }

  /** A request without a reply of its own; with REPLY_ACK it is confirmed (0 = done). */
  private async setting(request: number, payload?: Uint8Array, fds: readonly number[] = []): Promise<void> {
    if (!this.has(ProtocolFeature.REPLY_ACK)) {
      await this.serialize(async () => this.send(request, payload, fds));
      return;
    }
    const reply = await this.call(request, payload, fds, FLAG_NEED_REPLY);
    const status = reply.payload.length >= 8 ? readU64(reply.payload) : 1n;
    if (status !== 0n) {
      throw new VhostUserError('BACKEND_REFUSED', `the vhost-user backend at ${this.peer} refused ${requestName(request)} (status ${status})`, { request: requestName(request) });
    }
  }

  private send(request: number, payload?: Uint8Array, fds: readonly number[] = [], flags = 0): void {
    if (this.disconnected !== undefined) throw this.disconnected;
    this.channel.send(request, VERSION | flags, payload, fds);
  }

  /** Sends and waits for the reply to this request, one request at a time. */
  private call(request: number, payload?: Uint8Array, fds: readonly number[] = [], flags = 0): Promise<VhostUserMessage> {
    return this.serialize(
      () =>
        new Promise<VhostUserMessage>((resolve, reject) => {
          if (this.disconnected !== undefined) {
            reject(this.disconnected);
            return;
          }
          const timer = setTimeout(() => {
            this.fatal(new VhostUserError('BACKEND_TIMEOUT', `the vhost-user backend at ${this.peer} did not answer ${requestName(request)} within ${this.timeoutMs} ms`));
          }, this.timeoutMs);
          this.pending = { request, resolve, reject, timer };
          try {
            this.send(request, payload, fds, flags);
          } catch (err) {
            this.pending = undefined;
            clearTimeout(timer);
            reject(err instanceof VhostUserError ? err : new VhostUserError('BACKEND_DISCONNECTED', String(err)));
          }
        }),
    );
  }

  private serialize<T>(work: () => Promise<T> | T): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => {});
    return next;
  }

  private onMessage(m: VhostUserMessage): void {
    // This frontend negotiates no backend-initiated messages: any descriptor is unexpected.
    closeFds(m.fds);
    const p = this.pending;
    if ((m.flags & VERSION_MASK) !== VERSION || (m.flags & FLAG_REPLY) === 0 || p === undefined || p.request !== m.request) {
      this.fatal(new VhostUserError('PROTOCOL_ERROR', `unexpected message from the vhost-user backend at ${this.peer}: ${requestName(m.request)} flags 0x${m.flags.toString(16)}${p ? ` while waiting for ${requestName(p.request)}` : ''}`));
      return;
    }
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve(m);
  }

  private onClose(reason: VhostUserError): void {
    this.disconnect(reason);
  }

  /** Ends the connection for `reason` and returns it (to throw). */
  private fatal(reason: VhostUserError): VhostUserError {
    this.channel.close();
    this.disconnect(reason);
    return reason;
  }

  private disconnect(reason: VhostUserError): void {
    if (this.disconnected !== undefined) return;
    this.disconnected = reason;
    this.rejectPending(reason);
    this.options.onDisconnect?.(reason);
  }

  private rejectPending(reason: VhostUserError): void {
    const p = this.pending;
    this.pending = undefined;
    if (p === undefined) return;
    clearTimeout(p.timer);
    p.reject(reason);
  }
}

function connectError(path: string, err: unknown): VhostUserError {
  const code = isErrnoError(err) ? err.code : undefined;
  if (code === 'ENOENT') {
    return new VhostUserError('BACKEND_MISSING', `no vhost-user backend socket at ${path}: start the backend (for instance virtiofsd --socket-path=${path}) before the daemon, or fix socket_path`, { path });
  }
  if (code === 'ECONNREFUSED') {
    return new VhostUserError('BACKEND_NOT_LISTENING', `nothing listens on ${path} (a stale socket file?): restart the vhost-user backend`, { path });
  }
  return new VhostUserError('BACKEND_CONNECT_FAILED', `cannot connect to the vhost-user backend at ${path}: ${String(err)}`, { path, code });
}
