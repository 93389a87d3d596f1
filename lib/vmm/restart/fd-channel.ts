// FdChannel: newline-delimited JSON messages over a non-blocking unix stream socket fd, each
// message optionally carrying descriptors (SCM_RIGHTS, the addon's sendFds/recvFds). The
// hand-over protocol waits for an answer after every message that carries fds, so the fds that
// arrive while one line is read are that line's: a stream socket gives no other boundary.

import * as fs from 'node:fs';

import { FdPoller } from '../../dispatcher/poller.js';
import type { NativeAddon } from '../../native.js';

export interface ChannelMessage {
  readonly msg: Record<string, unknown>;
  readonly fds: number[];
}

export class ChannelClosedError extends Error {
  readonly code = 'HANDOVER_CHANNEL_CLOSED';
}

/** A line longer than this is not the protocol: the peer is dropped. */
const MAX_LINE = 64 * 1024;

export class FdChannel {
  private buffer = '';
  private pendingFds: number[] = [];
  private readonly lines: ChannelMessage[] = [];
  private waiter: { resolve: (m: ChannelMessage) => void; reject: (e: Error) => void } | undefined;
  private poller: FdPoller | undefined;
  private ended: Error | undefined;
  private readonly scratch = new Uint8Array(4096);

  constructor(
    readonly fd: number,
    private readonly addon: NativeAddon,
  ) {
    this.poller = new FdPoller(fd, () => this.readable(), { addon, onError: (err) => this.end(err) }).start();
  }

  private readable(): void {
    for (;;) {
      let got: ReturnType<NativeAddon['recvFds']>;
      try {
        got = this.addon.recvFds(this.fd, this.scratch);
      } catch (err) {
        if ((err as { code?: unknown }).code === 'EAGAIN') return;
        this.end(err as Error);
        return;
      }
      this.pendingFds.push(...got.fds);
      if (got.truncated) {
        this.end(new Error('descriptors were dropped in transit (control message truncated)'));
        return;
      }
      if (got.bytes === 0) {
        this.end(new ChannelClosedError('the other process closed the connection'));
        return;
      }
      this.buffer += Buffer.from(this.scratch.subarray(0, got.bytes)).toString('utf8');
      if (this.buffer.length > MAX_LINE) {
        this.end(new Error('message too long'));
        return;
      }
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        let msg: Record<string, unknown>;
        try {
          const parsed: unknown = JSON.parse(line);
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
          msg = parsed as Record<string, unknown>;
        } catch {
          this.end(new Error('a message that is not JSON'));
          return;
        }
        const fds = this.pendingFds;
        this.pendingFds = [];
        this.deliver({ msg, fds });
      }
    }
  }

  private deliver(m: ChannelMessage): void {
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w.resolve(m);
    } else {
      this.lines.push(m);
    }
  }

  private end(err: Error): void {
    if (this.ended !== undefined) return;
    this.ended = err;
    this.poller?.close();
    this.poller = undefined;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }

  /** The next message, or rejects when the peer closed, the channel broke or `timeoutMs` passed. */
  next(timeoutMs: number): Promise<ChannelMessage> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.ended !== undefined) return Promise.reject(this.ended);
    return new Promise<ChannelMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** Sends one message, with `fds` riding on its first byte. A full socket buffer is retried briefly. */
  async send(msg: Record<string, unknown>, fds: readonly number[] = []): Promise<void> {
    if (this.ended !== undefined) throw this.ended;
    const bytes = Buffer.from(`${JSON.stringify(msg)}\n`);
    let offset = 0;
    let first = true;
    const deadline = Date.now() + 10_000;
    while (offset < bytes.length) {
      try {
        offset += this.addon.sendFds(this.fd, bytes.subarray(offset), first ? fds : []);
        first = false;
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'EAGAIN' || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  }

  /** Closes the socket and any fds received but never handed out. Idempotent. */
  close(): void {
    this.end(new ChannelClosedError('closed'));
    for (const fd of this.pendingFds) {
      try {
        fs.closeSync(fd);
      } catch {
        // gone
      }
    }
    this.pendingFds = [];
    try {
      fs.closeSync(this.fd);
    } catch {
      // closed already
    }
  }
}
