// The start-up fast path of `baoctl run` and `baoctl restart`: when the command line is plainly
// valid (known options of runOptions, each once, choices respected, at most one positional),
// it is parsed with node:util's parseArgs and the daemon starts without loading yargs. yargs
// costs a daemon start more than anything else the daemon needs before it serves (its help
// text is rendered and cached on every command run, through string-width's Intl.Segmenter),
// and a restarted daemon's frontends wait on that start (issue 13). Anything else (--help, an
// unknown or repeated option, a bad choice, `--no-strict`, `--`) returns undefined, and the
// full yargs CLI (main.ts) parses it and prints its usual messages: both paths accept the same
// lines and mean the same by them.

import { parseArgs, type ParseArgsConfig } from 'node:util';

import { markStartup } from '../vmm/startup-timing.js';
import { runOptions, type RunArgs } from './cmds/run/options.js';

markStartup('cli');

type Command = 'run' | 'restart';

const camel = (name: string): string => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

const parseOptions: NonNullable<ParseArgsConfig['options']> = Object.fromEntries(
  Object.entries(runOptions).map(([name, o]) => [name, { type: o.type, ...('alias' in o ? { short: o.alias } : {}) }]),
);

/** The parsed arguments of `run`/`restart`, or undefined when the full CLI must parse them. */
export function parseRunArgv(argv: readonly string[]): { command: Command; args: RunArgs } | undefined {
  const [command, ...rest] = argv;
  if (command !== 'run' && command !== 'restart') return undefined;
  let parsed;
  try {
    parsed = parseArgs({ args: [...rest], options: parseOptions, strict: true, allowPositionals: true, tokens: true });
  } catch {
    return undefined; // unknown option, missing value, a value that looks like an option
  }
  const { values, positionals, tokens } = parsed;
  if (positionals.length > 1) return undefined;
  const seen = new Set<string>();
  let previous: (typeof tokens)[number] | undefined;
  for (const t of tokens) {
    if (t.kind === 'option-terminator') return undefined;
    if (t.kind === 'option') {
      if (seen.has(t.name)) return undefined; // yargs would make an array of it
      seen.add(t.name);
    }
    // yargs reads `--strict false` as the flag's value, parseArgs as a positional.
    if (t.kind === 'positional' && previous?.kind === 'option' && runOptions[previous.name as keyof typeof runOptions].type === 'boolean' && /^(true|false)$/.test(t.value)) {
      return undefined;
    }
    previous = t;
  }
  const args: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(values)) {
    const def = runOptions[name as keyof typeof runOptions];
    if ('choices' in def && !(def.choices as readonly string[]).includes(value as string)) return undefined;
    args[camel(name)] = value;
  }
  if (positionals[0] !== undefined) args['file'] = positionals[0];
  return { command, args: args as RunArgs };
}

/** Runs `run`/`restart` through the fast path; false when the full CLI must take the command line. */
export async function runFastPath(argv: readonly string[]): Promise<boolean> {
  const parsed = parseRunArgv(argv);
  if (parsed === undefined) return false;
  const { runFromCli } = await import('./cmds/run/index.js');
  markStartup('modules');
  await runFromCli(parsed.args, parsed.command === 'restart');
  return true;
}
