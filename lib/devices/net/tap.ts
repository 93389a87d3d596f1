// The tap as virtio-net sees it (TapQueue per queue pair, TapInterface for the whole device),
// and openTap(), which opens and configures a real one through syscalls injected by the caller
// (the addon's tap functions plus an fd watcher), so this folder never loads the addon and
// devices stay testable with a tap double. vhost-net reuses openTap for its backend fds.
//
// Opened when the daemon starts, never when the driver sets DRIVER_OK: a frontend of the same
// kernel holds rtnl during virtio_net's probe while it waits for that register write, and the
// tap ioctls take rtnl too. For the same reason offload changes after start go through the
// thread pool (setOffload is asynchronous).

import { existsSync } from 'node:fs';

import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, VNET_HDR_SIZE } from './header.js';

/** One tap fd (one queue of a multi-queue tap). Reads and writes never block. */
export interface TapQueue {
  /** Reads one frame into `buffers`; its full length (may exceed them: truncated), or -1 if none. */
  readv(buffers: readonly Uint8Array[]): number;
  /**
   * Writes one frame, the first `count` (offset, length) pairs of `spans` as ranges of `region`
   * (a transmit chain's own spans: no view per buffer); bytes written, or -1 if the tap cannot
   * take it now.
   */
  writev(region: Uint8Array, spans: readonly number[], count: number): number;
  /** Call `readable` while a frame waits, `writable` once the tap can take one (level-triggered). */
  watch(handlers: { readable: () => void; writable: () => void; error: (err: Error) => void }): void;
  /** Which readiness to wait for. */
  want(readable: boolean, writable: boolean): void;
}

export interface TapInterface {
  readonly name: string;
  readonly queues: readonly TapQueue[];
  /** TUNSETOFFLOAD off the event loop; done(null) once the tap uses `flags` (TUN_F_*). */
  setOffload(flags: number, done: (err: Error | null) => void): void;
  /** Closes every fd; idempotent. */
  close(): void;
  /** The tap fds, one per queue (for a data path outside this process: vhost-net). */
  readonly fds?: readonly number[];
}

/** What openTap needs from the system: the addon's tap calls and a libuv fd watcher. */
export interface TapSyscalls {
  tapOpen(name: string, multiQueue: boolean): { fd: number; name: string };
  tapSetVnetHdrSize(fd: number, size: number): void;
  tapSetOffload(fd: number, flags: number): void;
  tapSetOffloadAsync(fd: number, flags: number, cb: (err: Error | null) => void): void;
  readv(fd: number, buffers: readonly Uint8Array[]): number;
  /** One writev of `count` (offset, length) ranges of `region` (TapQueue.writev). */
  writev(fd: number, region: Uint8Array, spans: readonly number[], count: number): number;
  close(fd: number): void;
  /** A level-triggered watcher of `fd`: events bit 1 readable, bit 2 writable. */
  watch(fd: number, onEvent: (readable: boolean, writable: boolean) => void, onError: (err: Error) => void): FdWatch;
  /** Whether a network interface of this name exists (default: /sys/class/net/<name>). */
  interfaceExists?(name: string): boolean;
}

export interface FdWatch {
  set(readable: boolean, writable: boolean): void;
  close(): void;
}

export type TapErrorCode = 'TAP_NOT_FOUND' | 'TAP_PERMISSION' | 'TUN_UNAVAILABLE' | 'TAP_INCOMPATIBLE' | 'TAP_OPEN_FAILED';

