// Kill and restart, a few iterations of scripts/guest/kill-restart.mjs (the stress run is
// scripts/stress-kill-restart.sh, 100 by default): the daemon is killed with SIGKILL while the
// guest's virtio_rng drivers read from it, started again, the frontends are reset (unbind and
// bind), and each run must recover: both frontends are served by the new process.
//
// About a third of the kills land while the daemon holds an access it took and had not completed
// ("held": that frontend context waits until someone completes it, bao-abi.md §3.9); the
// restarted daemon completes it from its request journal, and such a run must recover too. The
// one exception, counted apart and printed: the driver handed the request to the ATTACH thread as
// it was being killed, before the journal could see it (scripts/guest/kill-restart.mjs says why
// only the driver can fix that); the machine is then reset by reloading bao-sim.
// Under TCG each daemon start takes 15-30 s, so two runs take about 90 s of guest time.

import { spawn } from 'node:child_process';
import * as os from 'node:os';

import { describe, expect, it } from 'vitest';

import { guestSkipReason } from '../support/bao-sim.js';

const ITERATIONS = 2;
// Opt-in until it has passed in the test machine: in its one run with the current script both
// runs went as they must (one recovered, one held access lost in the driver and counted apart),
// but the cleanup after the last run died on an unhandled rejection (rmmod of a module already
// unloaded), fixed since and not run again.
const optIn = process.env.NODE_BAO_KILL_RESTART === '1' ? undefined : 'kill-restart runs only with NODE_BAO_KILL_RESTART=1 (it has not yet passed whole in the test machine)';
const skip = guestSkipReason ?? optIn ?? (os.cpus().length < 2 ? 'kill-restart needs 2 CPUs (the frontend\u2019s and the backend\u2019s)' : undefined);
if (guestSkipReason === undefined && skip !== undefined) console.warn(`skipped: ${skip}`);

interface Summary {
  readonly done: number;
  readonly recovered: number;
  readonly held: number;
  readonly heldRecovered: number;
  readonly lostInDriver: number;
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
    expect((summary.recovered ?? 0) + (summary.lostInDriver ?? 0), out).toBe(ITERATIONS);
    expect((summary.heldRecovered ?? 0) + (summary.lostInDriver ?? 0), out).toBe(summary.held);
    if ((summary.lostInDriver ?? 0) > 0) {
      console.warn(`kill-restart: in ${summary.lostInDriver} of ${ITERATIONS} runs the driver handed an access to the ATTACH thread being killed (no journal entry; see scripts/guest/kill-restart.mjs), counted apart`);
    }
    expect(code, out).toBe(0);
  }, 900_000);
});
