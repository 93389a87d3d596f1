// libuv's thread pool really is sized from the config: bin/baoctl (CommonJS) sets
// UV_THREADPOOL_SIZE before Node's loaders start the pool, so the thread-pool block engine gets
// one thread per queue slot (plus libuv's 4, at most 64). Shown by the reads the pool really
// has in flight at once: blocking reads on a FIFO (one pool job each) are counted in the kernel
// (threads blocked in read(2) on it) in a `bin/baoctl run` with a preloaded probe; a
// UV_THREADPOOL_SIZE the user set wins, and a config without thread-pool disks leaves libuv's 4.
// The daemon finds no Bao device here and exits after its block device was built, which is
// enough: the pool is the process's.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';

import { configPathFromArgv, threadPoolSizeFor } from '../../lib/vmm/block-threadpool.js';
import { parseConfigText } from '../../lib/vmm/config/load.js';
import { skipBecause } from './skip.js';

const root = path.resolve(import.meta.dirname, '../..');
const probe = path.join(import.meta.dirname, 'blk-threadpool-probe.cjs');
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-threadpool-'));
  fs.writeFileSync(path.join(dir, 'disk.img'), Buffer.alloc(1 << 20));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function config(name: string, engine: string, queues: number, queueSize: number): string {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(
    file,
    [
      'devices:',
      '  - id: 0',
      '    type: block',
      `    file_path: ${path.join(dir, 'disk.img')}`,
      '    mmio_addr: 0xa003e00',
      '    irq: 47',
      '    shmem_addr: 0x50000000',
      '    shmem_size: 0x01000000',
      '    shmem_path: /dev/baoipc0',
      `    engine: ${engine}`,
      `    queues: ${queues}`,
      `    queue_size: ${queueSize}`,
      '',
    ].join('\n'),
  );
  return file;
}

interface ProbeResult {
  readonly blocked: number;
  readonly threads: number;
  readonly logged: number | undefined;
}

function runProbe(file: string, expectBlocked: number, env: Record<string, string> = {}): Promise<ProbeResult> {
  const fifo = path.join(dir, `fifo-${expectBlocked}-${Object.keys(env).length}`);
  fs.rmSync(fifo, { force: true });
  const mk = spawn('mkfifo', [fifo]);
  return new Promise((resolve, reject) => {
    mk.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`mkfifo exited ${code}`));
      const childEnv: NodeJS.ProcessEnv = { ...process.env, PROBE_FIFO: fifo, PROBE_EXPECT: String(expectBlocked), ...env };
      if (env['UV_THREADPOOL_SIZE'] === undefined) delete childEnv['UV_THREADPOOL_SIZE'];
      const child = spawn(process.execPath, ['--require', probe, 'bin/baoctl', 'run', file, '--log-format', 'json', '--status-socket', path.join(dir, 's.sock')], {
        cwd: root,
        env: childEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', () => {
        const m = /PROBE (\{.*\})/.exec(out);
        if (m === null) return reject(new Error(`no probe result; output:\n${out}`));
        const logged = /"threadpool":(\d+)/.exec(out);
        const r = JSON.parse(m[1]!) as { blocked: number; threads: number };
        resolve({ ...r, logged: logged === null ? undefined : Number(logged[1]) });
      });
    });
  });
}

describe('thread-pool sizing from the config', () => {
  it('sizes 4 + one per queue slot of thread-pool and auto disks, at most 64; io_uring disks need none', () => {
    const text = (engine: string, queues: number, size: number): string =>
      `devices:\n  - id: 0\n    type: block\n    file_path: /x.img\n    mmio_addr: 0xa003e00\n    irq: 47\n    shmem_addr: 0x50000000\n    shmem_size: 0x01000000\n    shmem_path: /dev/baoipc0\n    engine: ${engine}\n    queues: ${queues}\n    queue_size: ${size}\n`;
    expect(threadPoolSizeFor(parseConfigText(text('thread-pool', 2, 16)).config)).toBe(36);
    expect(threadPoolSizeFor(parseConfigText(text('auto', 1, 8)).config)).toBe(12);
    expect(threadPoolSizeFor(parseConfigText(text('thread-pool', 1, 256)).config)).toBe(64);
    expect(threadPoolSizeFor(parseConfigText(text('io_uring', 4, 256)).config)).toBeUndefined();
  });

  it('finds the config of `run` as the positional or -c/--config, past option values', () => {
    const file = config('argv', 'thread-pool', 1, 8);
    expect(configPathFromArgv(['run', file])).toBe(file);
    expect(configPathFromArgv(['run', '--log-format', 'json', file])).toBe(file);
    expect(configPathFromArgv(['run', '-c', file])).toBe(file);
    expect(configPathFromArgv(['run', `--config=${file}`])).toBe(file);
    expect(configPathFromArgv(['status', file])).toBeUndefined();
  });

  it('bin/baoctl run: the pool really has 36 reads in flight for 2 queues of 16; a user UV_THREADPOOL_SIZE wins; io_uring leaves 4', async (ctx: TestContext) => {
    if (process.platform !== 'linux' || !['x64', 'arm64', 'riscv64'].includes(process.arch)) skipBecause(ctx, `no read(2) syscall number known for ${process.arch}`);
    if (!fs.existsSync(path.join(root, 'dist/vmm/block-threadpool.js'))) skipBecause(ctx, 'dist/ is not built (npm run build:ts)');
    const sized = await runProbe(config('sized', 'thread-pool', 2, 16), 36);
    expect(sized.blocked).toBe(36);
    expect(sized.logged).toBe(36);
    const user = await runProbe(config('user', 'thread-pool', 2, 16), 6, { UV_THREADPOOL_SIZE: '6' });
    expect(user.blocked).toBe(6);
    expect(user.logged).toBe(6);
    const none = await runProbe(config('uring', 'io_uring', 2, 16), 4);
    expect(none.blocked).toBe(4);
    // Exactly the size asked: the two thread-pool daemons differ by the pool's threads alone.
    expect(sized.threads - user.threads).toBe(30);
  }, 300_000);
});
