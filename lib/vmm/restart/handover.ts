// The planned restart (`baoctl restart`): the new daemon process connects to the running one's
// restart socket and takes its device models over, kernel objects included, so that no request
// is lost and kicks keep arriving by ioeventfd.
//
//   new → old  {"op":"take-over","version":1,"pid":N}
//   old → new  {"op":"fds","names":[...]}  + those fds      (while it still serves; repeated)
//   new → old  {"op":"got"}                                   (after each "fds")
//   old:       stops taking requests and kicks, completes the accesses in flight, saves state
//   old → new  {"op":"fds",...} for anything made meanwhile, then {"op":"detached","pid":M}
//   new → old  {"op":"ok"}  → the old process exits without resetting any device; the new one
//              waits for it to be gone, then opens its devices on the fds it was given.
//
// The fds are sent before the old process lets go: if the new one fails before "detached", the
// old one keeps serving as if nothing happened. Descriptors ride on the message they are named
// in, at most FDS_PER_MESSAGE at a time, each message answered before the next.

import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Logger } from '../../virtio/logger.js';
import { FdPoller } from '../../dispatcher/poller.js';
import type { NativeAddon } from '../../native.js';
import { causeMessage } from '../errors.js';
import { FdChannel } from './fd-channel.js';
import type { KeptFds, NamedFd } from './kept-fds.js';
import { saveDeviceStateForHandover, type SaveStateHook } from './state-hook.js';

export const HANDOVER_VERSION = 1;
const FDS_PER_MESSAGE = 16;

export class HandoverError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HandoverError';
    this.code = code;
  }
}

/** Where the restart socket of a daemon with this status socket is. */
export function restartSocketPath(statusSocket: string): string {
  return path.basename(statusSocket) === 'status.sock' ? path.join(path.dirname(statusSocket), 'restart.sock') : `${statusSocket}.restart`;
}

async function sendNamed(channel: FdChannel, fds: readonly NamedFd[], timeoutMs: number): Promise<void> {
  for (let i = 0; i < fds.length; i += FDS_PER_MESSAGE) {
    const chunk = fds.slice(i, i + FDS_PER_MESSAGE);
    await channel.send({ op: 'fds', names: chunk.map((f) => f.name) }, chunk.map((f) => f.fd));
    const ack = await channel.next(timeoutMs);
    if (ack.msg.op !== 'got') throw new HandoverError('HANDOVER_PROTOCOL', `expected "got", the new process said ${JSON.stringify(ack.msg)}`);
  }
}

export interface HandoverServerOptions {
  readonly path: string;
  readonly kept: KeptFds;
  readonly log: Logger;
  readonly addon: NativeAddon;
  /** After "ok": the process must now end without resetting its devices. */
  readonly onHandedOver: () => void;
  /** Between detach and the last fds (default: saveDeviceStateForHandover). */
  readonly saveState?: SaveStateHook;
  readonly timeoutMs?: number;
}

export interface HandoverServer {
  readonly path: string;
  close(): void;
}

/**
 * Listens on `path` (0600: whoever takes the fds controls the frontends' devices). One hand-over
 * at a time; a second peer meanwhile is turned away.
 */
