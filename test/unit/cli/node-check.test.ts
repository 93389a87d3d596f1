// bin/baoctl checks the Node version before it loads anything (a dependency would otherwise die
// with a SyntaxError on Debian 12's Node 18): it names the version it needs and where to get it,
// and exits 1. Here process.versions.node is faked; test/native/package.test.ts checks the same
// message on a real Node 18 (Debian 12's) when one is in .cache/node-<arch>
// (scripts/prebuild-cross.sh --fetch-node arm --suite bookworm).

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

import { describe, expect, it } from 'vitest';

const bin = path.resolve(import.meta.dirname, '../../../bin/baoctl');

function runAs(version: string): { status: number | null; stderr: string } {
  const script = `Object.defineProperty(process.versions, 'node', { value: '${version}' }); await import(${JSON.stringify(pathToFileURL(bin).href)});`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', '--version'], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

describe('bin/baoctl on an old Node', () => {
  for (const v of ['18.19.0', '20.18.1', '16.20.2']) {
    it(`refuses Node ${v} with what to install, exit 1`, () => {
      const r = runAs(v);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^baoctl: node-bao needs Node\.js 20\.19 or later; this is Node\.js v/);
      expect(r.stderr).toContain('https://nodejs.org/en/download');
      expect(r.stderr).toContain("Debian 13's own nodejs (20.19) is new enough");
      if (process.arch === 'x64' || process.arch === 'arm64') expect(r.stderr).toContain(`npm install -g node-linux-${process.arch}@22`);
    });
  }

  it('lets 20.19 and later through', () => {
    const r = runAs('20.19.0');
    expect(r.stderr).not.toMatch(/needs Node\.js/);
  });
});
