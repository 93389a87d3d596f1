// Config checks a user meets first: --strict refuses unknown keys with a suggestion, each bad
// value gets its own message, windows that touch are warned about (Bao misroutes them), a huge
// file is refused before parsing, and the window check stays fast for many devices.

import { describe, expect, it } from 'vitest';

import { ConfigFileError, ConfigInvalidError } from '../../../lib/vmm/errors.js';
import { MAX_CONFIG_BYTES, loadConfig, parseConfigText } from '../../../lib/vmm/config/load.js';

function issues(text: string, strict = false): { errors: string[]; warnings: string[] } {
  try {
    const r = parseConfigText(text, 'vm.yaml', { strict });
    return { errors: [], warnings: r.warnings.map((w) => `${w.field}: ${w.message}`) };
  } catch (e) {
    if (!(e instanceof ConfigInvalidError)) throw e;
    return { errors: e.issues.map((i) => `${i.field}: ${i.message}`), warnings: e.warnings.map((w) => `${w.field}: ${w.message}`) };
  }
}

const CONSOLE = 'devices:\n  - {id: 0, type: console, mmio_addr: 0xa000000, backend: pty, pty_alais: /dev/ttyBao}\n';

describe('config polish', () => {
  it('warns about an unknown key by default and refuses it with --strict, with "did you mean"', () => {
    expect(issues(CONSOLE).warnings).toEqual(["devices[0].pty_alais: unknown key, ignored (did you mean 'pty_alias'?)"]);
    expect(issues(CONSOLE, true).errors).toEqual(["devices[0].pty_alais: unknown key (did you mean 'pty_alias'?) (refused by --strict)"]);
  });

  it('calls 1.5 not a whole number, and a huge number too large for a JSON number', () => {
    expect(issues('devices:\n  - {id: 1.5, type: rng, mmio_addr: 0xa000000}\n').errors[0]).toMatch(/devices\[0\]\.id: .*got number 1\.5 \(not a whole number\)$/);
    expect(issues('{"devices": [{"id": 0, "type": "rng", "mmio_addr": 1e300}]}').errors[0]).toMatch(/too large for a JSON number/);
  });

  it('gives one range for shutdown_timeout_ms, whatever the value', () => {
    for (const v of ['0', '600001', '99999999999', '-1']) {
      expect(issues(`shutdown_timeout_ms: ${v}\ndevices:\n  - {id: 0, type: rng, mmio_addr: 0xa000000}\n`).errors).toEqual([expect.stringMatching(/^shutdown_timeout_ms: must be between 1 and 600000 \(milliseconds\)/)]);
    }
  });

  it('warns when two windows touch, says why and how to fix it; a gap is quiet', () => {
    const touch = issues('devices:\n  - {id: 0, type: rng, mmio_addr: 0xa000000}\n  - {id: 1, type: rng, mmio_addr: 0xa000200}\n');
    expect(touch.errors).toEqual([]);
    expect(touch.warnings).toEqual([expect.stringMatching(/^devices\[1\]\.mmio_addr: .*starts where devices\[0\]'s window .* ends; Bao routes .*: leave a gap, e\.g\. mmio_addr 0xa000400/)]);
    expect(issues('devices:\n  - {id: 0, type: rng, mmio_addr: 0xa000000}\n  - {id: 1, type: rng, mmio_addr: 0xa000400}\n').warnings).toEqual([]);
  });

  it('still reports every overlap, naming the earlier device', () => {
    const r = issues('devices:\n  - {id: 0, type: rng, mmio_addr: 0xa000100}\n  - {id: 1, type: rng, mmio_addr: 0xa000000}\n  - {id: 2, type: rng, mmio_addr: 0xa000000}\n');
    expect(r.errors).toEqual([
      "devices[1].mmio_addr: the window 0xa000000..0xa0001ff overlaps devices[0]'s window at 0xa000100 (each window is 0x200 bytes)",
      "devices[2].mmio_addr: the window 0xa000000..0xa0001ff overlaps devices[1]'s window at 0xa000000 (each window is 0x200 bytes)",
    ]);
  });

  it('checks 20000 windows, finding the one overlap among them (sorted, not pairwise: the pairwise check took minutes here)', () => {
    const lines = ['devices:'];
    for (let i = 0; i < 20_000; i++) lines.push(`  - {id: ${i % 16}, type: rng, mmio_addr: ${0xa000000 + i * 0x400}}`);
    lines.push(`  - {id: 3, type: rng, mmio_addr: ${0xa000000 + 12_345 * 0x400 + 0x100}}`);
    const r = issues(`${lines.join('\n')}\n`);
    expect(r.errors.filter((e) => e.includes('overlaps'))).toEqual([expect.stringMatching(/^devices\[20000\]\.mmio_addr: .*overlaps devices\[12345\]'s window/)]);
  }, 120_000);

  it('refuses a file larger than the limit before parsing it', async () => {
    const big = `devices: []\n#${'x'.repeat(MAX_CONFIG_BYTES)}\n`;
    const err = await loadConfig('big.yaml', { readFile: async () => big }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigFileError);
    expect((err as ConfigFileError).code).toBe('CONFIG_TOO_LARGE');
    expect((err as Error).message).toMatch(/^big\.yaml: \d+ bytes is more than a config can be/);
  });
});

describe('paths in a config file', () => {
  it("resolves relative socket_path and pty_alias against the config file's directory, not the working directory", async () => {
    const text = [
      'devices:',
      '  - {id: 0, type: console, mmio_addr: 0xa000000, backend: socket, socket_path: run/console.sock}',
      '  - {id: 1, type: console, mmio_addr: 0xa000400, pty_alias: ../vm1-console}',
      '  - {id: 2, type: console, mmio_addr: 0xa000800, backend: socket, socket_path: /run/abs.sock}',
      '',
    ].join('\n');
    const { config } = await loadConfig('/etc/node-bao/vm.yaml', { readFile: async () => text });
    const backends = config.devices.map((d) => (d.type === 'console' ? d.backend : undefined));
    expect(backends).toEqual([
      { kind: 'socket', path: '/etc/node-bao/run/console.sock' },
      { kind: 'pty', alias: '/etc/vm1-console' },
      { kind: 'socket', path: '/run/abs.sock' },
    ]);
  });
});