export class TapError extends Error {
  override readonly name = 'TapError';
  constructor(
    readonly code: TapErrorCode,
    message: string,
    /** The config key at fault, for the daemon's message. */
    readonly field: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface OpenTapOptions {
  readonly name: string;
  /** One fd per queue pair; more than one opens the tap with IFF_MULTI_QUEUE. */
  readonly queuePairs: number;
  /** Create the interface when missing (it then lives as long as the daemon holds it). */
  readonly create: boolean;
  /** Initial offloads (default none: safe for any driver until one negotiates). */
  readonly offloads?: number;
}

export const ALL_TAP_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : undefined;
}

export function openTap(options: OpenTapOptions, sys: TapSyscalls): TapInterface {
  const exists = sys.interfaceExists ?? ((n: string) => existsSync(`/sys/class/net/${n}`));
  if (!options.create && !exists(options.name)) {
    throw new TapError('TAP_NOT_FOUND', `the tap interface '${options.name}' does not exist; create it first (ip tuntap add dev ${options.name} mode tap${options.queuePairs > 1 ? ' multi_queue' : ''}) or set create_tap: true`, 'tap_name');
  }
  const multiQueue = options.queuePairs > 1;
  const fds: number[] = [];
  let actualName = options.name;
  try {
    for (let i = 0; i < options.queuePairs; i += 1) {
      const opened = sys.tapOpen(options.name, multiQueue);
      fds.push(opened.fd);
      actualName = opened.name;
      sys.tapSetVnetHdrSize(opened.fd, VNET_HDR_SIZE);
      sys.tapSetOffload(opened.fd, options.offloads ?? 0);
    }
  } catch (err) {
    for (const fd of fds) sys.close(fd);
    throw describeOpenError(err, options);
  }
  return new SyscallTap(actualName, fds, sys);
}

function describeOpenError(err: unknown, options: OpenTapOptions): TapError {
  const code = errnoCode(err);
  const name = options.name;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return new TapError('TAP_PERMISSION', `no permission to open the tap '${name}' through /dev/net/tun: run the daemon as root or with CAP_NET_ADMIN, or create the tap owned by the daemon's user (ip tuntap add dev ${name} mode tap user <user>)`, 'tap_name', { cause: err });
    case 'ENOENT':
    case 'ENODEV':
      return new TapError('TUN_UNAVAILABLE', `/dev/net/tun is missing: load the tun module (modprobe tun)`, 'tap_name', { cause: err });
    case 'EINVAL':
    case 'EBUSY':
      return new TapError('TAP_INCOMPATIBLE', `'${name}' cannot be attached as a tap with ${options.queuePairs} queue(s) (${code}): it is a tun device, in use, or created ${options.queuePairs > 1 ? 'without' : 'with'} multi_queue; recreate it (ip tuntap add dev ${name} mode tap${options.queuePairs > 1 ? ' multi_queue' : ''}) or change queue_pairs`, 'tap_name', { cause: err });
    default:
      return new TapError('TAP_OPEN_FAILED', `cannot open the tap '${name}': ${err instanceof Error ? err.message : String(err)}`, 'tap_name', { cause: err });
  }
}

class SyscallTap implements TapInterface {
  readonly queues: readonly TapQueue[];
  private readonly watches: FdWatch[] = [];
  private closed = false;
  /** Offload ioctls still running on the thread pool: the fds stay open until they finish. */
  private pendingOffloads = 0;
  private fdsClosed = false;

  constructor(
    readonly name: string,
    readonly fds: readonly number[],
    private readonly sys: TapSyscalls,
  ) {
    this.queues = fds.map((fd) => this.queueFor(fd));
  }

  private queueFor(fd: number): TapQueue {
    const sys = this.sys;
    let watch: FdWatch | undefined;
    return {
      readv: (buffers) => sys.readv(fd, buffers),
      writev: (region, spans, count) => sys.writev(fd, region, spans, count),
      watch: (handlers) => {
        watch?.close();
        watch = sys.watch(
          fd,
          (readable, writable) => {
            if (writable) handlers.writable();
            if (readable) handlers.readable();
          },
          handlers.error,
        );
        this.watches.push(watch);
      },
      want: (readable, writable) => {
        if (!this.closed) watch?.set(readable, writable);
      },
    };
  }

  setOffload(flags: number, done: (err: Error | null) => void): void {
    if (this.closed) {
      done(null);
      return;
    }
    let left = this.fds.length;
    let first: Error | null = null;
    for (const fd of this.fds) {
      this.pendingOffloads += 1;
      this.sys.tapSetOffloadAsync(fd, flags, (err) => {
        this.pendingOffloads -= 1;
        if (this.closed) this.closeFds();
        first ??= err;
        left -= 1;
        if (left === 0) done(first);
      });
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watches) w.close();
    this.closeFds();
  }

  private closeFds(): void {
    if (this.fdsClosed || this.pendingOffloads > 0) return;
    this.fdsClosed = true;
    for (const fd of this.fds) this.sys.close(fd);
  }
}
