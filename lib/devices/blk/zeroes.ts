// WRITE_ZEROES on backings that cannot zero a range in place. The engine's writeZeroes asks for
// FALLOC_FL_ZERO_RANGE (or a hole, when the driver allows unmapping); filesystems without
// ZERO_RANGE (tmpfs, older NFS) answer EOPNOTSUPP, and a driver must not see that for a command
// it was offered. So: when the driver allowed unmapping, a hole (PUNCH_HOLE | KEEP_SIZE, the
// engine's discard: it reads back as zeros); when it did not (it wants the blocks to stay
// allocated), zeros written from a shared zero buffer, at most ZERO_CHUNK bytes per write.
// Once a backing has refused ZERO_RANGE it is not asked again (one failed syscall, not one per
// request).

import type { BlkEngine, IoDone } from './engine.js';
import { IoVector } from './io-vector.js';

/** Bytes per zero write (one shared, never-written buffer of this size). */
export const ZERO_CHUNK = 1 << 20;
let zeroBuffer: Uint8Array | undefined;

function isUnsupported(err: NodeJS.ErrnoException | null): boolean {
  return err !== null && (err.code === 'EOPNOTSUPP' || err.code === 'ENOTSUP');
}

export class ZeroWriter {
  /** ZERO_RANGE was refused by this backing: go straight to the fallback. */
  zeroRangeUnsupported = false;
  /** Same for PUNCH_HOLE (then even an unmapping request writes zeros). */
  punchHoleUnsupported = false;
  /** Requests served by a fallback (counted by the device). */
  fallbacks = 0;

  constructor(private readonly engine: BlkEngine) {}

  writeZeroes(offset: number, length: number, unmap: boolean, durable: boolean, done: IoDone): void {
    if (unmap && !this.punchHoleUnsupported) {
      this.engine.writeZeroes(offset, length, true, (err) => {
        if (!isUnsupported(err)) return done(err);
        this.punchHoleUnsupported = true;
        this.fallback(offset, length, unmap, durable, done);
      });
      return;
    }
    if (!unmap && !this.zeroRangeUnsupported) {
      this.engine.writeZeroes(offset, length, false, (err) => {
        if (!isUnsupported(err)) return done(err);
        this.zeroRangeUnsupported = true;
        this.fallback(offset, length, unmap, durable, done);
      });
      return;
    }
    this.fallback(offset, length, unmap, durable, done);
  }

  private fallback(offset: number, length: number, unmap: boolean, durable: boolean, done: IoDone): void {
    this.fallbacks += 1;
    if (unmap && !this.punchHoleUnsupported) {
      this.engine.writeZeroes(offset, length, true, done);
      return;
    }
    this.writeZeroBytes(offset, length, durable, done);
  }

  /** Zeros from the shared buffer, one chunk after another; the first error ends it. */
  private writeZeroBytes(offset: number, length: number, durable: boolean, done: IoDone): void {
    zeroBuffer ??= new Uint8Array(ZERO_CHUNK);
    const zeros = zeroBuffer;
    let at = offset;
    const end = offset + length;
    const next = (err: NodeJS.ErrnoException | null): void => {
      if (err || at >= end) {
        done(err);
        return;
      }
      const n = Math.min(ZERO_CHUNK, end - at);
      const start = at;
      at += n;
      this.engine.write(IoVector.ofViews([zeros.subarray(0, n)]), start, durable, next);
    };
    next(null);
  }
}
