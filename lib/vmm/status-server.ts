// The daemon's status socket: an HTTP server on a unix socket (root-only by default, as the Bao
// device nodes are) answering GET /status with the DaemonStatus JSON, for `baoctl status` and
// for scripts (`curl --unix-socket /run/node-bao/status.sock http://x/status`). HTTP because
// every tool speaks it; a unix socket because status is local and permissions are the file's.
//
// It is opened before any device so that a taken path fails the start with nothing opened.

import { mkdir, unlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { dirname } from 'node:path';

import { clearStaleSocket } from '../devices/unix-socket.js';
import type { Logger } from '../virtio/logger.js';
import { VmmError } from './errors.js';
import type { DaemonStatus } from './status.js';

export const DEFAULT_STATUS_SOCKET = '/run/node-bao/status.sock';

/** The status socket could not be opened; `path` is where, the message says what to do. */
export class StatusSocketError extends VmmError {
  constructor(
    code: 'STATUS_SOCKET_IN_USE' | 'STATUS_SOCKET_PATH_OCCUPIED' | 'STATUS_SOCKET_LISTEN_FAILED',
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

export interface StatusServer {
  readonly path: string;
  close(): Promise<void>;
}

export async function openStatusServer(options: { readonly path: string; readonly status: () => DaemonStatus; readonly log: Logger }): Promise<StatusServer> {
  const { path, log } = options;
  const advice = 'give another path with --status-socket, or --status-socket none';
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await clearStaleSocket(path, (why) =>
      why === 'in-use'
        ? new StatusSocketError('STATUS_SOCKET_IN_USE', path, `status socket ${path}: another daemon is serving status there; ${advice}`)
        : new StatusSocketError('STATUS_SOCKET_PATH_OCCUPIED', path, `status socket ${path}: the path exists and is not a socket; ${advice}`),
    );
  } catch (err) {
    if (err instanceof StatusSocketError) throw err;
    throw new StatusSocketError('STATUS_SOCKET_LISTEN_FAILED', path, `status socket ${path}: ${(err as Error).message}; ${advice}`, { cause: err });
  }
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (url !== '/status' && url !== '/')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /status here\n');
      return;
    }
    let body: string;
    try {
      body = JSON.stringify(options.status());
    } catch (err) {
      log.error({ err }, 'status snapshot failed');
      res.writeHead(500, { 'content-type': 'text/plain' }).end('status snapshot failed\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(`${body}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new StatusSocketError('STATUS_SOCKET_LISTEN_FAILED', path, `status socket ${path}: cannot listen: ${err.message}; ${advice}`, { cause: err })),
    );
    server.listen(path, () => resolve());
  });
  server.removeAllListeners('error');
  server.on('error', (err) => log.error({ err }, 'status socket error'));
  // Requests are short; a client that keeps a connection must not hold the shutdown.
  server.unref();
  log.info({ path }, `status on ${path} (baoctl status)`);
  return {
    path,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      await unlink(path).catch(() => {});
    },
  };
}
