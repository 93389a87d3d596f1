// baoctl's root: builds the yargs parser from the command list (cmds/index.ts) and runs it.
// Strict: unknown commands and options are errors. bin/baoctl imports the compiled main().

import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';

import { commands } from './cmds/index.js';

export function buildCli(argv: readonly string[]): Argv {
  let cli = yargs([...argv])
    .scriptName('baoctl')
    .usage('$0 <command> [options]\n\nnode-bao: userspace device models for the Bao hypervisor.')
    .strict()
    .demandCommand(1, 'Give a command (see --help).')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(false);
  for (const c of commands) cli = cli.command(c);
  return cli;
}

export async function main(argv: readonly string[] = hideBin(process.argv)): Promise<void> {
  await buildCli(argv).parseAsync();
}
