// What the guest-side kill scripts share (kill-restart.mjs, kill-resume.mjs): starting `baoctl
// run` on the backend CPU with its output kept, waiting for conditions, and bao-sim's debugfs.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';

export const DEBUGFS = '/sys/kernel/debug/bao-sim';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (a throw counts as false) every 50 ms until true, or throws after `timeoutMs`. */
export async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

function keyValues(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/** dm<N>/info: mmio_base, shmem_addr, ... as strings. */
export function dmInfo(dm) {
  return keyValues(fs.readFileSync(`${DEBUGFS}/dm${dm}/info`, 'utf8'));
}

/** dm<N>/stats as numbers (requests, completions, queued, inflight, ...). */
export function dmStats(dm) {
  const out = {};
  for (const [k, v] of Object.entries(keyValues(fs.readFileSync(`${DEBUGFS}/dm${dm}/stats`, 'utf8')))) out[k] = Number(v);
  return out;
}

/**
 * `baoctl run <args>` on the backend CPU (1), JSON logs; `output()` is the last 64 KiB of its
 * stderr and stdout. `env` entries are added to the environment (test knobs).
 */
export function startDaemon(args, env) {
  const child = spawn('taskset', ['-c', '1', process.execPath, 'bin/baoctl', 'run', ...args, '--log-format', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(env === undefined ? {} : { env: { ...process.env, ...env } }),
  });
  let out = '';
  const take = (d) => (out = (out + d.toString()).slice(-65536));
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  return { child, exited, output: () => out, env };
}
