// `baoctl trace`: a live, decoded view of a running daemon's traffic (lib/vmm/trace). Streams
// GET /trace from the status socket and prints each event: a trapped register access with its
// name, value decoded and handling time; queue kicks; used-buffer publications; interrupts; guest
// faults with their reason. Ends on Ctrl-C (exit 0), after --count events (0), when the daemon
// stops (0), or when the daemon dropped this tracer for not reading fast enough (1).

import { get, type ClientRequest } from 'node:http';

import { formatTraceEvent, type TypeNames } from '../../../vmm/trace/format.js';
import type { TraceEvent } from '../../../vmm/trace/hub.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../../exit-codes.js';
import type { Output } from '../../io.js';
import type { TraceArgs } from './options.js';

export interface TraceIo {
  readonly out?: Output;
  readonly err?: Output;
  /** Ends the trace like Ctrl-C. */
  readonly signal?: AbortSignal;
}

function socketError(path: string, err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOENT') return `no node-bao daemon serves status at ${path}: start one with \`baoctl run <config.yaml>\`, or give its --status-socket path with --socket`;
  if (err.code === 'ECONNREFUSED') return `${path}: nothing listens there (left by a daemon that did not stop cleanly); start \`baoctl run\` again`;
  if (err.code === 'EACCES') return `${path}: permission denied; run as root or as a member of the socket's group (\`baoctl run --status-socket-group\`)`;
  return `${path}: ${err.message}`;
}

/** Returns the exit code. */
export function runTrace(args: TraceArgs, io: TraceIo = {}): Promise<number> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  if (args.dm !== undefined && (!Number.isInteger(args.dm) || args.dm < 0)) {
    err.write(`baoctl trace: --dm must be a device model id (a whole number), got ${args.dm}\n`);
    return Promise.resolve(EXIT_USAGE);
  }
  if (args.count !== undefined && (!Number.isInteger(args.count) || args.count < 1)) {
    err.write(`baoctl trace: --count must be a positive whole number, got ${args.count}\n`);
    return Promise.resolve(EXIT_USAGE);
  }
  const path = `/trace${args.dm === undefined ? '' : `?dm=${args.dm}`}`;
  const types: TypeNames = new Map();
  return new Promise<number>((resolve) => {
    let settled = false;
    let req: ClientRequest | undefined;
    const finish = (code: number): void => {
      if (settled) return;
      settled = true;
      io.signal?.removeEventListener('abort', onAbort);
      req?.destroy();
      resolve(code);
    };
    const onAbort = (): void => finish(EXIT_OK);
    if (io.signal?.aborted) {
      finish(EXIT_OK);
      return;
    }
    io.signal?.addEventListener('abort', onAbort, { once: true });
    let events = 0;
    req = get({ socketPath: args.socket, path }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          err.write(
            res.statusCode === 404
              ? `baoctl trace: ${args.socket}: this daemon does not serve traces (an older node-bao?): ${body.trim()}\n`
              : `baoctl trace: ${args.socket}: the daemon answered ${res.statusCode}: ${body.trim()}\n`,
          );
          finish(EXIT_FAILURE);
        });
        return;
      }
      res.setEncoding('utf8');
      let pending = '';
      let last: TraceEvent['kind'] | undefined;
      res.on('data', (chunk: string) => {
        pending += chunk;
        let nl: number;
        while (!settled && (nl = pending.indexOf('\n')) >= 0) {
          const text = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (text === '') continue;
          let event: TraceEvent;
          try {
            event = JSON.parse(text) as TraceEvent;
          } catch {
            err.write(`baoctl trace: ${args.socket}: a line that is not JSON; is this a node-bao status socket?\n`);
            finish(EXIT_FAILURE);
            return;
          }
          last = event.kind;
          out.write(args.json ? `${text}\n` : `${formatTraceEvent(event, types)}\n`);
          if (event.kind === 'dropped') {
            finish(EXIT_FAILURE);
            return;
          }
          if (event.kind !== 'hello' && event.kind !== 'end') {
            events += 1;
            if (args.count !== undefined && events >= args.count) {
              finish(EXIT_OK);
              return;
            }
          }
        }
      });
      res.on('end', () => {
        if (last !== 'end' && !settled) err.write('baoctl trace: the daemon closed the trace\n');
        finish(last === 'end' ? EXIT_OK : EXIT_FAILURE);
      });
      res.on('error', () => finish(last === 'end' ? EXIT_OK : EXIT_FAILURE));
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (settled) return;
      err.write(`baoctl trace: ${socketError(args.socket, e)}\n`);
      finish(EXIT_FAILURE);
    });
  });
}
