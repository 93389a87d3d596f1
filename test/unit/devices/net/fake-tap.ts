// A tap double for the net device's unit tests: frames queued to "arrive" from the host,
// frames the device wrote (copied out for inspection), EAGAIN on demand, the readiness the
// device asked for, and scripted errors.

import type { TapInterface, TapQueue } from '../../../../lib/devices/net/tap.js';

export class FakeTapQueue implements TapQueue {
  /** Frames (vnet header included) the tap will hand out, oldest first. */
  readonly inbound: Uint8Array[] = [];
  /** Frames written by the device (header included), copied. */
  readonly outbound: Uint8Array[] = [];
  /** While true, writev reports EAGAIN. */
  full = false;
  readError: Error | undefined;
  writeError: Error | undefined;
  /**
   * Called with each frame written, before writev returns: the other side's stack runs inside
   * a tap write, so a test can queue its reply (an ACK) here, as the kernel would.
   */
  onWrite: ((frame: Uint8Array) => void) | undefined;
  wantReadable = false;
  wantWritable = false;
  readCalls = 0;
  private handlers: { readable: () => void; writable: () => void; error: (err: Error) => void } | undefined;

  readv(buffers: readonly Uint8Array[]): number {
    this.readCalls += 1;
    if (this.readError) throw this.readError;
    const frame = this.inbound.shift();
    if (frame === undefined) return -1;
    let at = 0;
    for (const b of buffers) {
      if (at >= frame.length) break;
      const n = Math.min(b.length, frame.length - at);
      b.set(frame.subarray(at, at + n));
      at += n;
    }
    return frame.length; // like tun: the whole length even when truncated
  }

  writev(region: Uint8Array, spans: readonly number[], count: number): number {
    if (this.writeError) throw this.writeError;
    if (this.full) return -1;
    let total = 0;
    for (let i = 0; i < count; i += 1) total += spans[2 * i + 1]!;
    const out = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < count; i += 1) {
      out.set(region.subarray(spans[2 * i]!, spans[2 * i]! + spans[2 * i + 1]!), at);
      at += spans[2 * i + 1]!;
    }
    this.outbound.push(out);
    this.onWrite?.(out);
    return total;
  }

  watch(handlers: { readable: () => void; writable: () => void; error: (err: Error) => void }): void {
    this.handlers = handlers;
  }

  want(readable: boolean, writable: boolean): void {
    this.wantReadable = readable;
    this.wantWritable = writable;
  }

  /** What libuv would do on one loop turn: call back for the readiness asked for and present. */
  poll(): void {
    if (this.wantWritable && !this.full) this.handlers?.writable();
    if (this.wantReadable && (this.inbound.length > 0 || this.readError)) this.handlers?.readable();
  }
}

export class FakeTap implements TapInterface {
  readonly queues: FakeTapQueue[];
  readonly offloads: number[] = [];
  closed = 0;

  constructor(
    readonly name = 'tap0',
    pairs = 1,
  ) {
    this.queues = Array.from({ length: pairs }, () => new FakeTapQueue());
  }

  setOffload(flags: number, done: (err: Error | null) => void): void {
    this.offloads.push(flags);
    queueMicrotask(() => done(null));
  }

  close(): void {
    this.closed += 1;
  }

  /** Poll every queue until nothing more happens (bounded). */
  pollAll(rounds = 100): void {
    for (let i = 0; i < rounds; i += 1) for (const q of this.queues) q.poll();
  }
}

/** A vnet header (12 bytes) followed by `payload`. */
export function withHeader(payload: Uint8Array, header: Partial<{ flags: number; gsoType: number; hdrLen: number; gsoSize: number; csumStart: number; csumOffset: number }> = {}): Uint8Array {
  const out = new Uint8Array(12 + payload.length);
  const v = new DataView(out.buffer);
  v.setUint8(0, header.flags ?? 0);
  v.setUint8(1, header.gsoType ?? 0);
  v.setUint16(2, header.hdrLen ?? 0, true);
  v.setUint16(4, header.gsoSize ?? 0, true);
  v.setUint16(6, header.csumStart ?? 0, true);
  v.setUint16(8, header.csumOffset ?? 0, true);
  out.set(payload, 12);
  return out;
}

export function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 1) out[i] = (i * 31 + seed) & 0xff;
  return out;
}
