// The unix-socket console backend: the daemon listens on a path, one client at a time is the
// console (a second one is told so and disconnected). Guest output while nobody is connected is
// discarded and counted (or, with holdBytes, that much is kept for the next client first), as a serial line with nothing plugged in would lose it, so a guest
// printing at boot never stalls on an absent client. A stale socket file left by a crashed
// daemon is replaced; a live server or a non-socket file at the path is an error.

import { unlink } from 'node:fs/promises';
import { type Server, type Socket, createServer } from 'node:net';

import type { Logger } from '../../../virtio/logger.js';
import { silentLogger } from '../../../virtio/logger.js';
import { clearStaleSocket } from '../../unix-socket.js';
import { ConsoleBackendError } from '../errors.js';
import type { ConsoleBackend, ConsoleBackendEvents, ConsoleBackendStats } from './backend.js';

export interface SocketBackendOptions {
  readonly path: string;
  readonly log?: Logger;
  /**
   * Guest output kept while no client is connected, for the next one (default 0: discarded).
   * Beyond it the rest is discarded and counted. A daemon restart is such a time: the device
   * resumes and takes the guest's pending output before the console client has reconnected.
   */
  readonly holdBytes?: number;
}

function clearStalePath(path: string): Promise<void> {
  return clearStaleSocket(path, (why) =>
    why === 'in-use'
      ? new ConsoleBackendError('CONSOLE_SOCKET_IN_USE', `${path}: another process is listening there`, 'socket_path')
      : new ConsoleBackendError('CONSOLE_SOCKET_PATH_OCCUPIED', `${path} exists and is not a socket; not removing it`, 'socket_path'),
  );
}

class SocketBackend implements ConsoleBackend {
  readonly kind = 'socket' as const;
  readonly description: string;
  private events: ConsoleBackendEvents | undefined;
  private client: Socket | undefined;
  private paused = false;
  private waitingForDrain = false;
  private discarded = 0;
  private closing: Promise<void> | undefined;
  /** Output held for the next client (holdBytes). */
  private held: Uint8Array[] = [];
  private heldBytes = 0;

  constructor(
    private readonly server: Server,
    private readonly path: string,
    private readonly log: Logger,
    private readonly holdLimit = 0,
  ) {
    this.description = `socket ${path}`;
    server.on('connection', (socket) => this.accept(socket));
    server.on('error', (err) => log.error({ err }, 'console socket server error'));
  }

  get stats(): ConsoleBackendStats {
    return { discardedBytes: this.discarded };
  }

  private accept(socket: Socket): void {
    if (this.client !== undefined || this.closing !== undefined) {
      socket.on('error', () => {});
      socket.end('console busy: another client is connected\r\n', () => socket.destroy());
      this.log.info({ path: this.path }, 'refused a second console client');
      return;
    }
    this.client = socket;
    this.log.info({ path: this.path }, 'console client connected');
    socket.on('data', (chunk: Buffer) => this.events?.data(chunk));
    socket.on('drain', () => this.drained());
    socket.on('error', (err) => this.log.debug({ err }, 'console client error'));
    socket.on('close', () => {
      if (this.client === socket) this.client = undefined;
      this.log.info({ path: this.path }, 'console client disconnected');
      // Output that was waiting for this client's drain now goes nowhere: unblock the device.
      this.drained();
    });
    if (this.held.length > 0) {
      for (const chunk of this.held) socket.write(chunk);
      this.held = [];
      this.heldBytes = 0;
    }
    // pauseOnConnect: the socket starts paused; flow only once the device listens.
    if (!this.paused && this.events !== undefined) socket.resume();
  }

  private drained(): void {
    if (!this.waitingForDrain) return;
    this.waitingForDrain = false;
    this.events?.drain();
  }

  start(events: ConsoleBackendEvents): void {
    this.events = events;
    if (!this.paused) this.client?.resume();
  }

  write(chunk: Uint8Array, done: (err?: Error | null) => void): boolean {
    const client = this.client;
    if (client === undefined || client.destroyed || !client.writable) {
      const keep = Math.min(chunk.length, this.holdLimit - this.heldBytes);
      if (keep > 0) {
        this.held.push(Uint8Array.prototype.slice.call(chunk, 0, keep));
        this.heldBytes += keep;
      }
      this.discarded += chunk.length - Math.max(0, keep);
      done(null);
      return true;
    }
    const ok = client.write(chunk, (err?: Error | null) => done(err));
    if (!ok) this.waitingForDrain = true;
    return ok;
  }

  pauseInput(): void {
    this.paused = true;
    this.client?.pause();
  }

  resumeInput(): void {
    this.paused = false;
    if (this.events !== undefined) this.client?.resume();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.events = undefined;
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.client?.destroy();
      this.client = undefined;
      await closed;
      await unlink(this.path).catch(() => {});
    })();
    return this.closing;
  }
}

/** Listens on `options.path` (replacing a stale socket file) and resolves once listening. */
export async function openSocketBackend(options: SocketBackendOptions): Promise<ConsoleBackend> {
  const log = options.log ?? silentLogger;
  await clearStalePath(options.path);
  const server = createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new ConsoleBackendError('CONSOLE_SOCKET_LISTEN_FAILED', `${options.path}: cannot listen: ${err.message}`, 'socket_path', { cause: err })),
    );
    server.listen(options.path, () => resolve());
  });
  server.removeAllListeners('error');
  return new SocketBackend(server, options.path, log, options.holdBytes ?? 0);
}
