// FdPoller: calls back when an fd becomes readable, from the event loop (libuv poll; no thread).
// For queue ioeventfds, tap and pty fds. One owner: close() is idempotent and final.

import { loadAddon, type NativeAddon, type NativeErrnoError, type NativePoller } from '../native.js';
import { HandleClosedError } from './errors.js';

export interface FdPollerOptions {
  /** Also wake when writable (default: readable only). */
  readonly writable?: boolean;
  /** Poll errors (e.g. EBADF); without it they are thrown from the event loop. */
  readonly onError?: (err: NativeErrnoError) => void;
  readonly addon?: NativeAddon;
}

export class FdPoller {
  private native: NativePoller | undefined;
  private readonly events: number;

  /** `onEvent(events)` gets the libuv event bits (constants POLL_READABLE/POLL_WRITABLE). */
  constructor(fd: number, onEvent: (events: number) => void, options: FdPollerOptions = {}) {
    const addon = options.addon ?? loadAddon();
    const c = addon.constants;
    this.events = c.POLL_READABLE | (options.writable === true ? c.POLL_WRITABLE : 0);
    const onError = options.onError;
    this.native = new addon.Poller(fd, (err, events) => {
      if (err !== null) {
        if (onError === undefined) throw err;
        onError(err);
        return;
      }
      onEvent(events);
    });
  }

  get active(): boolean {
    return this.native?.active ?? false;
  }

  get closed(): boolean {
    return this.native === undefined;
  }

  start(): this {
    if (this.native === undefined) throw new HandleClosedError('FdPoller');
    this.native.start(this.events);
    return this;
  }

  stop(): void {
    this.native?.stop();
  }

  close(): void {
    const n = this.native;
    this.native = undefined;
    n?.close();
  }
}
