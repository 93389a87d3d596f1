// `baoctl status [--socket path] [--json]`: command descriptor (STYLE.md guideline 14).

import type { Argv, CommandModule } from 'yargs';

import { runStatus } from './handler.js';
import { statusOptions, type StatusArgs } from './options.js';

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'Show what a running `baoctl run` serves: each device, its virtio status and counters',
  builder: (y) => y.options(statusOptions) as unknown as Argv<StatusArgs>,
  handler: async (args) => {
    process.exitCode = await runStatus(args);
  },
};
