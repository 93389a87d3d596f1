// The fuzz corpora, replayed: every checked-in input of every target (test/fuzz/corpus/<target>/,
// the seeds and each finding kept as a regression input) runs through its target and the
// target's oracle with plain node, no engine. A failure names the target and the input file;
// `npm run fuzz -- <target>` explores further from the same corpus.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fuzzDir = fileURLToPath(new URL('../../fuzz/', import.meta.url));
const targets = readdirSync(join(fuzzDir, 'targets'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();

describe('fuzz corpora replay', () => {
  it('knows the targets a frontend or a user controls', () => {
    expect(targets).toEqual(['blk', 'config', 'console', 'mmio', 'net', 'rng', 'split-queue']);
  });

  for (const target of targets) {
    it(`${target}: every corpus input passes the oracle`, async () => {
      const mod = (await import(`../../fuzz/targets/${target}.ts`)) as { fuzz(data: Uint8Array): void | Promise<void> };
      const dir = join(fuzzDir, 'corpus', target);
      const files = readdirSync(dir).sort();
      expect(files.length, `${dir} holds no input`).toBeGreaterThan(0);
      for (const file of files) {
        const data = readFileSync(join(dir, file));
        try {
          await mod.fuzz(new Uint8Array(data));
        } catch (err) {
          throw new Error(`${target}/${file}: ${(err as Error).message}`, { cause: err });
        }
      }
    }, 60_000);
  }
});
