// Lifetimes of the addon's native handles when things go wrong: a poll error ends the watching
// and reaches JS as an ordinary, non-fatal error; an ATTACH thread that ignores the stop signal
// outlives its owner's env without touching it; a thread that cannot be started leaves nothing
// that keeps the process alive.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { describe, expect, it } from 'vitest';

import { FdPoller } from '../../lib/dispatcher/index.js';
import { PACKAGE_ROOT, type NativeErrnoError } from '../../lib/native.js';
import { eventually, threadCount } from './leaks.js';

/** A FIFO's write end whose reader has gone: the kernel reports POLLERR on it. */
function brokenFifoWriter(): { fd: number; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bao-poll-'));
  const fifo = path.join(dir, 'f');
  const r = spawnSync('mkfifo', [fifo]);
  if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr.toString()}`);
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  fs.closeSync(reader);
  return { fd, cleanup: () => { fs.closeSync(fd); fs.rmSync(dir, { recursive: true }); } };
}

describe('a poll error', () => {
  it('stops the watcher before onError sees it, once, and start() may retry', async () => {
    const { fd, cleanup } = brokenFifoWriter();
    const errors: NativeErrnoError[] = [];
    let events = 0;
    const p = new FdPoller(fd, () => { events += 1; }, { onError: (e) => errors.push(e) }).start();
    expect(await eventually(() => errors.length > 0)).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'EBADF', syscall: 'uv_poll' });
    expect(p.active).toBe(false);
    expect(p.error).toBe(errors[0]);
    expect(events).toBe(0);
    p.start();
    expect(p.error).toBeUndefined();
    expect(await eventually(() => errors.length === 2)).toBe(true);
    p.close();
    cleanup();
  });

  it('without onError is a process warning, not an uncaught exception', async () => {
    const { fd, cleanup } = brokenFifoWriter();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const p = new FdPoller(fd, () => {}).start();
      expect(await eventually(() => warnings.some((w) => (w as NativeErrnoError).code === 'EBADF'))).toBe(true);
      expect(p.active).toBe(false);
      p.close();
    } finally {
      process.off('warning', onWarning);
      cleanup();
    }
  });
});

describe('an ATTACH thread that ignores the stop signal', () => {
  it('is given up at env teardown and never touches its freed owner or env', async () => {
    // The worker's env is torn down while its loop's thread is deaf to signals for 3 s (the
    // test stand-in for a driver that never returns from ATTACH): teardown waits 2 s, detaches
    // it and frees the loop; when the thread wakes it must end on its own, touching nothing.
    const fd = fs.openSync('/dev/null', 'r');
    const threads = threadCount();
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.gyp)(workerData.root);
      globalThis.keep = new addon.AttachLoop(workerData.fd, 0, () => {}, { testStallMs: 3000 });
      parentPort.postMessage('started');
    `;
    const worker = new Worker(code, {
      eval: true,
      workerData: { fd, root: PACKAGE_ROOT, gyp: require.resolve('node-gyp-build') },
    });
    await new Promise<void>((resolve) => worker.once('message', () => resolve()));
    const exit = await worker.terminate();
    expect(exit).toBe(1);
    // The stalled thread ends by itself after its 3 s (the worker's own threads went earlier).
    expect(await eventually(() => threadCount() <= threads, 5000)).toBe(true);
    // Still alive, and the addon still works in this env.
    fs.closeSync(fd);
  }, 15_000);
});

describe('an abandoned ATTACH thread with a request journal', () => {
  it('keeps the journal mapping it may still hand the kernel, after its env is gone', async () => {
    // As above, with a journal in a mapped file: the stalled thread holds an armed slot as its
    // ATTACH buffer. The worker's teardown frees the ArrayBuffer; the mapping must stay (the
    // kernel could write a request there), and the thread must end without faulting on it.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-journal-pin-'));
    const file = path.join(dir, 'dm0.state');
    fs.writeFileSync(file, Buffer.alloc(16384));
    const fd = fs.openSync('/dev/null', 'r');
    const threads = threadCount();
    const code = `
      const fs = require('node:fs');
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.gyp)(workerData.root);
      const jfd = fs.openSync(workerData.file, 'r+');
      const mapping = addon.mmap(jfd, 16384, 0, 3);
      fs.closeSync(jfd);
      globalThis.keep = new addon.AttachLoop(workerData.fd, 0, () => {}, { journal: mapping, journalOffset: 64, journalSlots: 64, testStallMs: 3000 });
      parentPort.postMessage('started');
    `;
    const mapped = (): boolean => fs.readFileSync('/proc/self/maps', 'utf8').includes(file);
    try {
      const worker = new Worker(code, {
        eval: true,
        workerData: { fd, file, root: PACKAGE_ROOT, gyp: require.resolve('node-gyp-build') },
      });
      await new Promise<void>((resolve) => worker.once('message', () => resolve()));
      expect(mapped()).toBe(true);
      expect(await worker.terminate()).toBe(1);
      expect(await eventually(() => threadCount() <= threads, 5000)).toBe(true);
      // Pinned: still mapped after the env and its ArrayBuffer went (a few pages, for the process's life).
      expect(mapped()).toBe(true);
      // The slot it armed is left as it was (ARMED, the marker): given up, it touches nothing.
      expect(fs.readFileSync(file).readUInt32LE(64)).toBe(4);
    } finally {
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 15_000);
});

describe('an ATTACH thread that cannot be started', () => {
  it('throws the errno error and leaves nothing that keeps the process alive', () => {
    // In a child whose address space is capped just above its current size: the thread's stack
    // cannot be mapped, pthread_create fails with EAGAIN. The child must then exit by itself.
    const script = `
      const fs = require('node:fs');
      const { execFileSync } = require('node:child_process');
      const addon = require(${JSON.stringify(require.resolve('node-gyp-build'))})(${JSON.stringify(PACKAGE_ROOT)});
      const fd = fs.openSync('/dev/null', 'r');
      const size = () => Number(/VmSize:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      execFileSync('prlimit', ['--pid', String(process.pid), '--as=' + (size() + (2 << 20))]);
      try {
        new addon.AttachLoop(fd, 0, () => {});
        console.log('started');
      } catch (e) {
        console.log('error ' + e.code + ' ' + e.syscall);
      }
    `;
    const r = spawnSync(process.execPath, ['-e', script], { timeout: 10_000, encoding: 'utf8' });
    expect(r.error).toBeUndefined(); // not killed by the timeout: nothing kept the loop alive
    expect(r.stdout.trim()).toBe('error EAGAIN pthread_create');
    expect(r.status).toBe(0);
  });
});
