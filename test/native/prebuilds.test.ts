// The prebuilt addons (npm run build:prebuilds, npm run build:prebuilds:cross) are ELF shared objects for the
// right machine and word size. A prebuild that was not built is reported skipped, with why.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { PACKAGE_ROOT } from '../../lib/native.js';
import { skipBecause } from './skip.js';

const TARGETS = [
  { dir: 'linux-x64', machine: 62, bits: 64, name: 'EM_X86_64', how: 'npm run build:prebuilds' },
  { dir: 'linux-arm64', machine: 183, bits: 64, name: 'EM_AARCH64', how: 'npm run build:prebuilds:cross' },
  { dir: 'linux-arm', machine: 40, bits: 32, name: 'EM_ARM', how: 'npm run build:prebuilds:cross' },
  { dir: 'linux-riscv64', machine: 243, bits: 64, name: 'EM_RISCV', how: 'npm run build:prebuilds:cross' },
] as const;

const ET_DYN = 3;

describe('prebuilt addons', () => {
  for (const t of TARGETS) {
    it(`prebuilds/${t.dir} holds a ${t.bits}-bit little-endian ELF shared object for ${t.name} (${t.machine})`, (ctx) => {
      const dir = path.join(PACKAGE_ROOT, 'prebuilds', t.dir);
      const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
      if (files.length === 0) skipBecause(ctx, `${dir} has no .node file: run \`${t.how}\` first`);
      for (const f of files) {
        const h = fs.readFileSync(path.join(dir, f)).subarray(0, 20);
        expect([...h.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
        expect(h[4]).toBe(t.bits === 64 ? 2 : 1); // EI_CLASS
        expect(h[5]).toBe(1); // EI_DATA little-endian
        expect(h.readUInt16LE(16)).toBe(ET_DYN);
        expect(h.readUInt16LE(18)).toBe(t.machine);
      }
    });
  }
});
