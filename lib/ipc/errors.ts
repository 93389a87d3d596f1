// Errors of the IPC shared-memory layer (lib/ipc), each with a stable `code`. Syscall failures
// keep the addon's / fs's shape (code = errno name, errno, syscall, path) as `cause` or as is.

export class IpcError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export class IpcNotFoundError extends IpcError {
  readonly path: string;

  constructor(path: string, cause?: unknown) {
    super(
      'IPC_NOT_FOUND',
      `${path} does not exist: load the Bao IPC shared-memory driver and describe the channel ` +
        '(device tree bao,ipcshmem on OOT/v1/v2/revA, the `channels` module parameter on revB)',
      { cause },
    );
    this.path = path;
  }
}

export class IpcPermissionError extends IpcError {
  readonly path: string;

  constructor(path: string, cause: unknown) {
    super('IPC_PERMISSION_DENIED', `Permission denied opening ${path}: run as root or fix the node's permissions`, {
      cause,
    });
    this.path = path;
  }
}

export class IpcClosedError extends IpcError {
  constructor(path: string) {
    super('HANDLE_CLOSED', `${path} is closed`);
  }
}
