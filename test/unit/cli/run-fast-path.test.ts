// The start-up fast path of `baoctl run`/`restart` (lib/cli/run-fast-path.ts): it takes only
// command lines it reads exactly as yargs does, and hands everything else to the full CLI.

import yargs from 'yargs';
import { describe, expect, it } from 'vitest';

import { parseRunArgv } from '../../../lib/cli/run-fast-path.js';
import { runOptions } from '../../../lib/cli/cmds/run/options.js';

/** What yargs makes of `run <rest>` with run's options, keys as the handler reads them. */
function viaYargs(rest: readonly string[]): Record<string, unknown> {
  const parsed = yargs(['run', ...rest])
    .command('run [file]', '', (y) => y.positional('file', { type: 'string' }).options(runOptions))
    .strict()
    .exitProcess(false)
    .parseSync() as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of ['file', 'config', 'logLevel', 'logFormat', 'statusSocket', 'statusSocketMode', 'statusSocketGroup', 'strict', 'logFile', 'stateDir', 'metricsListen']) {
    if (parsed[key] !== undefined) out[key] = parsed[key];
  }
  return out;
}

describe('baoctl run/restart fast path', () => {
  const valid = [
    ['vm.yaml'],
    ['-c', 'vm.yaml'],
    ['--config=vm.yaml', '--log-format', 'json'],
    ['vm.yaml', '--status-socket', '/tmp/s.sock', '--state-dir', '/tmp/state', '--log-level', 'debug'],
    ['--strict', 'vm.yaml', '--log-file', '/var/log/bao.log', '--status-socket-mode', '0660', '--status-socket-group', 'bao'],
    ['vm.yaml', '--metrics-listen', '127.0.0.1:9464', '--state-dir', ''],
    [],
  ];
  for (const rest of valid) {
    it(`reads ${JSON.stringify(rest)} as yargs does`, () => {
      const fast = parseRunArgv(['run', ...rest]);
      expect(fast?.command).toBe('run');
      expect(fast?.args).toEqual(viaYargs(rest));
      expect(parseRunArgv(['restart', ...rest])?.command).toBe('restart');
    });
  }

  const others = [
    ['--help'],
    ['-h'],
    ['vm.yaml', '--version'],
    ['vm.yaml', '--bogus'],
    ['vm.yaml', 'other.yaml'],
    ['--log-level', 'loud', 'vm.yaml'],
    ['--log-format', 'xml', 'vm.yaml'],
    ['vm.yaml', '--state-dir', 'a', '--state-dir', 'b'],
    ['--no-strict', 'vm.yaml'],
    ['--strict', 'false'],
    ['--', 'vm.yaml'],
    ['--status-socket'],
    ['--logLevel', 'info', 'vm.yaml'],
  ];
  for (const rest of others) {
    it(`leaves ${JSON.stringify(rest)} to the full CLI`, () => {
      expect(parseRunArgv(['run', ...rest])).toBeUndefined();
    });
  }

  it('takes no other command', () => {
    for (const argv of [['status'], ['config', 'check', 'vm.yaml'], [], ['--help']]) expect(parseRunArgv(argv)).toBeUndefined();
  });
});
