#!/usr/bin/env node
// Kill and restart, run inside the Bao-equivalent guest (scripts/stress-kill-restart.sh boots it;
// test/qemu/hostile/kill-restart.test.ts runs a few iterations in CI). Two virtio-rng device
// models, each bound to the guest's own virtio_rng driver, are served by one `baoctl run` while
// the frontend reads /dev/hwrng without pause; the daemon is killed with SIGKILL at a random
// moment, started again, the frontends are reset (driver unbind and bind, as a rebooted
// frontend VM would be), and the run counts as recovered when both frontends are served again.
//
// Usage: node scripts/guest/kill-restart.mjs [--iterations N] [--json]
// Prints one line per iteration and a summary; with --json, the summary as JSON on the last line.

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';

import { DEBUGFS, dmInfo, sleep, startDaemon as startGuestDaemon, waitFor } from './guest-daemon.mjs';

const args = process.argv.slice(2);
const at = args.indexOf('--iterations');
const iterations = at >= 0 ? Number(args[at + 1]) : 100;
if (!Number.isInteger(iterations) || iterations < 1) {
  console.error('kill-restart: --iterations takes a whole number of runs, at least 1');
  process.exit(2);
}
const json = args.includes('--json');
const CONFIG = '/tmp/node-bao-kill-restart.yaml';
const SOCKET = '/tmp/node-bao-kill-restart.sock';
const DRIVER = '/sys/bus/virtio/drivers/virtio_rng';
function rngDevices() {
  const root = '/sys/bus/virtio/devices';
  return fs.readdirSync(root).filter((d) => fs.readFileSync(`${root}/${d}/device`, 'utf8').trim() === '0x0004');
}

const info = dmInfo;

function startDaemon() {
  return startGuestDaemon([CONFIG, '--status-socket', SOCKET]);
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

async function resetFrontends() {
  for (const dev of rngDevices()) {
    if (fs.existsSync(`${DRIVER}/${dev}`)) await sysfsWrite(`${DRIVER}/unbind`, dev, 60_000);
    await sysfsWrite(`${DRIVER}/bind`, dev, 60_000);
  }
}

async function main() {
  execFileSync('modprobe', ['virtio_rng']);
  if (fs.existsSync('/sys/module/bao_sim')) execFileSync('rmmod', ['bao_sim']);
  execFileSync('modprobe', ['bao_sim', 'ndms=2', 'frontends=0,1']);
  fs.writeFileSync(
    CONFIG,
    ['devices:', ...[0, 1].flatMap((id) => [`  - id: ${id}`, '    type: rng', `    mmio_addr: ${info(id).mmio_base}`, '    data_plane: virtio']), ''].join('\n'),
  );
  let daemon = startDaemon();
  await waitFor(() => rngDevices().length === 2 && fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').split('virtio_rng').length > 2, 240_000, 'both frontends to probe');
  const results = [];
  for (let i = 0; i < iterations; i += 1) {
    const t0 = Date.now();
    const stopLoad = startLoad();
    await sleep(200 + Math.floor(Math.random() * 800));
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    stopLoad();
    const stuck = [0, 1].map((dm) => /inflight (\d+)/.exec(fs.readFileSync(`${DEBUGFS}/dm${dm}/stats`, 'utf8'))?.[1] ?? '?');
    fs.rmSync(SOCKET, { force: true });
    daemon = startDaemon();
    let recovered = false;
    let why = '';
    try {
      await waitFor(() => fs.existsSync(SOCKET), 180_000, 'the restarted daemon');
      await resetFrontends();
      await waitFor(() => fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').split('virtio_rng').length > 2, 60_000, 'both rngs back in hw_random');
      recovered = await bothServed(10_000);
      if (!recovered) why = 'a frontend read nothing';
    } catch (err) {
      why = String(err.message ?? err);
    }
    results.push({ iteration: i + 1, recovered, ms: Date.now() - t0, inflightAtKill: stuck.join(','), ...(why ? { why } : {}) });
    console.log(`kill-restart ${i + 1}/${iterations}: ${recovered ? 'recovered' : `NOT recovered (${why})`} in ${Date.now() - t0} ms; requests held by the killed daemon: ${stuck.join(', ')}`);
    if (!recovered && !daemon.child.exitCode) {
      // A frontend access the killed process had taken is lost (bao-abi.md §3.11): reload the
      // dispatcher so that the next iteration starts from a clean machine.
      daemon.child.kill('SIGKILL');
      await daemon.exited;
      try {
        execFileSync('rmmod', ['bao_sim'], { timeout: 20_000 });
        execFileSync('modprobe', ['bao_sim', 'ndms=2', 'frontends=0,1']);
      } catch {
        // counted as not recovered already
      }
      daemon = startDaemon();
      await waitFor(() => rngDevices().length === 2, 60_000, 'frontends after reload').catch(() => {});
    }
  }
  daemon.child.kill('SIGTERM');
  const code = await Promise.race([daemon.exited, sleep(15_000).then(() => 'timeout')]);
  const recovered = results.filter((r) => r.recovered).length;
  const summary = { iterations, recovered, failed: iterations - recovered, lastExit: code, failures: results.filter((r) => !r.recovered) };
  console.log(`kill-restart: ${recovered} of ${iterations} runs recovered`);
  if (json) console.log(JSON.stringify(summary));
  try {
    execFileSync('rmmod', ['bao_sim'], { timeout: 20_000 });
  } catch {
    // left loaded: the guest is about to end
  }
  process.exitCode = recovered === iterations ? 0 : 1;
}

await main();
