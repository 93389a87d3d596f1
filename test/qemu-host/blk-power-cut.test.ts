// Power loss for real: the machine's power is cut right after the guest's fsync returned, and the
// data must be in the image file on the host. This host-side test boots the Bao-equivalent guest
// itself (qemu/run.sh) with an extra disk: a raw image file in this clone's qemu/out/tmp, given to
// QEMU with its cache off (cache=none: O_DIRECT on the host, so QEMU holds no write in the host's
// page cache; the guest sees a disk with a write cache and its flushes are synced to the host's
// disk). In the guest (blk-power-cut.guest.ts), node-bao serves a disk over bao-sim backed by
// that QEMU disk (cache: writeback, FLUSH offered: the defaults), and the guest's own virtio_blk
// writes SYNCED with fsync (FLUSH), then UNSYNCED without. The guest prints CUT_MARKER once dd's
// fsync has returned; run.sh --power-cut kills QEMU with SIGKILL the moment the console shows it,
// so the backend VM's page cache, node-bao and the frontend all die at once, mid-run.
//
// Then the image is read here: SYNCED must be there, byte for byte, which proves that a
// completed FLUSH had passed the backend kernel's page cache and the virtio disk below it (the
// fdatasync node-bao makes reaches the disk as a flush). UNSYNCED is the control: it was
// accepted (a direct write the frontend saw complete) but never flushed, and with the guest's
// background writeback held off it is still only in the backend's page cache at the cut, so it
// must not be in the image; were it there, the check could not tell "durable" from "accepted".
// What this does not cover: the host's own disk cache (the image lives on whatever disk this
// clone does; the flush QEMU forwards to it is the host's business) and a guest without FLUSH
// (write-through, tested in test/qemu/blk-power-loss.test.ts).

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { skipBecause } from '../native/skip.js';
import { CUT_MARKER, pattern, STORE_BYTES, STORE_SERIAL, SYNCED, UNSYNCED, type Region } from './blk-power-cut-plan.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OUT = path.join(ROOT, 'qemu/out');
/** The guest's whole run: boot, node and the daemon starting under TCG, the writes. */
const GUEST_TIMEOUT_S = 480;

function onPath(cmd: string): boolean {
  return (process.env['PATH'] ?? '').split(':').some((dir) => dir !== '' && fs.existsSync(path.join(dir, cmd)));
}

/** Why the guest cannot be booted here, or undefined. */
function cannotBoot(): string | undefined {
  if (!onPath('qemu-system-x86_64')) return 'qemu-system-x86_64 is not installed (qemu/provision.sh installs it; npm test runs it)';
  if (!fs.existsSync(path.join(OUT, 'image/kernel-version'))) return 'no guest image in qemu/out/image: `npm run test:qemu` builds it before it runs this test';
  for (const need of ['dist', 'build/Release/bao.node']) {
    if (!fs.existsSync(path.join(ROOT, need))) return `${need} is missing: run \`npm run build\` first`;
  }
  return undefined;
}

/** Whether `file`'s filesystem takes O_DIRECT (QEMU's cache=none needs it; tmpfs may not). */
function takesDirectIo(file: string): boolean {
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_DIRECT));
    return true;
  } catch {
    return false;
  }
}

function sha(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function readRegion(file: string, region: Region): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(region.length);
    fs.readSync(fd, buf, 0, region.length, region.offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** Runs qemu/run.sh to the end; its output (the guest's console, run.sh's own lines) is kept. */
function runGuest(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [path.join(ROOT, 'qemu/run.sh'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('virtio-blk power cut: the machine dies right after the guest\u2019s fsync', () => {
  it('leaves every fsync\u2019ed write in the image on the host; an unsynced write is lost with the guest\u2019s memory (the control)', async (ctx) => {
    const why = cannotBoot();
    if (why !== undefined) skipBecause(ctx, why);
    fs.mkdirSync(path.join(OUT, 'tmp'), { recursive: true });
    const dir = fs.mkdtempSync(path.join(OUT, 'tmp/power-cut-'));
    try {
      const image = path.join(dir, 'store.img');
      fs.writeFileSync(image, '');
      fs.truncateSync(image, STORE_BYTES);
      // cache=none wants O_DIRECT; on a filesystem without it, writethrough still completes no
      // write before it is on the host's disk (only the host's read cache is kept).
      const cache = takesDirectIo(image) ? 'none' : 'writethrough';
      if (cache !== 'none') console.warn(`blk-power-cut: ${dir} does not take O_DIRECT: QEMU's disk runs with cache=writethrough instead of none`);
      const job = path.join(dir, 'job.sh');
      fs.writeFileSync(
        job,
        [
          '# CPU 1 plays the backend VM, CPU 0 the frontend (qemu/guest/bao-cpu-split).',
          'bao-cpu-split 0',
          'taskset -c 1 node node_modules/vite-node/vite-node.mjs test/qemu-host/blk-power-cut.guest.ts',
          '',
        ].join('\n'),
      );
      const { code, output } = await runGuest([
        '--name', 'blk-power-cut', '--smp', '2', '--timeout', String(GUEST_TIMEOUT_S),
        '--disk', `${image},serial=${STORE_SERIAL},cache=${cache}`,
        '--power-cut', CUT_MARKER,
        '--script', job,
      ]);
      const tail = output.slice(-6000);
      // 0: the power was cut at the marker (anything else: the guest failed or never got there).
      expect(code, tail).toBe(0);
      expect(output, tail).toContain('run.sh: power cut');
      console.log(output.split('\n').filter((l) => l.startsWith('blk-power-cut:') || l.startsWith('run.sh:')).join('\n'));

      const synced = readRegion(image, SYNCED);
      expect(sha(synced), `the fsync'ed region is not in the image (first bytes ${synced.subarray(0, 16).toString('hex')})\n${tail}`).toBe(sha(pattern(SYNCED)));
      const unsynced = readRegion(image, UNSYNCED);
      expect(unsynced.equals(pattern(UNSYNCED)), 'the unsynced control reached the image: something flushed it, and this test cannot tell durable from accepted').toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, (GUEST_TIMEOUT_S + 120) * 1000);
});
