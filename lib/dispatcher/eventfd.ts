// EventFd: one owner for one eventfd (irqfd, queue ioeventfds). The addon only creates it; reads
// and writes are plain 8-byte fs calls (STYLE.md 7), on a reused buffer (they are on hot paths).

import * as fs from 'node:fs';

import { isErrnoError, loadAddon, type NativeAddon } from '../native.js';
import { HandleClosedError, InvalidArgumentError } from './errors.js';
import { FdPoller, type FdPollerOptions } from './poller.js';

export interface EventFdOptions {
  readonly initval?: number;
  /** Default true: read() returns null instead of blocking the JS thread. */
  readonly nonblock?: boolean;
  readonly semaphore?: boolean;
  readonly addon?: NativeAddon;
}

export class EventFd {
  private fd_: number | undefined;
  private readonly buf = Buffer.alloc(8);
  private poller: FdPoller | undefined;
  private readonly addon: NativeAddon;

  private constructor(addon: NativeAddon, fd: number) {
    this.addon = addon;
    this.fd_ = fd;
  }

  static create(options: EventFdOptions = {}): EventFd {
    const addon = options.addon ?? loadAddon();
    const c = addon.constants;
    let flags = c.EFD_CLOEXEC;
    if (options.nonblock !== false) flags |= c.EFD_NONBLOCK;
    if (options.semaphore === true) flags |= c.EFD_SEMAPHORE;
    return new EventFd(addon, addon.eventfd(options.initval ?? 0, flags));
  }

  /**
   * Owns an eventfd this process already holds (kept across a restart: lib/vmm/restart checked
   * that it is one). Reads stay non-blocking only if it was created so, as node-bao's are.
   */
  static adopt(fd: number, options: Pick<EventFdOptions, 'addon'> = {}): EventFd {
    return new EventFd(options.addon ?? loadAddon(), fd);
  }

  get closed(): boolean {
    return this.fd_ === undefined;
  }

  /** The descriptor, for ioctls that register it. Throws once closed. */
  get fd(): number {
    if (this.fd_ === undefined) throw new HandleClosedError('EventFd');
    return this.fd_;
  }

  /** The counter (and reset it; semaphore mode: 1), or null when it is zero (non-blocking). */
  read(): bigint | null {
    try {
      fs.readSync(this.fd, this.buf, 0, 8, null);
    } catch (e) {
      if (isErrnoError(e) && e.code === 'EAGAIN') return null;
      throw e;
    }
    return this.buf.readBigUInt64LE(0);
  }

  /** Add `value` (default 1) to the counter. */
  write(value: bigint | number = 1): void {
    const v = BigInt(value);
    if (v <= 0n || v >= 0xffffffffffffffffn) throw new InvalidArgumentError(`eventfd increment must be in [1, 2^64-2], got ${value}`);
    this.buf.writeBigUInt64LE(v, 0);
    fs.writeSync(this.fd, this.buf, 0, 8);
  }

  /** Signal once (the irqfd "raise the interrupt" write, spec §3.8). */
  signal(): void {
    this.buf.writeUInt32LE(1, 0);
    this.buf.writeUInt32LE(0, 4);
    fs.writeSync(this.fd, this.buf, 0, 8);
  }

  /**
   * Watch for readability: `onReadable` runs on the event loop each time the counter is non-zero
   * (it should read() to reset it). One poller per EventFd; closing the EventFd closes it.
   */
  poll(onReadable: () => void, options: Omit<FdPollerOptions, 'addon' | 'writable'> = {}): FdPoller {
    if (this.poller !== undefined && !this.poller.closed) throw new InvalidArgumentError('this EventFd is already polled');
    this.poller = new FdPoller(this.fd, () => onReadable(), { ...options, addon: this.addon }).start();
    return this.poller;
  }

  /** Stops watching (the counter keeps counting, for whoever reads it next); the fd stays open. */
  stopPolling(): void {
    this.poller?.close();
    this.poller = undefined;
  }

  /** Idempotent; stops the poller first so libuv never watches a closed fd. */
  close(): void {
    const fd = this.fd_;
    if (fd === undefined) return;
    this.poller?.close();
    this.poller = undefined;
    this.fd_ = undefined;
    fs.closeSync(fd);
  }
}
