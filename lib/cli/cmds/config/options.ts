// Options of `baoctl config check`.

export interface ConfigCheckArgs {
  readonly file: string;
  readonly json: boolean;
  readonly strict?: boolean | undefined;
}

export const configCheckOptions = {
  json: { type: 'boolean', default: false, description: 'print the result (config or errors) as one JSON document on stdout' },
  strict: { type: 'boolean', default: false, description: "refuse unknown keys (with a 'did you mean') instead of warning about them" },
} as const;
