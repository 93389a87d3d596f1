// Shared pieces of the virtio-blk tests: request framing as Linux's virtio_blk builds it, and
// an engine whose operations complete only when the test says so (any order, any error).

import type { BlkEngine, IoDone } from '../../../../lib/devices/blk/engine.js';
import type { MockBuffer, MockQueue } from '../../../../lib/virtio/testing/mock-driver.js';
import type { IoVector } from '../../../../lib/devices/blk/io-vector.js';

export function header(type: number, sector: number | bigint = 0): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, type, true);
  view.setBigUint64(8, BigInt(sector), true);
  return bytes;
}

/** A read of `length` bytes at `sector`: header, one data buffer, status. */
export function addRead(q: MockQueue, sector: number, length: number, options: { indirect?: boolean } = {}): number {
  return q.add([{ data: header(0, sector) }, { length, writable: true }, { length: 1, writable: true }], options);
}

export function addWrite(q: MockQueue, sector: number, data: Uint8Array | readonly Uint8Array[]): number {
  const parts = data instanceof Uint8Array ? [data] : data;
  const buffers: MockBuffer[] = [{ data: header(1, sector) }, ...parts.map((d) => ({ data: d })), { length: 1, writable: true }];
  return q.add(buffers);
}

/** The status byte of a submitted chain (the last byte of its last buffer). */
export function statusOf(q: MockQueue, head: number): number {
  const buffers = q.buffers(head);
  const last = buffers[buffers.length - 1]!;
  return last[last.length - 1]!;
}

export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 1) out[i] = (seed * 31 + i * 7) & 0xff;
  return out;
}

export interface PendingOp {
  readonly op: 'read' | 'write' | 'flush' | 'discard' | 'writeZeroes';
  readonly views: readonly Uint8Array[];
  readonly offset: number;
  readonly length: number;
  readonly durable: boolean;
  readonly unmap: boolean;
  complete(err?: NodeJS.ErrnoException | null): void;
}

/** Records each operation; the test completes them (fill reads with `fillByte` first). */
export class ManualEngine implements BlkEngine {
  readonly name = 'manual';
  readonly canDiscard = true;
  readonly ops: PendingOp[] = [];

  constructor(private readonly fillByte = 0x5a) {}

  read(data: IoVector, offset: number, done: IoDone): void {
    const views = data.views();
    this.push('read', views, offset, 0, false, false, done, () => views.forEach((v) => v.fill(this.fillByte)));
  }

  write(data: IoVector, offset: number, durable: boolean, done: IoDone): void {
    this.push('write', data.views(), offset, 0, durable, false, done);
  }

  flush(done: IoDone): void {
    this.push('flush', [], 0, 0, false, false, done);
  }

  discard(offset: number, length: number, done: IoDone): void {
    this.push('discard', [], offset, length, false, false, done);
  }

  writeZeroes(offset: number, length: number, unmap: boolean, done: IoDone): void {
    this.push('writeZeroes', [], offset, length, false, unmap, done);
  }

  async close(): Promise<void> {}

  private push(
    op: PendingOp['op'],
    views: readonly Uint8Array[],
    offset: number,
    length: number,
    durable: boolean,
    unmap: boolean,
    done: IoDone,
    before?: () => void,
  ): void {
    let called = false;
    this.ops.push({
      op,
      views,
      offset,
      length,
      durable,
      unmap,
      complete: (err = null) => {
        if (called) throw new Error('completed twice');
        called = true;
        if (!err) before?.();
        done(err);
      },
    });
  }
}

export function errno(code: string, errnoValue = -5): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: failed`), { code, errno: errnoValue });
}

/** Lets setImmediate callbacks (the device's deferred notifications and budget turns) run. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
