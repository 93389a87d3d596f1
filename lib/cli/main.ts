// baoctl's root: builds the yargs parser from the command list (cmds/index.ts) and runs it.
// Strict: unknown commands and options are errors, reported with exit code 2 like every other
// usage error (exit-codes.ts). bin/baoctl checks the Node version, then imports the compiled main().

import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';

import { commands } from './cmds/index.js';
import { EXIT_CODES_HELP, EXIT_USAGE } from './exit-codes.js';
import type { Output } from './io.js';
import { packageVersion } from './version.js';

export function buildCli(argv: readonly string[]): Argv {
  let cli = yargs([...argv])
    .scriptName('baoctl')
    .usage('$0 <command> [options]\n\nnode-bao: userspace device models for the Bao hypervisor.')
    .strict()
    .demandCommand(1, 'Give a command (see --help).')
    .recommendCommands()
    .completion('completion', 'Print a bash/zsh completion script (e.g. baoctl completion >> ~/.bashrc)')
    .epilogue(EXIT_CODES_HELP)
    .help()
    .alias('h', 'help')
    .version(packageVersion())
    .alias('V', 'version');
  for (const c of commands) cli = cli.command(c);
  return cli;
}

export interface MainIo {
  readonly err?: Output;
  /** Ends the process on a usage error; default process.exit. */
  readonly exit?: (code: number) => void;
}

export async function main(argv: readonly string[] = hideBin(process.argv), io: MainIo = {}): Promise<void> {
  const err = io.err ?? process.stderr;
  const exit = io.exit ?? ((code: number) => process.exit(code));
  const cli = buildCli(argv).fail((msg, e) => {
    // A usage error (yargs' msg) gets the command's help; an error thrown by a handler is a bug
    // or a runtime failure and is rethrown as is.
    if (e !== undefined && e !== null && !msg) throw e;
    err.write(`baoctl: ${msg ?? (e as Error).message}\nRun 'baoctl --help' (or 'baoctl <command> --help') for usage.\n`);
    exit(EXIT_USAGE);
  });
  await cli.parseAsync();
}
