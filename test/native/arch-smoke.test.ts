// Runs arch-smoke.mjs with this host's build, and with each cross prebuild under qemu-user
// when a foreign node for it has been fetched (scripts/setup.sh puts one in .cache/node-<arch>;
// scripts/prebuild-cross.sh --fetch-node arm64|arm|riscv64 unpacks Debian's). Missing pieces are reported as skips. qemu-user
// does not pass unknown ioctls to the kernel (ENOSYS), so the Bao ioctls themselves are only
// exercised natively (here and in the QEMU machine).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { PACKAGE_ROOT, loadAddon } from '../../lib/native.js';
import { ABI } from '../../lib/uapi/index.js';
import { skipBecause } from './skip.js';

const script = path.join(PACKAGE_ROOT, 'test/native/arch-smoke.mjs');
// Same key order as the addon builds its object, so the JSON strings compare.
const expected = JSON.stringify(loadAddon().abi());

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, cmd);
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

const FOREIGN = [
  { arch: 'arm64', qemu: 'qemu-aarch64', lib: 'aarch64-linux-gnu' },
  { arch: 'arm', qemu: 'qemu-arm', lib: 'arm-linux-gnueabihf' },
  { arch: 'riscv64', qemu: 'qemu-riscv64', lib: 'riscv64-linux-gnu' },
] as const;

describe('the addon smoke check', () => {
  it('passes on this host with the local build', () => {
    expect(JSON.stringify(ABI)).toBeDefined();
    const out = execFileSync(process.execPath, [script, PACKAGE_ROOT, expected], { encoding: 'utf8' });
    expect(out).toMatch(/ARCH-SMOKE OK/);
  });

  for (const f of FOREIGN) {
    it(`passes with prebuilds/linux-${f.arch} on an emulated ${f.arch} node`, (ctx) => {
      const prebuild = path.join(PACKAGE_ROOT, 'prebuilds', `linux-${f.arch}`);
      const nodeRoot = process.env[`NODE_BAO_${f.arch.toUpperCase()}_ROOT`] ?? path.join(PACKAGE_ROOT, '.cache', `node-${f.arch}`);
      const qemu = which(f.qemu);
      if (!fs.existsSync(prebuild)) skipBecause(ctx, `no ${prebuild}: run \`npm run build:prebuilds:cross\``);
      if (qemu === undefined) skipBecause(ctx, `${f.qemu} is not installed (Debian package qemu-user)`);
      if (!fs.existsSync(path.join(nodeRoot, 'usr/bin/node'))) {
        skipBecause(ctx, `no ${f.arch} node in ${nodeRoot}: run \`bash scripts/prebuild-cross.sh --fetch-node ${f.arch}\``);
      }
      // A package root holding only the prebuild, so node-gyp-build cannot pick the host's build/.
      const root = fs.mkdtempSync(path.join(os.tmpdir(), `nb-${f.arch}-`));
      try {
        fs.writeFileSync(path.join(root, 'package.json'), '{"name":"node-bao"}');
        fs.cpSync(prebuild, path.join(root, 'prebuilds', `linux-${f.arch}`), { recursive: true });
        const out = execFileSync(qemu, [path.join(nodeRoot, 'usr/bin/node'), script, root, expected, 'emulated'], {
          encoding: 'utf8',
          timeout: 300_000,
          env: {
            ...process.env,
            QEMU_LD_PREFIX: nodeRoot,
            LD_LIBRARY_PATH: `/lib/${f.lib}:/usr/lib/${f.lib}`,
          },
        });
        expect(out).toContain(`ARCH-SMOKE OK ${f.arch}`);
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    }, 300_000);
  }
});
