// The daemon's side of systemd's notify protocol (Type=notify; sd_notify(3)): READY=1 once every
// device model is open, RELOADING=1 / READY=1 around a SIGHUP reload, STOPPING=1 when shutdown
// starts, STATUS= lines, and WATCHDOG=1 every half WatchdogSec while the event loop runs. Each
// message is one datagram to $NOTIFY_SOCKET (AF_UNIX, which Node's dgram cannot send: the send
// is the addon's sendUnixDatagram, injected so tests and machines without the addon work).
// Outside systemd (no NOTIFY_SOCKET) everything here is a no-op.

import type { Logger } from '../virtio/logger.js';
import { causeMessage } from './errors.js';

export type DatagramSender = (path: string, data: Buffer) => unknown;

export interface SystemdNotifier {
  /** True when NOTIFY_SOCKET was set (running under systemd with Type=notify). */
  readonly active: boolean;
  /** The watchdog keep-alive period in ms, when WATCHDOG_USEC asks for one. */
  readonly watchdogIntervalMs: number | undefined;
  ready(status?: string): void;
  reloading(): void;
  stopping(status?: string): void;
  status(text: string): void;
  /** Stops the watchdog timer. */
  close(): void;
}

export interface NotifierOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly send: DatagramSender | (() => DatagramSender);
  readonly log: Logger;
  readonly pid?: number;
  /** CLOCK_MONOTONIC in µs (what RELOADING=1 carries); default process.hrtime, which is it on Linux. */
  readonly monotonicUsec?: () => bigint;
}

const NOOP: SystemdNotifier = {
  active: false,
  watchdogIntervalMs: undefined,
  ready() {},
  reloading() {},
  stopping() {},
  status() {},
  close() {},
};

export function createSystemdNotifier(options: NotifierOptions): SystemdNotifier {
  const env = options.env ?? process.env;
  const { log } = options;
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return NOOP;
  if (!socket.startsWith('/') && !socket.startsWith('@')) {
    log.warn({ notifySocket: socket }, `NOTIFY_SOCKET=${socket} is neither a path nor an abstract socket name; not notifying systemd`);
    return NOOP;
  }
  const pid = options.pid ?? process.pid;
  const monotonic = options.monotonicUsec ?? (() => process.hrtime.bigint() / 1000n);
  let sender: DatagramSender | undefined;
  let failed = false;
  const send = (message: string): void => {
    try {
      sender ??= options.send.length === 0 ? (options.send as () => DatagramSender)() : (options.send as DatagramSender);
      sender(socket, Buffer.from(message));
    } catch (err) {
      // Once: a unit that cannot be told is a deployment problem, not a reason to stop serving.
      if (!failed) log.warn({ err }, `cannot notify systemd at ${socket}: ${causeMessage(err)}`);
      failed = true;
    }
  };

  // sd_watchdog_enabled(3): WATCHDOG_PID, when set, must be ours.
  const usec = env.WATCHDOG_USEC === undefined ? undefined : Number(env.WATCHDOG_USEC);
  const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === pid;
  const watchdogIntervalMs = usec !== undefined && Number.isFinite(usec) && usec > 0 && forUs ? Math.max(1, Math.floor(usec / 2000)) : undefined;
  let timer: NodeJS.Timeout | undefined;
  if (watchdogIntervalMs !== undefined) {
    timer = setInterval(() => send('WATCHDOG=1'), watchdogIntervalMs);
    timer.unref();
  }
  let stopped = false;
  return {
    active: true,
    watchdogIntervalMs,
    ready(status) {
      send(status === undefined ? 'READY=1' : `READY=1\nSTATUS=${status}`);
    },
    reloading() {
      send(`RELOADING=1\nMONOTONIC_USEC=${monotonic()}`);
    },
    stopping(status) {
      if (stopped) return;
      stopped = true;
      send(status === undefined ? 'STOPPING=1' : `STOPPING=1\nSTATUS=${status}`);
    },
    status(text) {
      send(`STATUS=${text}`);
    },
    close() {
      clearInterval(timer);
    },
  };
}
