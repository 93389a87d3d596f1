// `baoctl restart [config.yaml]`: a planned restart or upgrade. This process takes the devices
// over from the daemon running on the same status socket (lib/vmm/restart/handover.ts): the old
// one stops taking requests, completes those in flight and hands over its device models' fds,
// then exits without resetting any device; this one serves them from then on, in the
// foreground, exactly as `baoctl run` with the same arguments would.

import type { Argv, CommandModule } from 'yargs';

import { runFromCli } from '../run/index.js';
import { runOptions, type RunArgs } from '../run/options.js';

export const restartCommand: CommandModule<object, RunArgs> = {
  command: 'restart [file]',
  describe: 'Take the devices over from the running daemon (same status socket) without resetting them, then serve them',
  builder: (y) =>
    y
      .positional('file', { type: 'string', description: 'the YAML config file (may be a new version of the running one)' })
      .options(runOptions)
      .example('$0 restart vm2.yaml', 'replace the daemon serving vm2.yaml by this one (e.g. after an upgrade)') as unknown as Argv<RunArgs>,
  handler: (args) => runFromCli(args, true),
};
