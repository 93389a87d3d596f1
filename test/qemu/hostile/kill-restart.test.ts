// Kill and restart, a few iterations of scripts/guest/kill-restart.mjs (the stress run is
// scripts/stress-kill-restart.sh, 100 by default): the daemon is killed with SIGKILL while the
// guest's virtio_rng drivers read from it, started again, the frontends are reset, and each run
// must recover: both frontends are served by the new process.

import { spawn } from 'node:child_process';
import * as os from 'node:os';

import { describe, expect, it } from 'vitest';

import { guestSkipReason } from '../support/bao-sim.js';

const skip = guestSkipReason ?? (os.cpus().length < 2 ? 'kill-restart needs 2 CPUs (the frontend\u2019s and the backend\u2019s)' : undefined);
if (guestSkipReason === undefined && skip !== undefined) console.warn(`skipped: ${skip}`);

describe.skipIf(skip !== undefined)('a daemon killed with SIGKILL under load', () => {
  it('is restarted and serves its reset frontends again, 3 times in a row', async () => {
    const child = spawn(process.execPath, ['scripts/guest/kill-restart.mjs', '--iterations', '3', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    console.log(out);
    const summary = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { iterations: number; recovered: number };
    expect(summary.recovered, out).toBe(3);
    expect(code).toBe(0);
  }, 900_000);
});
