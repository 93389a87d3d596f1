// `baoctl config check <file> [--json]`: the normalized config and exit 0, or every error with
// its field and exit 1; never touches a device.

import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { EXIT_INVALID, EXIT_OK, runConfigCheck } from '../../../../lib/cli/cmds/config/handler.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

function sink(): { write(t: string): void; text: string } {
  return {
    text: '',
    write(t: string) {
      this.text += t;
    },
  };
}

async function check(file: string, json: boolean, readFile?: (p: string) => Promise<string>) {
  const out = sink();
  const err = sink();
  const code = await runConfigCheck({ file, json }, { out, err, ...(readFile ? { readFile } : {}) });
  return { code, out: out.text, err: err.text };
}

describe('baoctl config check', () => {
  it('prints a valid config normalized and exits 0', async () => {
    const r = await check(fixture('bao-console.yaml'), false);
    expect(r.code).toBe(EXIT_OK);
    expect(r.out).toContain('devices[0]: console id 0, mmio 0xa003e00..0xa003fff, data plane virtio, backend pty (alias /tmp/bao-console0)');
    expect(r.err).toBe('');
  });

  it('prints it as one JSON document with --json', async () => {
    const r = await check(fixture('node-bao.yaml'), true);
    expect(r.code).toBe(EXIT_OK);
    const doc = JSON.parse(r.out) as { ok: boolean; config: { devices: { mmio_addr: string; type: string }[] }; warnings: unknown[] };
    expect(doc.ok).toBe(true);
    expect(doc.config.devices.map((d) => [d.type, d.mmio_addr])).toEqual([
      ['console', '0xa003e00'],
      ['rng', '0xa003c00'],
      ['console', '0xfffffffffffff000'],
    ]);
    // Its first two windows touch (Bao misroutes the upper one's first address): a warning.
    expect(doc.warnings).toEqual([expect.objectContaining({ field: 'devices[0].mmio_addr', message: expect.stringContaining('leave a gap') })]);
  });

  it('prints every error with its field and line on stderr and exits 2', async () => {
    const yaml = 'devices:\n  - {id: 1, type: vsock, mmio_addr: 0xa003e00}\n  - {id: 2, type: rng, mmio_addr: 0xa003c00}\n';
    const r = await check('vm2.yaml', false, async () => yaml);
    expect(r.code).toBe(EXIT_INVALID);
    expect(r.out).toBe('');
    expect(r.err.split('\n')).toEqual([
      'vm2.yaml: 1 error(s)',
      "  error: devices[0].type (line 2, column 19): 'vsock' is not served by node-bao yet; served types: console, rng, block, net",
      "  warning: devices[0].mmio_addr (line 2, column 37): the window at 0xa003e00 starts where devices[1]'s window (0xa003c00) ends; Bao routes an access to the first address of a window to the window below it when two touch, so this device would be misread: leave a gap, e.g. mmio_addr 0xa004000 (in the frontend's device tree too)",
      '',
    ]);
  });

  it('reports errors and warnings as JSON on stdout with --json', async () => {
    const yaml = 'devices:\n  - {id: 0, type: console, mmio_addr: 0xa003e01, colour: red}\n';
    const r = await check('inline.yaml', true, async () => yaml);
    expect(r.code).toBe(EXIT_INVALID);
    expect(JSON.parse(r.out)).toEqual({
      ok: false,
      file: 'inline.yaml',
      code: 'CONFIG_INVALID',
      errors: [
        {
          field: 'devices[0].mmio_addr',
          message: '0xa003e01 is not 4-byte aligned; virtio-mmio registers are 32-bit aligned from the window base',
          line: 2,
          column: 39,
        },
      ],
      warnings: [{ field: 'devices[0].colour', message: 'unknown key, ignored', line: 2, column: 58 }],
    });
  });

  it('reports a missing file and a YAML syntax error (with position) and exits 1', async () => {
    const missing = await check('/nonexistent/x.yaml', false);
    expect(missing).toMatchObject({ code: EXIT_INVALID, err: '/nonexistent/x.yaml: no such file; give the path of a YAML config\n' });

    const broken = await check('b.yaml', true, async () => 'devices:\n  - id: [0\n');
    expect(broken.code).toBe(EXIT_INVALID);
    const doc = JSON.parse(broken.out) as { code: string; errors: { line?: number; column?: number }[] };
    expect(doc.code).toBe('CONFIG_YAML_SYNTAX');
    expect(doc.errors[0]?.line).toBeTypeOf('number');
  });
});
