// Kill and restart, a few iterations of scripts/guest/kill-restart.mjs (the stress run is
// scripts/stress-kill-restart.sh, 100 by default): the daemon is killed with SIGKILL while the
// guest's virtio_rng drivers read from it, started again (it resumes both devices from its state
// files), the frontends are reset on purpose (unbind and bind, as a rebooted frontend VM would
// make), and each run must recover: both frontends are served by the new process.
//
// About a third of the kills land while the daemon holds an access it took and had not completed
// ("held": that frontend context waits until someone completes it, bao-abi.md §3.9); the
// restarted daemon completes it from its request journal, and such a run must recover too. The
// one exception, counted apart and printed: the daemon was killed while completing that access
// (the journal cannot tell whether the COMPLETE was made, and does not repeat it; the script's
// banner says why); the machine is then reset by reloading bao-sim.
// In the default QEMU run (NODE_BAO_KILL_RESTART=0 leaves it out; NODE_BAO_KILL_RESTART_ITERATIONS=N
// for another count). Under TCG each daemon start takes 10-30 s, so three runs take about 2 minutes
// of guest time.

import { spawn } from 'node:child_process';
import * as os from 'node:os';

import { describe, expect, it } from 'vitest';

import { guestSkipReason } from '../support/bao-sim.js';

const ITERATIONS = Number(process.env['NODE_BAO_KILL_RESTART_ITERATIONS'] || '3');
const leftOut = process.env['NODE_BAO_KILL_RESTART'] === '0' ? 'kill-restart left out (NODE_BAO_KILL_RESTART=0)' : undefined;
const skip = guestSkipReason ?? leftOut ?? (os.cpus().length < 2 ? 'kill-restart needs 2 CPUs (the frontend\u2019s and the backend\u2019s)' : undefined);
if (guestSkipReason === undefined && skip !== undefined) console.warn(`skipped: ${skip}`);

interface Summary {
  readonly done: number;
  readonly recovered: number;
  readonly held: number;
  readonly heldRecovered: number;
  readonly lost: number;
  readonly failed: number;
  readonly unusable?: string;
}

describe.skipIf(skip !== undefined)('a daemon killed with SIGKILL under load', () => {
  it(`is restarted and serves its reset frontends again, ${ITERATIONS} times in a row`, async () => {
    const child = spawn(process.execPath, ['scripts/guest/kill-restart.mjs', '--iterations', String(ITERATIONS), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (d: Buffer): void => {
      out += d.toString();
      process.stdout.write(d); // progress, line by line, even if the run never ends
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const last = out.trim().split('\n').at(-1) ?? '';
    const summary = (last.startsWith('{') ? JSON.parse(last) : {}) as Partial<Summary>;
    expect(summary.done, out).toBe(ITERATIONS);
    expect(summary.unusable, out).toBeUndefined();
    expect(summary.failed, out).toBe(0);
    // Every run recovered, held ones included, but for an access the killed daemon was completing.
    expect((summary.recovered ?? 0) + (summary.lost ?? 0), out).toBe(ITERATIONS);
    expect((summary.heldRecovered ?? 0) + (summary.lost ?? 0), out).toBe(summary.held);
    if ((summary.lost ?? 0) > 0) {
      console.warn(`kill-restart: in ${summary.lost} of ${ITERATIONS} runs the daemon was killed while completing an access (not repeated; see scripts/guest/kill-restart.mjs), counted apart`);
    }
    expect(code, out).toBe(0);
  }, 900_000);
});
