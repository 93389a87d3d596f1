// GET /trace[?dm=N] on the status socket (lib/vmm/status-server.ts): a stream of JSON lines, one
// per event (lib/vmm/trace/hub.ts), until the tracer goes away, the daemon stops, or the tracer
// is dropped for not reading (its last line says so).

import type { IncomingMessage, ServerResponse } from 'node:http';

import type { TraceHub, TraceSink } from './hub.js';

/** How long a dropped or ended stream may take to flush its last line before its socket is closed. */
const END_GRACE_MS = 2000;

/** A sink over an HTTP response: writes never wait; `backlog` is what Node still buffers. */
export function responseSink(res: ServerResponse): TraceSink {
  return {
    write: (line) => {
      res.write(line);
    },
    get backlog() {
      return res.writableLength;
    },
    end: (line) => {
      res.end(line);
      setTimeout(() => res.destroy(), END_GRACE_MS).unref();
    },
  };
}

/** Parses `?dm=N`; undefined for all device models, an error text for a bad value. */
export function traceFilter(url: string): { dm?: number } | string {
  const query = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
  const dm = query.get('dm');
  if (dm === null || dm === '') return {};
  if (!/^\d+$/.test(dm)) return `dm must be a device model id (a whole number), got ${JSON.stringify(dm)}`;
  return { dm: Number(dm) };
}

export function serveTrace(req: IncomingMessage, res: ServerResponse, hub: TraceHub): void {
  const filter = traceFilter(req.url ?? '');
  if (typeof filter === 'string') {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`${filter}\n`);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const sub = hub.subscribe(responseSink(res), filter);
  res.on('close', () => sub.close());
}
