// Skipping a test that cannot run here, visibly: the reason is printed and reported as the
// skip note (contracts: no silent skips).

import type { TestContext } from 'vitest';

export function skipBecause(ctx: TestContext, reason: string): never {
  console.log(`[skipped] ${ctx.task.name}: ${reason}`);
  return ctx.skip(reason);
}
