// Options of `baoctl trace`.

import { DEFAULT_STATUS_SOCKET } from '../../../vmm/status-server.js';

export interface TraceArgs {
  readonly dm?: number;
  readonly json: boolean;
  readonly socket: string;
  readonly count?: number;
}

export const traceOptions = {
  dm: { type: 'number', description: 'trace this device model only (its config `id`); default every one' },
  json: { type: 'boolean', default: false, description: 'print the events as JSON lines, as the daemon sends them' },
  socket: { type: 'string', default: DEFAULT_STATUS_SOCKET, description: 'the status socket of the daemon (`baoctl run --status-socket`)' },
  count: { type: 'number', description: 'stop after this many events' },
} as const;
