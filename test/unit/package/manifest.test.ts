// package.json and package-lock.json as npm reads them on a fresh clone and in a user's install:
// `npm ci` works on every platform (the lockfile holds each platform's optional packages), no
// script is an npm pre/post hook by accident, and the public entry points are declared.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../../..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  exports: Record<string, unknown>;
  bin: Record<string, string>;
  files: string[];
};
const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string; optionalDependencies?: Record<string, string> }>;
};

describe('package-lock.json', () => {
  it("lists every optional dependency of every package, whatever the platform (npm ci refuses a lockfile that lacks one)", () => {
    const missing: string[] = [];
    for (const [where, entry] of Object.entries(lock.packages)) {
      for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
        // Node's resolution: the nearest node_modules up from the dependent.
        let dir = where;
        let found = false;
        for (;;) {
          if (lock.packages[`${dir === '' ? '' : `${dir}/`}node_modules/${dep}`] !== undefined) {
            found = true;
            break;
          }
          if (dir === '') break;
          const i = dir.lastIndexOf('/node_modules/');
          dir = i < 0 ? '' : dir.slice(0, i);
        }
        if (!found) missing.push(`${where} -> ${dep}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('matches package.json (the same direct dependencies)', () => {
    const rootEntry = lock.packages[''] as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as typeof rootEntry;
    expect(rootEntry.dependencies).toEqual(manifest.dependencies);
    expect(rootEntry.devDependencies).toEqual(manifest.devDependencies);
  });
});

describe('package.json', () => {
  it('has no script that npm would run as a pre/post hook by accident (only prepack, on purpose)', () => {
    const hooks = Object.keys(pkg.scripts).filter((name) => /^(pre|post)/.test(name));
    expect(hooks).toEqual(['prepack']);
  });

  it('exports the library entry point with its types, and the baoctl binary', () => {
    expect(pkg.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    expect(pkg.bin).toEqual({ baoctl: 'bin/baoctl' });
    for (const f of ['bin/', 'dist/', 'prebuilds/', 'systemd/', 'docs/']) expect(pkg.files).toContain(f);
  });
});
