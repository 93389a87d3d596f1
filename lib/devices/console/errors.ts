// Host-side errors of the console device: its backends failing to open (socket path taken by a
// live server or by a regular file, PTY alias path occupied by something that is not a
// symlink). Guest faults never become these; they are counted in metrics.ts.

export type ConsoleBackendErrorCode =
  | 'CONSOLE_SOCKET_IN_USE'
  | 'CONSOLE_SOCKET_PATH_OCCUPIED'
  | 'CONSOLE_SOCKET_LISTEN_FAILED'
  | 'CONSOLE_PTY_ALIAS_OCCUPIED'
  | 'CONSOLE_PTY_ALIAS_FAILED'
  | 'CONSOLE_PTY_OPEN_FAILED';

export class ConsoleBackendError extends Error {
  override readonly name = 'ConsoleBackendError';

  constructor(
    readonly code: ConsoleBackendErrorCode,
    message: string,
    /** The config key at fault, for the daemon's message (`socket_path`, `pty_alias`). */
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
