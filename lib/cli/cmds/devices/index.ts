// `baoctl devices [--json]`: command descriptor (STYLE.md guideline 14).

import type { CommandModule } from 'yargs';

import { runDevices } from './handler.js';
import { devicesOptions, type DevicesOptionArgs } from './options.js';

export const devicesCommand: CommandModule<object, DevicesOptionArgs> = {
  command: 'devices',
  describe: 'List the Bao device nodes, the ABI revision they speak and the device models found',
  builder: (y) => y.options(devicesOptions),
  handler: (args) => {
    process.exitCode = runDevices({ json: args.json, devRoot: args.devRoot, probe: args.probe });
  },
};
