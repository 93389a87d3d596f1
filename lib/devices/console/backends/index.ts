// Console backends: the host side of the port (stdio, unix socket, PTY).

export type { ConsoleBackend, ConsoleBackendEvents, ConsoleBackendKind, ConsoleBackendStats, OutputPolicy } from './backend.js';
export { StreamBackend } from './backend.js';
export { openStdioBackend, type StdioBackendOptions } from './stdio.js';
export { openSocketBackend, type SocketBackendOptions } from './socket.js';
export { openPtyBackend, DEFAULT_PTY_MAX_QUEUED_BYTES, type OpenedPty, type PtyOpener, type PtyBackendOptions } from './pty.js';
