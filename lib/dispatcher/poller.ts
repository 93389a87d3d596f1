// FdPoller: calls back when an fd becomes readable, from the event loop (libuv poll; no thread).
// For queue ioeventfds, tap and pty fds. One owner: close() is idempotent and final.
// A poll error (the fd was closed under the watcher, or the kernel reports POLLERR) is never
// fatal: the watcher has already stopped (`active` is false, `error` holds it) when onError sees
// it; start() may retry. Without onError it becomes a process warning, so one broken fd cannot
// take the other device models of the process down with it.

import { loadAddon, type NativeAddon, type NativeErrnoError, type NativePoller } from '../native.js';
import { HandleClosedError } from './errors.js';

export interface FdPollerOptions {
  /** Also wake when writable (default: readable only). */
  readonly writable?: boolean;
  /** Poll errors (e.g. EBADF), after the watcher stopped; without it, a process warning. */
  readonly onError?: (err: NativeErrnoError) => void;
  readonly addon?: NativeAddon;
}

export class FdPoller {
  private native: NativePoller | undefined;
  private readonly events: number;
  private error_: NativeErrnoError | undefined;

  /** `onEvent(events)` gets the libuv event bits (constants POLL_READABLE/POLL_WRITABLE). */
  constructor(fd: number, onEvent: (events: number) => void, options: FdPollerOptions = {}) {
    const addon = options.addon ?? loadAddon();
    const c = addon.constants;
    this.events = c.POLL_READABLE | (options.writable === true ? c.POLL_WRITABLE : 0);
    const onError = options.onError;
    this.native = new addon.Poller(fd, (err, events) => {
      if (err !== null) {
        this.error_ = err;
        if (onError !== undefined) onError(err);
        else process.emitWarning(err);
        return;
      }
      onEvent(events);
    });
  }

  get active(): boolean {
    return this.native?.active ?? false;
  }

  /** The last poll error (the watcher stopped on it), cleared by start(). */
  get error(): NativeErrnoError | undefined {
    return this.error_;
  }

  get closed(): boolean {
    return this.native === undefined;
  }

  start(): this {
    if (this.native === undefined) throw new HandleClosedError('FdPoller');
    this.error_ = undefined;
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
