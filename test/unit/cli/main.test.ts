// baoctl's yargs root: strict parsing, the command list, --help.

import { describe, expect, it } from 'vitest';

import { buildCli, main } from '../../../lib/cli/main.js';
import { EXIT_USAGE } from '../../../lib/cli/exit-codes.js';
import { packageVersion } from '../../../lib/cli/version.js';
import { commands } from '../../../lib/cli/cmds/index.js';

async function parse(argv: string[]): Promise<{ error: Error | undefined; output: string }> {
  return new Promise((resolve) => {
    buildCli(argv)
      .exitProcess(false)
      .fail((msg, err) => resolve({ error: err ?? new Error(msg), output: '' }))
      .parse(argv, {}, (error, _args, output) => resolve({ error: error ?? undefined, output }));
  });
}

describe('baoctl', () => {
  it('registers abi and devices first (other commands are appended after them)', () => {
    expect(commands.map((c) => c.command).slice(0, 2)).toEqual(['abi', 'devices']);
  });

  it('rejects unknown commands and options (strict)', async () => {
    expect((await parse(['frobnicate'])).error?.message).toMatch(/Unknown argument/);
    expect((await parse(['abi', '--jsn'])).error?.message).toMatch(/Unknown argument/);
  });

  it('documents both commands in --help', async () => {
    const { output } = await parse(['--help']);
    expect(output).toContain('baoctl abi');
    expect(output).toContain('baoctl devices');
  });
});

describe('baoctl main', () => {
  async function runMain(argv: string[]): Promise<{ code: number | undefined; err: string }> {
    let err = '';
    let code: number | undefined;
    await main(argv, { err: { write: (t: string) => (err += t) }, exit: (c) => (code = c) });
    return { code, err };
  }

  it('exits 2 on a usage error (unknown command or option, missing argument), with a pointer to --help', async () => {
    for (const argv of [['frobnicate'], ['abi', '--jsn'], ['config', 'check'], []]) {
      const r = await runMain(argv);
      expect(r.code, argv.join(' ')).toBe(EXIT_USAGE);
      expect(r.err).toMatch(/^baoctl: .+\nRun 'baoctl --help'/);
    }
  });

  it('prints the package version for --version and -V', async () => {
    const { output } = await parse(['--version']);
    expect(output).toBe(packageVersion());
    expect(packageVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('documents the exit codes and offers shell completion in --help', async () => {
    const { output } = await parse(['--help']);
    expect(output).toContain('Exit codes: 0 success, 1 runtime failure, 2 usage or config error.');
    expect(output).toContain('baoctl completion');
  });
});
