// VhostUserChannel: one vhost-user socket, message-framed. Reading is event-driven (a libuv poll
// watcher on the fd, then recvmsg until EAGAIN, so descriptors that ride with a message are
// received with it); writing is one synchronous sendmsg per message (messages are small and the
// peer drains them in order; a full socket is reported, not waited on). Both the frontend and the
// in-process test backend speak through it. One owner: close() is idempotent and final.

import * as fs from 'node:fs';

import { isErrnoError, loadAddon, type NativeAddon, type NativePoller } from '../../native.js';
import { VhostUserError } from './errors.js';
import { decodeHeader, encodeMessage, HEADER_SIZE, MAX_PAYLOAD, requestName } from './protocol.js';

export interface VhostUserMessage {
  readonly request: number;
  readonly flags: number;
  readonly payload: Uint8Array;
  /** Descriptors received with the message; the receiver owns (and must close) them. */
  readonly fds: readonly number[];
}

export interface VhostUserChannelOptions {
  readonly onMessage: (message: VhostUserMessage) => void;
  /** The peer hung up, sent garbage, or the socket failed; called once, after which the channel is closed. */
  readonly onClose: (reason: VhostUserError) => void;
  readonly addon?: NativeAddon;
}

export class VhostUserChannel {
  private fd_: number | undefined;
  private readonly addon: NativeAddon;
  private readonly poller: NativePoller;
  private readonly chunk = new Uint8Array(HEADER_SIZE + MAX_PAYLOAD);
  private pending = new Uint8Array(0);
  private pendingFds: number[] = [];
  private closedReason: VhostUserError | undefined;

  /** Takes ownership of `fd` (a connected, non-blocking AF_UNIX stream socket). */
  constructor(
    fd: number,
    private readonly options: VhostUserChannelOptions,
  ) {
    this.addon = options.addon ?? loadAddon();
    this.fd_ = fd;
    const c = this.addon.constants;
    this.poller = new this.addon.Poller(fd, (err, events) => {
      if (err !== null) {
        this.fail(new VhostUserError('BACKEND_DISCONNECTED', `vhost-user socket error: ${err.message}`));
        return;
      }
      if ((events & c.POLL_READABLE) !== 0 || (events & c.POLL_DISCONNECT) !== 0) this.drain();
    });
    this.poller.start(c.POLL_READABLE | c.POLL_DISCONNECT);
  }

  get closed(): boolean {
    return this.fd_ === undefined;
  }

  /** Sends one message with `fds` (SCM_RIGHTS; the caller keeps its own copies). */
  send(request: number, flags: number, payload?: Uint8Array, fds: readonly number[] = []): void {
    const fd = this.fd_;
    if (fd === undefined) throw this.closedReason ?? new VhostUserError('NOT_CONNECTED', 'the vhost-user channel is closed');
    const bytes = encodeMessage(request, flags, payload);
    let sent: number;
    try {
      sent = this.addon.sendFds(fd, bytes, fds);
    } catch (err) {
      const reason = new VhostUserError('BACKEND_DISCONNECTED', `cannot send ${requestName(request)} to the vhost-user backend: ${String(err)}`);
      if (isErrnoError(err) && err.code === 'EAGAIN') {
        // The backend stopped reading: treat it as gone rather than queue without bound.
        this.fail(new VhostUserError('BACKEND_TIMEOUT', `the vhost-user backend stopped reading its socket (${requestName(request)})`));
      } else this.fail(reason);
      throw this.closedReason ?? reason;
    }
    if (sent !== bytes.length) {
      // A stream socket may take part of a message; the rest would need a second sendmsg without
      // the fds. Messages here are under 4 KiB, far below any socket buffer: treat it as broken.
      this.fail(new VhostUserError('PROTOCOL_ERROR', `short write of ${requestName(request)} (${sent} of ${bytes.length} bytes)`));
      throw this.closedReason!;
    }
  }

  /** Idempotent. Closes descriptors received but not yet handed out. */
  close(): void {
    this.shutdown(undefined);
  }

  private drain(): void {
    for (;;) {
      const fd = this.fd_;
      if (fd === undefined) return;
      let got: { bytes: number; fds: number[]; truncated: boolean };
      try {
        got = this.addon.recvFds(fd, this.chunk);
      } catch (err) {
        if (isErrnoError(err) && err.code === 'EAGAIN') return;
        this.fail(new VhostUserError('BACKEND_DISCONNECTED', `vhost-user socket read failed: ${String(err)}`));
        return;
      }
      this.pendingFds.push(...got.fds);
      if (got.truncated) {
        this.fail(new VhostUserError('PROTOCOL_ERROR', 'the vhost-user peer sent more descriptors than a message may carry'));
        return;
      }
      if (got.bytes === 0) {
        this.fail(new VhostUserError('BACKEND_DISCONNECTED', 'the vhost-user peer closed the connection'));
        return;
      }
      const merged = new Uint8Array(this.pending.length + got.bytes);
      merged.set(this.pending, 0);
      merged.set(this.chunk.subarray(0, got.bytes), this.pending.length);
      this.pending = merged;
      if (!this.parse()) return;
    }
  }

  /** Hands out every complete message; false once the channel failed. */
  private parse(): boolean {
    while (this.pending.length >= HEADER_SIZE) {
      const header = decodeHeader(this.pending);
      if (header.size > MAX_PAYLOAD) {
        this.fail(new VhostUserError('PROTOCOL_ERROR', `vhost-user message ${requestName(header.request)} claims a ${header.size}-byte payload (at most ${MAX_PAYLOAD})`));
        return false;
      }
      const total = HEADER_SIZE + header.size;
      if (this.pending.length < total) return true;
      const payload = this.pending.slice(HEADER_SIZE, total);
      this.pending = this.pending.slice(total);
      // Descriptors arrive with the first byte of their message, which is the oldest one pending.
      const fds = this.pendingFds;
      this.pendingFds = [];
      try {
        this.options.onMessage({ request: header.request, flags: header.flags, payload, fds });
      } catch (err) {
        this.fail(new VhostUserError('PROTOCOL_ERROR', `handling ${requestName(header.request)} failed: ${String(err)}`));
        return false;
      }
      if (this.fd_ === undefined) return false;
    }
    return true;
  }

  private fail(reason: VhostUserError): void {
    if (this.fd_ === undefined) return;
    this.shutdown(reason);
    this.options.onClose(reason);
  }

  private shutdown(reason: VhostUserError | undefined): void {
    const fd = this.fd_;
    if (fd === undefined) return;
    this.fd_ = undefined;
    this.closedReason = reason ?? new VhostUserError('NOT_CONNECTED', 'the vhost-user channel was closed');
    this.poller.close();
    closeFds(this.pendingFds);
    this.pendingFds = [];
    closeFd(fd);
  }
}

export function closeFd(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed: nothing to release
  }
}

export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) closeFd(fd);
}
