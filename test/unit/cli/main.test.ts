// baoctl's yargs root: strict parsing, the command list, --help.

import { describe, expect, it } from 'vitest';

import { buildCli } from '../../../lib/cli/main.js';
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
