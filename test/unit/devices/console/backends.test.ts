// Console backends on the host: a real unix socket in a temp dir, the PTY backend over a fake
// PtyOpener (the real one, over the addon, is tested with the addon), stdio over PassThroughs.

import { lstat, mkdtemp, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  ConsoleBackendError,
  type ConsoleBackend,
  type OpenedPty,
  openPtyBackend,
  openSocketBackend,
  openStdioBackend,
} from '../../../../lib/devices/console/index.js';

const tick = (ms = 10): Promise<void> => new Promise((r) => setTimeout(r, ms));

function collect(backend: ConsoleBackend): { input: string[]; drains: number } {
  const seen = { input: [] as string[], drains: 0 };
  backend.start({ data: (c) => void seen.input.push(Buffer.from(c).toString()), drain: () => void (seen.drains += 1) });
  return seen;
}

function connectTo(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.once('error', reject);
  });
}

function readFrom(socket: Socket): { text: () => string } {
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString()));
  return { text: () => text };
}

const write = (backend: ConsoleBackend, s: string): Promise<Error | null | undefined> =>
  new Promise((resolve) => backend.write(Buffer.from(s), resolve));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'node-bao-console-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('unix socket backend', () => {
  it('carries guest output to the client and client input to the guest', async () => {
    const path = join(dir, 'c0.sock');
    const backend = await openSocketBackend({ path });
    const seen = collect(backend);
    const client = await connectTo(path);
    const out = readFrom(client);
    await tick();
    expect(await write(backend, 'guest says hi\n')).toBeFalsy();
    client.write('user types');
    await tick();
    expect(out.text()).toBe('guest says hi\n');
    expect(seen.input.join('')).toBe('user types');
    expect(backend.description).toBe(`socket ${path}`);
    client.destroy();
    await backend.close();
  });

  it('discards and counts output while no client is connected, completing at once', async () => {
    const backend = await openSocketBackend({ path: join(dir, 'c.sock') });
    collect(backend);
    expect(backend.write(Buffer.from('lost'), () => {})).toBe(true);
    expect(backend.stats.discardedBytes).toBe(4);
    await backend.close();
  });

  it('with holdBytes, keeps that much output for the next client and discards the rest', async () => {
    const path = join(dir, 'hold.sock');
    const backend = await openSocketBackend({ path, holdBytes: 6 });
    collect(backend);
    expect(backend.write(Buffer.from('kept'), () => {})).toBe(true);
    expect(backend.write(Buffer.from('+-lost'), () => {})).toBe(true);
    expect(backend.stats.discardedBytes).toBe(4);
    const client = await connectTo(path);
    const out = readFrom(client);
    await tick(50);
    expect(out.text()).toBe('kept+-');
    client.destroy();
    await backend.close();
  });

  it('serves one client at a time and tells a second one so', async () => {
    const path = join(dir, 'c.sock');
    const backend = await openSocketBackend({ path });
    collect(backend);
    const first = await connectTo(path);
    await tick();
    const second = await connectTo(path);
    const told = readFrom(second);
    await new Promise((r) => second.once('close', r));
    expect(told.text()).toMatch(/busy/);
    first.destroy();
    await tick();
    // After the first leaves, a new client is the console.
    const third = await connectTo(path);
    const out = readFrom(third);
    await tick();
    await write(backend, 'again');
    await tick();
    expect(out.text()).toBe('again');
    third.destroy();
    await backend.close();
  });

  it('replaces a stale socket file, and removes its socket on close', async () => {
    const path = join(dir, 'stale.sock');
    // A daemon killed while listening leaves its socket file behind.
    const child = spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(child.signal).toBe('SIGKILL');
    expect((await lstat(path)).isSocket()).toBe(true);
    const backend = await openSocketBackend({ path });
    expect((await lstat(path)).isSocket()).toBe(true);
    await backend.close();
    await expect(lstat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a path where another server listens, or that is not a socket', async () => {
    const path = join(dir, 'live.sock');
    const live = createServer();
    await new Promise<void>((r) => live.listen(path, r));
    await expect(openSocketBackend({ path })).rejects.toMatchObject({ code: 'CONSOLE_SOCKET_IN_USE', field: 'socket_path' });
    await new Promise<void>((r) => live.close(() => r()));
    const file = join(dir, 'file');
    await writeFile(file, 'keep me');
    const err = await openSocketBackend({ path: file }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConsoleBackendError);
    expect(err).toMatchObject({ code: 'CONSOLE_SOCKET_PATH_OCCUPIED' });
  });

  it('reports backpressure and signals drain when a slow client catches up', async () => {
    const path = join(dir, 'slow.sock');
    const backend = await openSocketBackend({ path });
    const seen = collect(backend);
    const client = await connectTo(path);
    client.pause();
    await tick();
    const big = Buffer.alloc(1 << 20, 0x61);
    let accepted = true;
    for (let i = 0; i < 16 && accepted; i++) accepted = backend.write(big, () => {});
    expect(accepted).toBe(false);
    client.resume();
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.drains).toBe(1);
    client.destroy();
    await backend.close();
  });

  it('unblocks the device when a backpressured client disconnects (its output is then discarded)', async () => {
    const path = join(dir, 'gone.sock');
    const backend = await openSocketBackend({ path });
    const seen = collect(backend);
    const client = await connectTo(path);
    client.pause();
    await tick();
    const big = Buffer.alloc(1 << 20, 0x62);
    let accepted = true;
    for (let i = 0; i < 16 && accepted; i++) accepted = backend.write(big, () => {});
    expect(accepted).toBe(false);
    client.destroy();
    await tick(50);
    expect(seen.drains).toBe(1);
    expect(backend.write(Buffer.from('xyz'), () => {})).toBe(true);
    expect(backend.stats.discardedBytes).toBe(3);
    await backend.close();
  });

  it('pauses and resumes client input on request', async () => {
    const path = join(dir, 'p.sock');
    const backend = await openSocketBackend({ path });
    const seen = collect(backend);
    backend.pauseInput();
    const client = await connectTo(path);
    client.write('held');
    await tick(30);
    expect(seen.input).toEqual([]);
    backend.resumeInput();
    await tick(30);
    expect(seen.input.join('')).toBe('held');
    client.destroy();
    await backend.close();
  });
});

