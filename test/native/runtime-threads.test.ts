// `baoctl run` gives Node's own helper threads (V8's workers) a lower priority than the
// JavaScript thread that answers every device model, and leaves libuv's pool (device I/O) and
// the JavaScript thread as they were. Real threads, real setpriority(2): a preloaded probe
// (runtime-threads-probe.cjs) reads each thread's nice value inside a real `bin/baoctl run`.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { HELPER_THREAD_NICE, lowerHelperThreads } from '../../lib/vmm/runtime-threads.js';

const root = path.resolve(import.meta.dirname, '../..');
const probe = path.join(import.meta.dirname, 'runtime-threads-probe.cjs');

function probeRun(command: string): { main: number; helpers: number[]; pool: number[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-threads-'));
  try {
    const config = path.join(dir, 'c.yaml');
    fs.writeFileSync(config, 'devices: []\n');
    const r = spawnSync(process.execPath, ['--require', probe, 'bin/baoctl', command, config, '--status-socket', 'none'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    const m = /PROBE (\{.*\})/.exec(r.stderr);
    if (m === null) throw new Error(`no probe result; output:\n${r.stdout}${r.stderr}`);
    return JSON.parse(m[1]!) as { main: number; helpers: number[]; pool: number[] };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("Node's helper threads give way to the event loop", () => {
  it('bin/baoctl run: V8\u2019s threads at nice 10, the JavaScript thread and the thread pool started later at 0', () => {
    const r = probeRun('run');
    expect(r.main).toBe(0);
    expect(r.helpers.length).toBeGreaterThan(0);
    expect(r.helpers.every((n) => n === HELPER_THREAD_NICE)).toBe(true);
    expect(r.pool.length).toBeGreaterThan(0);
    expect(r.pool.every((n) => n === 0)).toBe(true);
  });

  it('other commands leave every thread as it was', () => {
    const r = probeRun('status');
    expect([r.main, ...r.helpers]).toEqual([0, ...r.helpers.map(() => 0)]);
  });

  it('never touches the JavaScript thread, and reports a task list it cannot read instead of throwing', () => {
    expect(lowerHelperThreads({ taskDir: path.join(os.tmpdir(), 'no-such-task-dir') })).toEqual({ lowered: 0, failed: 1 });
    // Only this thread's id in a task list of its own: nothing to lower.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-tasks-'));
    try {
      fs.mkdirSync(path.join(dir, String(process.pid)));
      expect(lowerHelperThreads({ taskDir: dir })).toEqual({ lowered: 0, failed: 0 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
