// `baoctl run [config.yaml] [-c config.yaml]`: command descriptor (STYLE.md guideline 14).

import type { Argv, CommandModule } from 'yargs';

import { DEFAULT_STATUS_SOCKET } from '../../../vmm/status-server.js';
import { runDaemonCommand } from './handler.js';
import { runOptions, type RunArgs } from './options.js';

export const runCommand: CommandModule<object, RunArgs> = {
  command: 'run [file]',
  describe: 'Serve the devices of a config (node-bao or bao-virtio-dm YAML) until SIGINT/SIGTERM',
  builder: (y) =>
    y
      .positional('file', { type: 'string', description: 'the YAML config file' })
      .options(runOptions)
      .example('$0 run vm2.yaml', 'serve the devices of vm2.yaml')
      .example('$0 run -c vm2.yaml', "the same, with bao-virtio-dm's flag") as unknown as Argv<RunArgs>,
  handler: (args) => runFromCli(args),
};

/** The command as the CLI runs it (yargs' handler, and the fast path of run-fast-path.ts); `takeOver` for `baoctl restart`. */
export async function runFromCli(args: RunArgs, takeOver = false): Promise<void> {
  process.exitCode = await runDaemonCommand(args, {
    defaultStatusSocket: DEFAULT_STATUS_SOCKET,
    lastResort: process,
    exit: (code) => process.exit(code),
    ...(takeOver ? { takeOver: true } : {}),
  });
}
