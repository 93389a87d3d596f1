// Options of `baoctl ipc list | read | write | watch`.

export interface IpcCommonArgs {
  readonly devRoot: string;
}

export interface IpcListArgs extends IpcCommonArgs {
  readonly json: boolean;
}

export interface IpcReadArgs extends IpcCommonArgs {
  /** A channel id (N of /dev/baoipcN) or a path. */
  readonly device: string;
  readonly offset: string;
  readonly length?: string | undefined;
  readonly format: 'hex' | 'raw';
}

export interface IpcWriteArgs extends IpcCommonArgs {
  readonly device: string;
  readonly offset: string;
  /** The bytes as text; or --hex; or stdin when neither is given. */
  readonly data?: string | undefined;
  readonly hex?: string | undefined;
}

export interface IpcWatchArgs extends IpcReadArgs {
  readonly interval: number;
  /** Stop after this many changes (default: until Ctrl-C). */
  readonly count?: number | undefined;
}

export const devRootOption = {
  'dev-root': { type: 'string', default: '/dev', description: 'where the device nodes are' },
} as const;

export const rangeOptions = {
  offset: { type: 'string', default: '0', description: 'byte offset in the channel (decimal or 0x hex)' },
  length: { type: 'string', description: 'number of bytes (default: to the end of the channel)' },
} as const;