class FakePty implements OpenedPty {
  readonly input = new PassThrough();
  readonly output = new PassThrough();
  closed = 0;
  constructor(readonly path: string) {}
  async close(): Promise<void> {
    this.closed += 1;
  }
}

describe('pty backend (fake PtyOpener)', () => {
  it('creates the pty_alias symlink to the PTY and removes it on close', async () => {
    const pty = new FakePty('/dev/pts/77');
    const alias = join(dir, 'console0');
    const backend = await openPtyBackend({ opener: async () => pty, alias });
    expect(await readlink(alias)).toBe('/dev/pts/77');
    expect(backend.description).toBe(`pty /dev/pts/77 (alias ${alias})`);
    await backend.close();
    await expect(lstat(alias)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(pty.closed).toBe(1);
  });

  it('replaces a stale alias symlink, but refuses to replace a regular file', async () => {
    const alias = join(dir, 'console0');
    await symlink('/dev/pts/1', alias);
    const backend = await openPtyBackend({ opener: async () => new FakePty('/dev/pts/2'), alias });
    expect(await readlink(alias)).toBe('/dev/pts/2');
    await backend.close();

    const file = join(dir, 'precious');
    await writeFile(file, 'x');
    const pty = new FakePty('/dev/pts/3');
    await expect(openPtyBackend({ opener: async () => pty, alias: file })).rejects.toMatchObject({
      code: 'CONSOLE_PTY_ALIAS_OCCUPIED',
      field: 'pty_alias',
    });
    expect(pty.closed).toBe(1); // the PTY is not leaked
  });

  it('leaves an alias alone that someone else re-pointed meanwhile', async () => {
    const alias = join(dir, 'console0');
    const backend = await openPtyBackend({ opener: async () => new FakePty('/dev/pts/4'), alias });
    await rm(alias);
    await symlink('/dev/pts/9', alias);
    await backend.close();
    expect(await readlink(alias)).toBe('/dev/pts/9');
  });

  it('bridges master input and output', async () => {
    const pty = new FakePty('/dev/pts/5');
    const backend = await openPtyBackend({ opener: async () => pty });
    const seen = collect(backend);
    let out = '';
    pty.output.on('data', (c: Buffer) => (out += c.toString()));
    pty.input.write('typed');
    await write(backend, 'printed');
    await tick();
    expect(seen.input.join('')).toBe('typed');
    expect(out).toBe('printed');
    await backend.close();
  });

  it('never stalls the guest on a PTY nobody reads: queues up to a bound, then discards and counts', async () => {
    const pty = new FakePty('/dev/pts/6');
    const backend = await openPtyBackend({ opener: async () => pty, maxQueuedBytes: 10 });
    collect(backend);
    pty.output.pause();
    // PassThrough buffers internally; emulate a full kernel buffer through writableLength.
    const guestBuffer = Buffer.from('0123456789');
    let completed = 0;
    expect(backend.write(guestBuffer, () => (completed += 1))).toBe(true);
    guestBuffer.fill(0x78); // the guest reuses its buffer at once: the backend kept a copy
    Object.defineProperty(pty.output, 'writableLength', { value: 10 });
    expect(backend.write(Buffer.from('more'), () => (completed += 1))).toBe(true);
    expect(completed).toBe(2);
    expect(backend.stats.discardedBytes).toBe(4);
    expect((pty.output.read() as Buffer).toString()).toBe('0123456789');
    await backend.close();
  });

  it('reports an opener failure as CONSOLE_PTY_OPEN_FAILED', async () => {
    await expect(openPtyBackend({ opener: () => Promise.reject(new Error('no ptmx')) })).rejects.toMatchObject({
      code: 'CONSOLE_PTY_OPEN_FAILED',
    });
  });
});

describe('stdio backend', () => {
  it('reads stdin and writes stdout, and leaves both open on close', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const backend = openStdioBackend({ stdin, stdout });
    const seen = collect(backend);
    stdin.write('in');
    await write(backend, 'out');
    await tick();
    expect(seen.input).toEqual(['in']);
    expect((stdout.read() as Buffer).toString()).toBe('out');
    await backend.close();
    expect(stdin.destroyed || stdout.destroyed).toBe(false);
    stdin.write('after close');
    await tick();
    expect(seen.input).toEqual(['in']);
  });
});
