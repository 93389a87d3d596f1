// Options of `baoctl abi`.

export interface AbiArgs {
  readonly json: boolean;
}

export const abiOptions = {
  json: { type: 'boolean', default: false, description: 'print JSON instead of tables' },
} as const;
