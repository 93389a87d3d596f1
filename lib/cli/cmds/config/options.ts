// Options of `baoctl config check`.

export interface ConfigCheckArgs {
  readonly file: string;
  readonly json: boolean;
}

export const configCheckOptions = {
  json: { type: 'boolean', default: false, description: 'print the result (config or errors) as one JSON document on stdout' },
} as const;
