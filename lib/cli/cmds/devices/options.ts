// Options of `baoctl devices`.

export interface DevicesArgs {
  readonly json: boolean;
  readonly devRoot: string;
  readonly probe: boolean;
}

/** As yargs parses them (kebab-case keys; the handler gets camelCase too). */
export interface DevicesOptionArgs {
  readonly json: boolean;
  readonly 'dev-root': string;
  readonly probe: boolean;
}

export const devicesOptions = {
  json: { type: 'boolean', default: false, description: 'print JSON instead of text' },
  'dev-root': { type: 'string', default: '/dev', description: 'where to look for the device nodes' },
  probe: {
    type: 'boolean',
    default: false,
    description: 'query device models even on an OOT/v1 dispatcher, where the DM fds this opens are closed at exit (fatal there)',
  },
} as const;
