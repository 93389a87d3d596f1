// `baoctl abi [--json]`: command descriptor (STYLE.md guideline 14).

import type { CommandModule } from 'yargs';

import { runAbi } from './handler.js';
import { abiOptions, type AbiArgs } from './options.js';

export const abiCommand: CommandModule<object, AbiArgs> = {
  command: 'abi',
  describe: 'Show the Bao ioctl numbers and struct layouts of every ABI revision (computed by the addon, checked against TypeScript)',
  builder: (y) => y.options(abiOptions),
  handler: (args) => {
    process.exitCode = runAbi(args);
  },
};
