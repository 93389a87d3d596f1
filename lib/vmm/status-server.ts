// The daemon's status socket: an HTTP server on a unix socket (root-only by default, as the Bao
// device nodes are) answering GET /status with the DaemonStatus JSON, for `baoctl status` and
// for scripts (`curl --unix-socket /run/node-bao/status.sock http://x/status`), and GET /metrics
// in Prometheus' text format. HTTP because every tool speaks it; a unix socket because status is
// local and permissions are the file's. `--metrics-listen host:port` serves the same on TCP for
// a Prometheus server.
//
// Both are opened before any device so that a taken address fails the start with nothing opened.

import { mkdir, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';

import { clearStaleSocket } from '../devices/unix-socket.js';
import type { Logger } from '../virtio/logger.js';
import { VmmError } from './errors.js';
import type { MetricsSource } from './lazy-metrics.js';
import type { DaemonStatus } from './status.js';
import type { TraceHub } from './trace/hub.js';
import { serveTrace } from './trace/serve.js';

export const DEFAULT_STATUS_SOCKET = '/run/node-bao/status.sock';

/** The status socket could not be opened; `path` is where, the message says what to do. */
export class StatusSocketError extends VmmError {
  constructor(
    code: 'STATUS_SOCKET_IN_USE' | 'STATUS_SOCKET_PATH_OCCUPIED' | 'STATUS_SOCKET_LISTEN_FAILED' | 'METRICS_LISTEN_FAILED',
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

export interface StatusServer {
  /** Where it listens: the socket path, or host:port. */
  readonly path: string;
  close(): Promise<void>;
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

export interface StatusSources {
  readonly status: () => DaemonStatus;
  readonly metrics?: MetricsSource;
  readonly log: Logger;
  /** GET /trace: `baoctl trace` (lib/vmm/trace); the unix socket only. */
  readonly trace?: TraceHub;
}

/** GET /status (JSON) and GET /metrics (Prometheus text); anything else is a 404. */
function handler(sources: StatusSources): (req: IncomingMessage, res: ServerResponse) => void {
  const { log } = sources;
  const fail = (res: ServerResponse, what: string, err: unknown): void => {
    log.error({ err }, `${what} failed`);
    res.writeHead(500, { 'content-type': 'text/plain' }).end(`${what} failed\n`);
  };
  return (req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && (url === '/status' || url === '/')) {
      let body: string;
      try {
        body = JSON.stringify(sources.status());
      } catch (err) {
        fail(res, 'status snapshot', err);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${body}\n`);
      return;
    }
    if (req.method === 'GET' && url === '/trace' && sources.trace !== undefined) {
      serveTrace(req, res, sources.trace);
      return;
    }
    const metrics = sources.metrics;
    if (req.method === 'GET' && url === '/metrics' && metrics !== undefined) {
      metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (err: unknown) => fail(res, 'metrics', err),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`only GET /status${metrics === undefined ? '' : ' and GET /metrics'} here\n`);
  };
}

export async function openStatusServer(options: StatusSources & { readonly path: string }): Promise<StatusServer> {
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
  const server: Server = createServer(handler(options));
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
      await closeServer(server);
      await unlink(path).catch(() => {});
    },
  };
}

/** `--metrics-listen host:port`: the same endpoints on TCP, for a Prometheus server to scrape. */
export async function openMetricsListener(options: StatusSources & { readonly host: string; readonly port: number }): Promise<StatusServer> {
  const { host, port, log } = options;
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const server = createServer(handler(options));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new StatusSocketError('METRICS_LISTEN_FAILED', where, `--metrics-listen ${where}: cannot listen: ${err.message}; give a free address and port, or leave the option out`, {
          cause: err,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  server.removeAllListeners('error');
  server.on('error', (err) => log.error({ err }, 'metrics listener error'));
  server.unref();
  log.info({ address: where }, `metrics on http://${where}/metrics`);
  return {
    path: where,
    close: () => closeServer(server),
  };
}

/** Parses `host:port` (`[v6]:port` for IPv6); undefined when it is not one. */
export function parseListenAddress(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}
