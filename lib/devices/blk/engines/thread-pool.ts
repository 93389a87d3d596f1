// The engine that works everywhere: node:fs preadv/pwritev/fdatasync on libuv's thread pool,
// straight into and out of views of the guest's buffers (made from the request's IoVector:
// node:fs takes views, not spans). Each request is one pool job, so the
// pool's size bounds the I/O really in flight (the default of 4 is small for a disk: bin/baoctl
// raises UV_THREADPOOL_SIZE from the config before the pool starts, lib/vmm/block-threadpool.ts). Write-through writes go to a
// second descriptor opened with O_DSYNC, one syscall instead of a write and a sync.

import * as fs from 'node:fs';

import type { BlkEngine, IoDone } from '../engine.js';
import type { IoVector } from '../io-vector.js';

export interface ThreadPoolEngineOptions {
  /** The backing, opened read-write (or read-only for a read-only disk). */
  readonly fd: number;
  /** The same file opened with O_DSYNC, for write-through writes (absent on a read-only disk). */
  readonly dsyncFd?: number;
  /** Punches holes / zeroes ranges; absent when the host cannot (no addon). */
  readonly fallocate?: (fd: number, mode: 'punch-hole' | 'zero-range', offset: number, length: number, done: IoDone) => void;
}

export class ThreadPoolEngine implements BlkEngine {
  readonly name = 'thread-pool';
  readonly canDiscard: boolean;
  private inFlight = 0;
  private idle: (() => void) | undefined;

  constructor(private readonly options: ThreadPoolEngineOptions) {
    this.canDiscard = options.fallocate !== undefined;
  }

  read(data: IoVector, offset: number, done: IoDone): void {
    this.begin();
    this.readFrom(data.views(), offset, (err) => this.end(done, err));
  }

  write(data: IoVector, offset: number, durable: boolean, done: IoDone): void {
    this.begin();
    const fd = durable && this.options.dsyncFd !== undefined ? this.options.dsyncFd : this.options.fd;
    this.writeTo(fd, data.views(), offset, (err) => {
      if (err || !durable || this.options.dsyncFd !== undefined) {
        this.end(done, err);
        return;
      }
      fs.fdatasync(this.options.fd, (syncErr) => this.end(done, syncErr));
    });
  }

  flush(done: IoDone): void {
    this.begin();
    fs.fdatasync(this.options.fd, (err) => this.end(done, err));
  }

  discard(offset: number, length: number, done: IoDone): void {
    this.allocate('punch-hole', offset, length, done);
  }

  writeZeroes(offset: number, length: number, unmap: boolean, done: IoDone): void {
    this.allocate(unmap ? 'punch-hole' : 'zero-range', offset, length, done);
  }

  close(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle = resolve;
    });
  }

  private allocate(mode: 'punch-hole' | 'zero-range', offset: number, length: number, done: IoDone): void {
    const fallocate = this.options.fallocate;
    if (fallocate === undefined) {
      done(Object.assign(new Error('fallocate is not available'), { code: 'ENOTSUP' }));
      return;
    }
    this.begin();
    if (length === 0) {
      setImmediate(() => this.end(done, null));
      return;
    }
    fallocate(this.options.fd, mode, offset, length, (err) => this.end(done, err));
  }

  private begin(): void {
    this.inFlight += 1;
  }

  private end(done: IoDone, err: NodeJS.ErrnoException | null): void {
    this.inFlight -= 1;
    try {
      done(err);
    } finally {
      if (this.inFlight === 0 && this.idle !== undefined) {
        const idle = this.idle;
        this.idle = undefined;
        idle();
      }
    }
  }

  /** preadv until every view is full; past the end of the file the rest is zeroed. */
  private readFrom(views: readonly Uint8Array[], offset: number, done: IoDone): void {
    if (views.length === 0) {
      setImmediate(() => done(null));
      return;
    }
    fs.readv(this.options.fd, views as Uint8Array[], offset, (err, n) => {
      if (err) {
        done(err);
        return;
      }
      const rest = advance(views, n);
      if (rest.length === 0) {
        done(null);
        return;
      }
      if (n === 0) {
        for (const v of rest) v.fill(0);
        done(null);
        return;
      }
      this.readFrom(rest, offset + n, done);
    });
  }

  /** pwritev until every byte is written (a short write continues where it stopped). */
  private writeTo(fd: number, views: readonly Uint8Array[], offset: number, done: IoDone): void {
    if (views.length === 0) {
      setImmediate(() => done(null));
      return;
    }
    fs.writev(fd, views as Uint8Array[], offset, (err, n) => {
      if (err) {
        done(err);
        return;
      }
      const rest = advance(views, n);
      if (rest.length === 0) {
        done(null);
        return;
      }
      if (n === 0) {
        done(Object.assign(new Error('pwritev wrote nothing'), { code: 'EIO' }));
        return;
      }
      this.writeTo(fd, rest, offset + n, done);
    });
  }
}

/** The views left once `n` bytes of them are done. */
function advance(views: readonly Uint8Array[], n: number): Uint8Array[] {
  let skip = n;
  const out: Uint8Array[] = [];
  for (const v of views) {
    if (skip >= v.length) {
      skip -= v.length;
      continue;
    }
    out.push(skip === 0 ? v : v.subarray(skip));
    skip = 0;
  }
  return out;
}
