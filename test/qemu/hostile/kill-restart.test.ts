// Kill and restart, a few iterations of scripts/guest/kill-restart.mjs (the stress run is
// scripts/stress-kill-restart.sh, 100 by default): the daemon is killed with SIGKILL while the
// guest's virtio_rng drivers read from it, started again, the frontends are reset, and each run
// must recover: both frontends are served by the new process.

import { spawn } from 'node:child_process';
import * as os from 'node:os';

import { describe, expect, it } from 'vitest';

import { guestSkipReason } from '../support/bao-sim.js';

// Not yet reliable in CI: its first run in the test machine did not finish within 15 minutes
// (under a loaded host, every daemon start takes about 30 s under TCG). Run it with
// NODE_BAO_KILL_RESTART=1, or the full stress run with scripts/stress-kill-restart.sh.
const optIn = process.env.NODE_BAO_KILL_RESTART === '1' ? undefined : 'kill-restart runs only with NODE_BAO_KILL_RESTART=1 (too slow for CI so far)';
const skip = guestSkipReason ?? optIn ?? (os.cpus().length < 2 ? 'kill-restart needs 2 CPUs (the frontend\u2019s and the backend\u2019s)' : undefined);
if (guestSkipReason === undefined && skip !== undefined) console.warn(`skipped: ${skip}`);

describe.skipIf(skip !== undefined)('a daemon killed with SIGKILL under load', () => {
  it('is restarted and serves its reset frontends again, 3 times in a row', async () => {
    const child = spawn(process.execPath, ['scripts/guest/kill-restart.mjs', '--iterations', '3', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (d: Buffer): void => {
      out += d.toString();
      process.stdout.write(d); // progress, line by line, even if the run never ends
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const summary = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { iterations: number; recovered: number };
    expect(summary.recovered, out).toBe(3);
    expect(code).toBe(0);
  }, 900_000);
});
