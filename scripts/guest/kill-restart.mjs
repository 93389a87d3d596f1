#!/usr/bin/env node
// Kill and restart, run inside the Bao-equivalent guest (scripts/stress-kill-restart.sh boots it;
// test/qemu/hostile/kill-restart.test.ts runs a few iterations in CI). Two virtio-rng device
// models, each bound to the guest's own virtio_rng driver, are served by one `baoctl run` while
// the frontend reads /dev/hwrng without pause; the daemon is killed with SIGKILL at a random
// moment, started again, the frontends are reset (driver unbind and bind, as a rebooted
// frontend VM would be), and the run counts as recovered when both frontends are served again.
//
// The restarted daemon resumes both devices from its state files (the drivers still hold them);
// the frontends are reset anyway, on purpose: this run is about a reset reaching a resumed
// device, as when the frontend VM reboots while its backend restarts (test/qemu/crash/
// kill-resume.test.ts covers resuming without any reset).
//
// About a third of the kills land while the daemon holds an access it took and had not completed
// yet (bao-sim's inflight count after the kill; "held"). bao-sim keeps such a request PROCESSING
// when the fd closes (bao-abi.md §3.11) and the frontend context that made it waits for good
// (§3.9), so no unbind can finish either. The daemon journals every access in its state file
// before handling it (lib/vmm/state/request-journal.ts), and the ATTACH thread's request buffer
// is itself an armed journal slot (native/journal.h), so that even a request the driver handed
// to a thread as it was being killed is in the file. The restarted daemon completes what the
// dead one left: a held run must find its access in the restarted daemon's journal, see
// bao-sim's inflight and queued counts back at 0, then recover like any other run.
//
// One window remains, a few instructions wide: a kill while the daemon was completing the access
// (journal slot COMPLETING, the COMPLETE not yet made). The restarted daemon does not repeat it
// (on Bao the request id is reused by that vCPU's next access), so that access is never
// completed. Such a run (held, and the restarted daemon's resume reports it uncertain) is counted
// apart as "lost", not failed; the dispatcher is then reloaded (unloading bao-sim completes every
// pending access), as after any run that did not recover, and the state files are removed (they
// describe frontends and requests of the dispatcher just unloaded), so the next run starts clean.
// Any other run that does not recover is a failure, a held run without a journal entry too.
//
// Usage: node scripts/guest/kill-restart.mjs [--iterations N] [--max-seconds S] [--json]
// Prints one line per iteration and a summary; with --json, the summary as JSON on the last line.
// --max-seconds: no new iteration starts after S seconds (the summary says how many ran).
// Exit 0 when every run recovered (held ones included) or lost its held access while it was
// being completed (counted apart, see above), 1 otherwise.

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';

import { DEBUGFS, dmInfo, dmStats, sleep, startDaemon as startGuestDaemon, waitFor } from './guest-daemon.mjs';

const args = process.argv.slice(2);
const at = args.indexOf('--iterations');
const iterations = at >= 0 ? Number(args[at + 1]) : 100;
if (!Number.isInteger(iterations) || iterations < 1) {
  console.error('kill-restart: --iterations takes a whole number of runs, at least 1');
  process.exit(2);
}
const json = args.includes('--json');
const atMax = args.indexOf('--max-seconds');
const maxSeconds = atMax >= 0 ? Number(args[atMax + 1]) : Infinity;
if (!(maxSeconds > 0)) {
  console.error('kill-restart: --max-seconds takes a positive number');
  process.exit(2);
}
const CONFIG = '/tmp/node-bao-kill-restart.yaml';
const SOCKET = '/tmp/node-bao-kill-restart.sock';
// The daemons' state files (each device model's transport state and request journal): what a
// restarted daemon reads to complete the accesses the killed one took.
const STATE_DIR = '/tmp/node-bao-kill-restart.state';
const DRIVER = '/sys/bus/virtio/drivers/virtio_rng';
// What the daemon logs once every device model is open (resumed from its state file, and its
// journal's leftovers found).
const SERVING = 'serving 2 device(s)';
function rngDevices() {
  const root = '/sys/bus/virtio/devices';
  return fs.readdirSync(root).filter((d) => fs.readFileSync(`${root}/${d}/device`, 'utf8').trim() === '0x0004');
}

const info = dmInfo;