export function openHandoverServer(options: HandoverServerOptions): HandoverServer {
  const { addon, log } = options;
  const timeoutMs = options.timeoutMs ?? 30_000;
  try {
    // A stale socket from a killed daemon; a live one is found by the connect below failing only.
    const fd = addon.unixConnect(options.path);
    fs.closeSync(fd);
    throw new HandoverError('RESTART_SOCKET_IN_USE', `${options.path}: another daemon is listening there; give this one another --status-socket`);
  } catch (err) {
    if (err instanceof HandoverError) throw err;
    fs.rmSync(options.path, { force: true });
  }
  const listenFd = addon.unixListen(options.path, 2);
  fs.chmodSync(options.path, 0o600);
  let busy = false;
  let closed = false;
  const serveOne = async (channel: FdChannel): Promise<void> => {
    const hello = await channel.next(timeoutMs);
    if (hello.msg.op !== 'take-over' || hello.msg.version !== HANDOVER_VERSION) {
      throw new HandoverError('HANDOVER_PROTOCOL', `not a take-over request: ${JSON.stringify(hello.msg)}`);
    }
    const peer = typeof hello.msg.pid === 'number' ? hello.msg.pid : undefined;
    log.info({ peer }, `restart: process ${peer ?? '?'} takes over; handing the device models over`);
    const models = options.kept.models;
    const sent = new Set<string>();
    const first = models.flatMap((m) => m.fds());
    await sendNamed(channel, first, timeoutMs);
    for (const f of first) sent.add(`${f.name}=${f.fd}`);
    // From here the devices are the new process's: stop taking requests, finish what is in flight.
    await Promise.all(models.map((m) => m.detach()));
    await (options.saveState ?? saveDeviceStateForHandover)(models);
    const late = models.flatMap((m) => m.fds()).filter((f) => !sent.has(`${f.name}=${f.fd}`));
    await sendNamed(channel, late, timeoutMs);
    await channel.send({ op: 'detached', pid: process.pid, devices: models.length });
    const ok = await channel.next(timeoutMs).catch(() => undefined);
    log.info({ peer, devices: models.length, fds: first.length + late.length, acknowledged: ok?.msg.op === 'ok' }, `restart: ${models.length} device model(s) handed over; exiting without resetting them`);
    options.onHandedOver();
  };
  const poller = new FdPoller(
    listenFd,
    () => {
      let conn: number;
      try {
        conn = addon.unixAccept(listenFd);
      } catch {
        return;
      }
      if (busy || closed) {
        fs.closeSync(conn);
        return;
      }
      busy = true;
      const channel = new FdChannel(conn, addon);
      serveOne(channel)
        .catch((err: unknown) => log.warn({ err }, `restart: hand-over abandoned, still serving: ${causeMessage(err)}`))
        .finally(() => {
          channel.close();
          busy = false;
        });
    },
    { addon, onError: (err) => log.error({ err }, 'restart socket: poll failed') },
  ).start();
  return {
    path: options.path,
    close() {
      if (closed) return;
      closed = true;
      poller.close();
      fs.closeSync(listenFd);
      fs.rmSync(options.path, { force: true });
    },
  };
}

export interface TakeOverOptions {
  readonly path: string;
  readonly kept: KeptFds;
  readonly log: Logger;
  readonly addon: NativeAddon;
  readonly timeoutMs?: number;
  /** Whether a pid still runs (default: process.kill(pid, 0)). */
  readonly alive?: (pid: number) => boolean;
}

/**
 * The new process's side: takes the running daemon's device models (their fds go into `kept`)
 * and returns once the old process is gone. Throws HandoverError when there is nothing to take
 * over (no daemon listens) or the old process does not finish in time.
 */
export async function takeOver(options: TakeOverOptions): Promise<{ readonly pid: number; readonly fds: number; readonly devices: number }> {
  const { addon, log, kept } = options;
  const timeoutMs = options.timeoutMs ?? 60_000;
  let fd: number;
  try {
    fd = addon.unixConnect(options.path);
  } catch (cause) {
    throw new HandoverError(
      'NOTHING_TO_TAKE_OVER',
      `no running daemon to take over at ${options.path} (${causeMessage(cause)}); start one with \`baoctl run\`, or give the same --status-socket it was started with`,
      { cause },
    );
  }
  const channel = new FdChannel(fd, addon);
  let received = 0;
  try {
    await channel.send({ op: 'take-over', version: HANDOVER_VERSION, pid: process.pid });
    for (;;) {
      const m = await channel.next(timeoutMs);
      if (m.msg.op === 'fds') {
        const names = Array.isArray(m.msg.names) ? m.msg.names.map(String) : [];
        if (names.length !== m.fds.length) {
          for (const f of m.fds) fs.closeSync(f);
          throw new HandoverError('HANDOVER_PROTOCOL', `${names.length} names came with ${m.fds.length} fds`);
        }
        kept.receive(
          names.map((name, i) => ({ name, fd: m.fds[i]! })),
          'handover',
        );
        received += names.length;
        await channel.send({ op: 'got' });
        continue;
      }
      if (m.msg.op === 'detached' && typeof m.msg.pid === 'number') {
        const pid = m.msg.pid;
        await channel.send({ op: 'ok' }).catch(() => {});
        const devices = typeof m.msg.devices === 'number' ? m.msg.devices : 0;
        log.info({ pid, fds: received, devices }, `restart: took over ${devices} device model(s) from process ${pid}; waiting for it to exit`);
        await waitGone(pid, timeoutMs, options.alive);
        return { pid, fds: received, devices };
      }
      throw new HandoverError('HANDOVER_PROTOCOL', `unexpected message ${JSON.stringify(m.msg)}`);
    }
  } catch (err) {
    if (err instanceof HandoverError) throw err;
    throw new HandoverError('HANDOVER_FAILED', `taking over from the running daemon failed: ${causeMessage(err)}`, { cause: err });
  } finally {
    channel.close();
  }
}

function defaultAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: unknown }).code === 'EPERM';
  }
}

async function waitGone(pid: number, timeoutMs: number, alive: (pid: number) => boolean = defaultAlive): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new HandoverError('OLD_DAEMON_STILL_RUNNING', `process ${pid} handed its devices over but did not exit within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
