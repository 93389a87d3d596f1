// The stdio console backend: the daemon's own stdin feeds the guest, guest output goes to its
// stdout. The streams are injectable (tests pass PassThroughs) and are never destroyed on close,
// because they belong to the process, not to the device.

import { type ConsoleBackend, StreamBackend } from './backend.js';

export interface StdioBackendOptions {
  readonly stdin?: NodeJS.ReadableStream;
  readonly stdout?: NodeJS.WritableStream;
}

export function openStdioBackend(options: StdioBackendOptions = {}): ConsoleBackend {
  const stdin = options.stdin ?? process.stdin;
  const stdout = options.stdout ?? process.stdout;
  return new StreamBackend('stdio', 'stdio', stdin, stdout);
}