function startDaemon() {
  return startGuestDaemon([CONFIG, '--status-socket', SOCKET, '--state-dir', STATE_DIR]);
}

/** Reads `count` bytes of /dev/hwrng from the frontend CPU, bounded. */
function readHwrng(count, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn('taskset', ['-c', '0', 'dd', 'if=/dev/hwrng', `bs=${count}`, 'count=1', 'iflag=fullblock', 'status=none'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let n = 0;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => (n += d.length));
    child.on('close', () => {
      clearTimeout(timer);
      resolve(n);
    });
  });
}

/** Selects each rng as the current hw_random source in turn and reads from it. */
async function bothServed(timeoutMs) {
  const available = fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').trim().split(/\s+/).filter((n) => n.startsWith('virtio_rng'));
  if (available.length < 2) return false;
  for (const name of available) {
    fs.writeFileSync('/sys/class/misc/hw_random/rng_current', name);
    if ((await readHwrng(32, timeoutMs)) !== 32) return false;
  }
  return true;
}

/** Continuous frontend load: one reader of /dev/hwrng after another. */
function startLoad() {
  const child = spawn('taskset', ['-c', '0', 'sh', '-c', 'while :; do dd if=/dev/hwrng bs=64 count=16 status=none; done > /dev/null'], { stdio: 'ignore' });
  return () => child.kill('SIGKILL');
}

/**
 * A sysfs write that may block for good (a frontend access the killed daemon had taken is never
 * completed: the frontend waits uninterruptibly): run apart, given up on after `timeoutMs`.
 */
