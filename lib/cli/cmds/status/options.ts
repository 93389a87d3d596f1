// Options of `baoctl status`.

import { DEFAULT_STATUS_SOCKET } from '../../../vmm/status-server.js';

export interface StatusArgs {
  readonly json: boolean;
  readonly socket: string;
}

export const statusOptions = {
  json: { type: 'boolean', default: false, description: 'print the daemon status JSON as it came' },
  socket: { type: 'string', default: DEFAULT_STATUS_SOCKET, description: 'the status socket of the daemon (`baoctl run --status-socket`)' },
} as const;
