// Crash-only daemon, in the Bao-equivalent guest: scripts/guest/kill-resume.mjs kills `baoctl
// run` with SIGKILL 20 times while the guest's own virtio_rng, virtio_console and virtio_blk
// drivers are bound and busy (hwrng reads, console lines both ways, numbered disk records each
// written with O_DIRECT and fsync'ed), half of the kills on purpose right after the daemon took
// a trapped access and before it completed it, and starts it again each time. Every restart
// must resume the devices the drivers still hold, without any reset; the access the dead
// process took must be completed by the new one; nothing may stay queued or in flight; no
// console line may be lost or duplicated in either direction; and every record whose fsync had
// returned must be on the disk at each kill and read back at the end. The 100-kill run is
// scripts/stress-kill-resume.sh.

import { spawn } from 'node:child_process';
import * as os from 'node:os';

import { describe, expect, it } from 'vitest';

import { guestSkipReason } from '../support/bao-sim.js';

const ITERATIONS = Number(process.env['NODE_BAO_KILL_RESUME_ITERATIONS'] || '20');
// In the default run (NODE_BAO_KILL_RESUME=0 leaves it out). A run in the test machine
// (2026-12-02, rng + console + block) resumed 10 kills, then hung on the 11th: a random kill left
// a trapped access the journal never recorded (the window between the ATTACH ioctl returning and
// native/attach.cc journalling the request). That window is closed (ATTACH's buffer is an armed
// journal slot, native/journal.h); the next run resumed 20 kills of 20. 20 kills take about 6 to
// 9 minutes there (a daemon start is about 10 s under TCG).
const optIn =
  process.env['NODE_BAO_KILL_RESUME'] === '0' ? 'kill-resume left out (NODE_BAO_KILL_RESUME=0)' : undefined;
const skip = guestSkipReason ?? optIn ?? (os.cpus().length < 2 ? 'kill-resume needs 2 CPUs (the frontend\u2019s and the backend\u2019s)' : undefined);
if (guestSkipReason === undefined && skip !== undefined) console.warn(`skipped: ${skip}`);

interface Summary {
  iterations: number;
  resumed: number;
  resets: number;
  hangs: number;
  disk: { records: number; failedWrites: number; missingAtKills: number; missingOnBacking: number; missingReadBack: number };
  afterTake: number;
  completedForDeadProcess: number;
  consoleOut: { lines: number; problemCount: number };
  consoleIn: { lines: number; problemCount: number };
}

describe.skipIf(skip !== undefined)('a daemon killed with SIGKILL while its frontends are busy', () => {
  it(`resumes them without a reset, ${ITERATIONS} times in a row, losing and repeating nothing, every fsync'ed write kept`, async () => {
    const child = spawn(process.execPath, ['scripts/guest/kill-resume.mjs', '--iterations', String(ITERATIONS), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (d: Buffer): void => {
      out += d.toString();
      process.stdout.write(d); // progress, line by line, even if the run never ends
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const summary = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Summary;
    expect(summary.resumed, out).toBe(ITERATIONS);
    expect(summary.resets).toBe(0);
    expect(summary.hangs).toBe(0);
    // Every fsync'ed disk record survived every kill and reads back through the resumed device.
    expect(summary.disk.records).toBeGreaterThan(0);
    expect(summary.disk, out).toMatchObject({ failedWrites: 0, missingAtKills: 0, missingOnBacking: 0, missingReadBack: 0 });
    // Kills between ATTACH and COMPLETE happened, and their accesses were completed by the next process.
    expect(summary.afterTake).toBeGreaterThan(0);
    expect(summary.completedForDeadProcess).toBeGreaterThanOrEqual(summary.afterTake);
    expect(summary.consoleOut.lines).toBeGreaterThan(0);
    expect(summary.consoleOut.problemCount, out).toBe(0);
    expect(summary.consoleIn.lines).toBeGreaterThan(0);
    expect(summary.consoleIn.problemCount, out).toBe(0);
    expect(code).toBe(0);
  }, 1_200_000);
});