function sysfsWrite(path, text, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `echo ${text} > ${path}`], { stdio: 'ignore' });
    const timer = setTimeout(() => {
      child.unref();
      reject(new Error(`writing ${text} to ${path} did not return within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Driver unbind and bind of every rng frontend, as a rebooted frontend VM would make. The unbinds
 * run at the same time: unbinding one virtio_rng makes hw_random switch to the other one and read
 * from it (add_early_randomness) with its lock held, and that read waits until the other driver
 * is reset too (its remove wakes the reader first). One after the other, the first unbind would
 * wait for good.
 */
async function resetFrontends() {
  const devices = rngDevices();
  await Promise.all(devices.filter((dev) => fs.existsSync(`${DRIVER}/${dev}`)).map((dev) => sysfsWrite(`${DRIVER}/unbind`, dev, 60_000)));
  for (const dev of devices) await sysfsWrite(`${DRIVER}/bind`, dev, 60_000);
}

/** A command that may block in the kernel for good: given up on (and left) after `timeoutMs`. */
function command(file, argv, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: 'ignore' });
    const timer = setTimeout(() => {
      child.unref();
      reject(new Error(`${file} ${argv.join(' ')} did not return within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${file} ${argv.join(' ')} exited ${code}`));
    });
  });
}

/**
 * Unloads bao-sim, which first completes every pending access (as all-ones) and then removes the
 * frontends one after the other. Removing the current hw_random source makes hw_random switch to
 * the other virtio_rng and read from it with its lock held, and with no daemon that read waits
 * until the other driver is removed too, which the unload would do only next: the same lock-up
 * as the one-after-the-other unbind (resetFrontends). So both drivers are unbound at the same
 * time as the unload (their accesses are answered at once by then); those writes may fail or
 * give up, only the unload counts.
 */
async function reloadDispatcher() {
  let bound = [];
  try {
    bound = rngDevices().filter((dev) => fs.existsSync(`${DRIVER}/${dev}`));
  } catch {
    // none found: the unload alone
  }
  const unload = command('rmmod', ['bao_sim'], 60_000);
  unload.catch(() => {}); // awaited below; a quick failure must not be an unhandled rejection meanwhile
  await sleep(1000);
  for (const dev of bound) sysfsWrite(`${DRIVER}/unbind`, dev, 60_000).catch(() => {});
  await unload;
}

/**
 * What the restarted daemon's resume found in its journals (its "the previous process left N
 * trapped access(es)" warnings, summed over the device models): accesses it completes, and
 * uncertain slots (killed between marking a COMPLETE and making it) it does not repeat.
 */
function journalLeftovers(output) {
  let completing = 0;
  let uncertain = 0;
  for (const line of output.split('\n')) {
    if (!line.includes('trapped access')) continue;
    try {
      const o = JSON.parse(line);
      completing += Number(o.completing ?? 0);
      uncertain += Number(o.uncertain ?? 0);
    } catch {
      // not a JSON line
    }
  }
  return { completing, uncertain };
}

/** Neither device model has a request queued or in flight in bao-sim. */
const nothingPending = () => [0, 1].every((dm) => dmStats(dm).queued === 0 && dmStats(dm).inflight === 0);

const bothProbed = () => rngDevices().length === 2 && fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').split('virtio_rng').length > 2;

async function main() {
  execFileSync('modprobe', ['virtio_rng']);
  if (fs.existsSync('/sys/module/bao_sim')) execFileSync('rmmod', ['bao_sim']);
  execFileSync('modprobe', ['bao_sim', 'ndms=2', 'frontends=0,1']);
  fs.rmSync(STATE_DIR, { recursive: true, force: true });
  fs.writeFileSync(
    CONFIG,
    ['devices:', ...[0, 1].flatMap((id) => [`  - id: ${id}`, '    type: rng', `    mmio_addr: ${info(id).mmio_base}`, '    data_plane: virtio']), ''].join('\n'),
  );
  let daemon = startDaemon();
  const tRun = Date.now();
  await waitFor(bothProbed, 240_000, 'both frontends to probe');
  const firstStartMs = Date.now() - tRun;
  console.log(`kill-restart: first start and probe took ${firstStartMs} ms`);
  const results = [];
  let unusable = '';
  for (let i = 0; i < iterations && !unusable; i += 1) {
    if (Date.now() - tRun > maxSeconds * 1000) break;
    const t0 = Date.now();
    const stopLoad = startLoad();
    await sleep(200 + Math.floor(Math.random() * 800));
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    stopLoad();
    const stuck = [0, 1].map((dm) => Number(/inflight (\d+)/.exec(fs.readFileSync(`${DEBUGFS}/dm${dm}/stats`, 'utf8'))?.[1] ?? NaN));
    const held = stuck.reduce((a, b) => a + b, 0) > 0;
    fs.rmSync(SOCKET, { force: true });
    const tStart = Date.now();
    let recovered = false;
    let why = '';
    const phases = {};
    let completedForDead = 0;
    let lost = '';
    let resumedDms = 0;
    daemon = startDaemon();
    try {
      // Every device model open, so its journal read: the status socket comes up before that.
      await waitFor(() => daemon.output().includes(SERVING), 180_000, 'the restarted daemon to open both device models');
      phases.startMs = Date.now() - tStart;
      resumedDms = daemon.output().split('\n').filter((l) => l.includes('the driver keeps it')).length;
      if (held) {
        // The restarted daemon completes, from its journal, the access the killed one took.
        const journal = journalLeftovers(daemon.output());
        completedForDead = journal.completing;
        try {
          await waitFor(nothingPending, journal.completing > 0 ? 30_000 : 10_000, 'the restarted daemon to complete the access the killed one held');
          phases.heldDoneMs = Date.now() - tStart;
        } catch (err) {
          if (journal.completing > 0 || journal.uncertain === 0) {
            throw journal.completing > 0 ? err : new Error(`the held access is not in the restarted daemon's journal (its resume reported nothing to complete): ${String(err.message ?? err)}`);
          }
          // Killed while completing it: the one window the journal leaves (see the banner).
          lost = 'killed while completing it (journal: uncertain)';
          throw new Error(`the held access was lost: ${lost}`);
        }
      }
      const tReset = Date.now();
      await resetFrontends();
      await waitFor(bothProbed, 60_000, 'both rngs back in hw_random');
      phases.resetMs = Date.now() - tReset;
      const tServed = Date.now();
      recovered = await bothServed(10_000);
      phases.servedMs = Date.now() - tServed;
      if (!recovered) why = 'a frontend read nothing';
    } catch (err) {
      why = String(err.message ?? err);
    }
    if (!recovered && !lost) why += `; daemon stderr tail: ${daemon.output().slice(-600).replace(/\s+/g, ' ')}`;
    results.push({ iteration: i + 1, recovered, held, completedForDead, resumedDms, ...(lost ? { lost } : {}), ms: Date.now() - t0, ...phases, inflightAtKill: stuck.join(','), ...(why ? { why } : {}) });
    console.log(
      `kill-restart ${i + 1}/${iterations}: ${recovered ? 'recovered' : lost ? `held access LOST (${lost}): the dispatcher is reloaded` : `NOT recovered (${why})`} in ${Date.now() - t0} ms ` +
        `(start ${phases.startMs ?? '-'} ms, reset ${phases.resetMs ?? '-'} ms, served ${phases.servedMs ?? '-'} ms); device models resumed from the state file: ${resumedDms} of 2; accesses held by the killed daemon: ${stuck.join(', ')}` +
        (held ? `, completed by the restarted one after ${phases.heldDoneMs ?? '-'} ms (its log: ${completedForDead} left by the dead process)` : ''),
    );
    if (!recovered) {
      // Start the next run from a clean machine: unloading bao-sim completes every pending
      // access (a held one too), then the dispatcher and the daemon come up again.
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) {
        daemon.child.kill('SIGKILL');
        await daemon.exited;
      }
      try {
        await reloadDispatcher();
        // The reloaded dispatcher has new device models and frontends, and its request ids start
        // again: state saved for the old ones would resume rings the new drivers never set up, and
        // its journal would complete accesses that are not the ones it recorded.
        fs.rmSync(STATE_DIR, { recursive: true, force: true });
        // After the last run the reload is the cleanup: nothing to start again.
        if (i + 1 < iterations && Date.now() - tRun <= maxSeconds * 1000) {
          await command('modprobe', ['bao_sim', 'ndms=2', 'frontends=0,1'], 60_000);
          fs.rmSync(SOCKET, { force: true });
          daemon = startDaemon();
          await waitFor(bothProbed, 240_000, 'both frontends after the reload');
        }
      } catch (err) {
        unusable = `the machine could not be reset after run ${i + 1}: ${String(err.message ?? err)}`;
        console.log(`kill-restart: ${unusable}`);
      }
    }
  }
  // The drivers are unbound while the daemon still serves them (their removal's accesses are
  // answered at once, and hw_random has no other virtio_rng left to switch to), then the daemon
  // stops and bao-sim unloads with no driver bound: the order that cannot lock up.
  const daemonAlive = daemon.child.exitCode === null && daemon.child.signalCode === null;
  if (daemonAlive) {
    const bound = rngDevices().filter((dev) => fs.existsSync(`${DRIVER}/${dev}`));
    await Promise.all(bound.map((dev) => sysfsWrite(`${DRIVER}/unbind`, dev, 60_000))).catch((err) => console.log(`kill-restart: final unbind: ${err.message}`));
  }
  daemon.child.kill('SIGTERM');
  const code = await Promise.race([daemon.exited, sleep(15_000).then(() => 'timeout')]);
  const done = results.length;
  const recovered = results.filter((r) => r.recovered).length;
  const held = results.filter((r) => r.held).length;
  const heldRecovered = results.filter((r) => r.held && r.recovered).length;
  const lostRuns = results.filter((r) => r.lost !== undefined).length;
  const failed = results.filter((r) => !r.recovered && r.lost === undefined);
  const ms = results.filter((r) => r.recovered).map((r) => r.ms).sort((a, b) => a - b);
  // Runs whose restarted daemon resumed both device models from their state files (before the reset).
  const resumedBoth = results.filter((r) => r.resumedDms === 2).length;
  const summary = {
    iterations,
    done,
    recovered,
    held,
    heldRecovered,
    lost: lostRuns,
    resumedBoth,
    failed: failed.length,
    firstStartMs,
    recoveredMsMedian: ms[Math.floor(ms.length / 2)] ?? null,
    recoveredMsMax: ms.at(-1) ?? null,
    seconds: Math.round((Date.now() - tRun) / 1000),
    lastExit: code,
    ...(unusable ? { unusable } : {}),
    failures: results.filter((r) => !r.recovered),
  };
  console.log(
    `kill-restart: ${recovered} of ${done} runs recovered (in ${held} the killed daemon held an access: ${heldRecovered} recovered, ${lostRuns} lost while being completed); ${failed.length} failed; ${iterations - done} not run; both devices resumed from their state files before the reset in ${resumedBoth}`,
  );
  if (json) console.log(JSON.stringify(summary));
  // Else left loaded (the guest is about to end); after a last run that was reloaded it is gone.
  if (fs.existsSync('/sys/module/bao_sim')) await reloadDispatcher().catch((err) => console.log(`kill-restart: final unload: ${err.message}`));
  process.exitCode = failed.length === 0 && !unusable ? 0 : 1;
}

await main();
