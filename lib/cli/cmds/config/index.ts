// `baoctl config check <file> [--json]`: command descriptor (STYLE.md guideline 14). `config` is
// a group so later subcommands (e.g. converting a bao-virtio-dm file) sit beside `check`.

import type { Argv, CommandModule } from 'yargs';

import { runConfigCheck } from './handler.js';
import { configCheckOptions, type ConfigCheckArgs } from './options.js';

export const configCheckCommand: CommandModule<object, ConfigCheckArgs> = {
  command: 'check <file>',
  describe: 'Validate a config (node-bao or bao-virtio-dm YAML) without touching any device; exit 0 valid, 2 invalid',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, description: 'the YAML config file' })
      .options(configCheckOptions) as unknown as Argv<ConfigCheckArgs>,
  handler: async (args) => {
    process.exitCode = await runConfigCheck(args);
  },
};

export const configCommand: CommandModule<object, object> = {
  command: 'config <command>',
  describe: 'Work with daemon config files',
  builder: (y) => y.command(configCheckCommand as CommandModule<object, never>).demandCommand(1, 'Give a config subcommand (check).'),
  handler: () => {},
};
