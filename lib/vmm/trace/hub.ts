// TraceHub: the daemon's side of `baoctl trace`. Each device model server registers a DeviceTap;
// tracers (the status socket's GET /trace streams) subscribe, for every device model or one.
//
// Costs while nobody traces: the tap's `on` is false and the transport's `trace` hook undefined,
// so the hot path pays one boolean check per batch, per completion and per interrupt; nothing is
// decoded, timed or allocated. While a tracer watches a device model:
// - its hot register cells (lib/vmm/hot-registers.ts) are paused, so that every access, the
//   probe's constant reads and each interrupt's InterruptStatus read and ACK included, reaches
//   JavaScript and is traced one by one, in order, with its timing (the native answers would
//   only be known as counts). The cells resume when the last tracer of that device model leaves;
//   `hello` says how many accesses they answered before.
// - each event is encoded once (one JSON line) and written to every subscriber that wants it.
//
// A tracer never slows the daemon: writes never wait. Each subscriber has a bounded backlog (what
// it has not read yet, in bytes); a subscriber past it is dropped (its stream ends with a
// `dropped` line) and the others go on. Several tracers may watch at once.

import { performance } from 'node:perf_hooks';

import type { IoRequest } from '../../dispatcher/index.js';
import { low32 } from '../../dispatcher/request.js';
import { IoOp } from '../../uapi/constants.js';
import type { Logger } from '../../virtio/logger.js';
import type { TransportTrace } from '../../virtio/mmio-transport.js';
import { decodeAccess, type Selectors } from './decode.js';

/** Default bound on what one tracer may leave unread before it is dropped. */
export const DEFAULT_TRACE_BACKLOG_BYTES = 1 << 20;

/** What the daemon knows of one device model, for its tap. */
export interface TapSource {
  /** The device model id (the config entry's `id`). */
  readonly dm: number;
  /** The device type's short name ("rng", "console", ...). */
  readonly type: string;
  /** The virtio Device ID (feature bits are named by it). */
  readonly deviceId: number;
  /** The window's guest-physical base. */
  readonly mmioAddr: number;
  /** The transport's selector registers now. */
  selectors(): Selectors;
  /** Install (or, with undefined, remove) the transport's trace hook. */
  setTransportTrace(trace: TransportTrace | undefined): void;
  /** The hot register cells, if this device model has them. */
  readonly hot?: { pause(): void; resume(): void; readonly hits: number };
  /** A data plane outside this process (vhost) whose kicks and used buffers the trace cannot see. */
  readonly external?: boolean;
}

/** Where a tracer's lines go: a stream that never blocks the caller. */
export interface TraceSink {
  /** Queue one line (it ends with "\n"). */
  write(line: string): void;
  /** Bytes written and not yet taken by the reader. */
  readonly backlog: number;
  /** Queue `line` as the last one and end the stream. */
  end(line: string): void;
}

export type TraceEvent =
  | {
      readonly kind: 'access';
      readonly t: number;
      readonly dm: number;
      readonly op: 'read' | 'write' | 'bad-op';
      readonly offset: number;
      readonly width: number;
      readonly value: number;
      readonly register: string;
      readonly decoded: string;
      readonly queue?: number;
      /** From the request reaching JavaScript to its COMPLETE, in microseconds. */
      readonly us: number;
    }
  | { readonly kind: 'kick'; readonly t: number; readonly dm: number; readonly queue: number; readonly delivered: boolean }
  | {
      readonly kind: 'used';
      readonly t: number;
      readonly dm: number;
      readonly queue: number;
      readonly usedIdx: number;
      /** Used entries published since this trace's previous `used` event of the queue (absent for its first). */
      readonly entries?: number;
      readonly interrupt: boolean;
      /** Since the queue's first kick not yet answered by used buffers, in microseconds. */
      readonly sinceKickUs?: number;
    }
  | { readonly kind: 'interrupt'; readonly t: number; readonly dm: number; readonly interruptStatus: number; readonly decoded: string }
  | { readonly kind: 'fault'; readonly t: number; readonly dm: number; readonly code: string; readonly detail: Readonly<Record<string, unknown>> }
  | { readonly kind: 'needs-reset'; readonly t: number; readonly dm: number; readonly reason: string }
  | { readonly kind: 'device-added'; readonly t: number; readonly dm: number; readonly type: string }
  | { readonly kind: 'device-removed'; readonly t: number; readonly dm: number; readonly type: string }
  | { readonly kind: 'hello'; readonly t: number; readonly filter: { readonly dm?: number }; readonly devices: readonly TracedDevice[]; readonly note: string }
  | { readonly kind: 'end'; readonly t: number; readonly reason: string }
  | { readonly kind: 'dropped'; readonly t: number; readonly reason: string };

export interface TracedDevice {
  readonly dm: number;
  readonly type: string;
  readonly mmioAddr: string;
  /** 'paused' while traced, 'none' when this device model answers everything in JS. */
  readonly hotCells: 'paused' | 'none';
  /** Accesses the hot cells answered natively before this trace began. */
  readonly hotAccessesBefore: number;
  readonly external: boolean;
}

/** Wall-clock milliseconds with sub-millisecond precision. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

interface Subscriber {
  readonly sink: TraceSink;
  readonly dm: number | undefined;
  closed: boolean;
}

export interface TraceSubscription {
  /** Stop tracing (the reader went away); idempotent. */
  close(): void;
}

export class TraceHub {
  private readonly taps = new Set<DeviceTap>();
  private readonly subscribers = new Set<Subscriber>();
  private readonly maxBacklog: number;
  private readonly log: Logger | undefined;
  /** Tracers dropped because they did not read. */
  dropped = 0;

  constructor(options: { readonly maxBacklogBytes?: number; readonly log?: Logger } = {}) {
    this.maxBacklog = options.maxBacklogBytes ?? DEFAULT_TRACE_BACKLOG_BYTES;
    this.log = options.log;
  }

  /** A device model starts serving: its tap (off until a tracer wants it). */
  register(source: TapSource): DeviceTap {
    const tap = new DeviceTap(this, source);
    this.taps.add(tap);
    for (const s of this.subscribers) if (wants(s, source.dm)) tap.attach();
    this.publish(source.dm, { kind: 'device-added', t: now(), dm: source.dm, type: source.type });
    return tap;
  }

  /** @internal DeviceTap.close */
  unregister(tap: DeviceTap): void {
    if (!this.taps.delete(tap)) return;
    this.publish(tap.source.dm, { kind: 'device-removed', t: now(), dm: tap.source.dm, type: tap.source.type });
  }

  get tracers(): number {
    return this.subscribers.size;
  }

  /** A tracer for device model `dm` (all when undefined); its first line is `hello`. */
  subscribe(sink: TraceSink, filter: { readonly dm?: number } = {}): TraceSubscription {
    const sub: Subscriber = { sink, dm: filter.dm, closed: false };
    const devices: TracedDevice[] = [];
    for (const tap of this.taps) {
      if (!wants(sub, tap.source.dm)) continue;
      const hits = tap.source.hot?.hits ?? 0;
      tap.attach();
      devices.push({
        dm: tap.source.dm,
        type: tap.source.type,
        mmioAddr: `0x${tap.source.mmioAddr.toString(16)}`,
        hotCells: tap.source.hot === undefined ? 'none' : 'paused',
        hotAccessesBefore: hits,
        external: tap.source.external === true,
      });
    }
    this.subscribers.add(sub);
    const note =
      'hot register cells are paused while traced: every access reaches JavaScript and is shown; ' +
      'they resume when the last tracer of a device model leaves';
    sink.write(line({ kind: 'hello', t: now(), filter: filter.dm === undefined ? {} : { dm: filter.dm }, devices, note }));
    return { close: () => this.leave(sub) };
  }

  private leave(sub: Subscriber): void {
    if (sub.closed) return;
    sub.closed = true;
    this.subscribers.delete(sub);
    for (const tap of this.taps) if (wants(sub, tap.source.dm)) tap.detach();
  }

  /** Ends every tracer's stream (the daemon stops). */
  close(reason: string): void {
    for (const sub of [...this.subscribers]) {
      this.leave(sub);
      sub.sink.end(line({ kind: 'end', t: now(), reason }));
    }
  }

  /** @internal Sends one event of device model `dm` to whoever traces it. */
  publish(dm: number, event: TraceEvent): void {
    let text: string | undefined;
    for (const sub of this.subscribers) {
      if (!wants(sub, dm)) continue;
      if (sub.sink.backlog > this.maxBacklog) {
        this.drop(sub);
        continue;
      }
      text ??= line(event);
      sub.sink.write(text);
    }
  }

  private drop(sub: Subscriber): void {
    this.dropped += 1;
    this.leave(sub);
    const reason = `this tracer left more than ${this.maxBacklog} bytes unread: dropped so that the daemon is not slowed (trace fewer device models with --dm, or read faster)`;
    this.log?.warn({ backlog: sub.sink.backlog, dropped: this.dropped }, 'trace: a tracer that stopped reading was dropped');
    sub.sink.end(line({ kind: 'dropped', t: now(), reason }));
  }
}

function wants(sub: Subscriber, dm: number): boolean {
  return sub.dm === undefined || sub.dm === dm;
}

function line(event: TraceEvent): string {
  return `${JSON.stringify(event, (_key, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}\n`;
}

const INTERRUPT_NAMES = ['VRING', 'CONFIG'] as const;

/**
 * One device model's tap. `on` is the hot path's only check; everything else runs only while a
 * tracer watches this device model.
 */
export class DeviceTap implements TransportTrace {
  /** True while at least one tracer watches this device model. */
  on = false;
  private watchers = 0;
  /** Arrival times (ms) of requests not yet completed. */
  private readonly arrivals = new Map<IoRequest, number>();
  /** Per queue: when its first unanswered kick came (ms). */
  private readonly kickedAt = new Map<number, number>();
  /** Per queue: the used idx of the previous `used` event. */
  private readonly lastUsed = new Map<number, number>();
  private closed = false;

  constructor(
    private readonly hub: TraceHub,
    readonly source: TapSource,
  ) {}

  /** @internal TraceHub */
  attach(): void {
    this.watchers += 1;
    if (this.watchers > 1 || this.closed) return;
    this.on = true;
    this.source.hot?.pause();
    this.source.setTransportTrace(this);
  }

  /** @internal TraceHub */
  detach(): void {
    if (this.watchers === 0) return;
    this.watchers -= 1;
    if (this.watchers > 0) return;
    this.on = false;
    this.source.setTransportTrace(undefined);
    if (!this.closed) this.source.hot?.resume();
    this.arrivals.clear();
    this.kickedAt.clear();
    this.lastUsed.clear();
  }

  /** The device model stops serving. */
  close(): void {
    this.closed = true;
    this.on = false;
    this.source.setTransportTrace(undefined);
    this.hub.unregister(this);
  }

  /** A batch of trapped accesses reached JavaScript. */
  arrived(requests: readonly IoRequest[]): void {
    const t = now();
    for (const r of requests) this.arrivals.set(r, t);
  }

  /** An access was completed; `readValue` is what a read returned. */
  completed(req: IoRequest, readValue: number): void {
    const t = now();
    const from = this.arrivals.get(req);
    this.arrivals.delete(req);
    const offset = req.addr - this.source.mmioAddr;
    const width = req.accessWidth;
    const op = req.op === IoOp.Read ? 'read' : req.op === IoOp.Write ? 'write' : 'bad-op';
    const raw = op === 'write' ? low32(req.value) : readValue;
    const value = width >= 4 ? raw >>> 0 : raw & ((1 << (8 * width)) - 1);
    const d = decodeAccess(this.source.deviceId, offset, op === 'write', value, this.source.selectors());
    this.hub.publish(this.source.dm, {
      kind: 'access',
      t,
      dm: this.source.dm,
      op,
      offset,
      width,
      value,
      register: d.register,
      decoded: op === 'bad-op' ? `op ${req.op} is neither read nor write: answered 0` : d.decoded,
      ...(d.queue === undefined ? {} : { queue: d.queue }),
      us: from === undefined ? 0 : Math.round((t - from) * 1000),
    });
  }

  /** The frontend's interrupt was raised; `interruptStatus` as it stands. */
  interrupt(interruptStatus: number): void {
    const names = INTERRUPT_NAMES.filter((_, i) => (interruptStatus & (1 << i)) !== 0);
    this.hub.publish(this.source.dm, {
      kind: 'interrupt',
      t: now(),
      dm: this.source.dm,
      interruptStatus,
      decoded: names.length === 0 ? 'none' : names.join('|'),
    });
  }

  notify(queue: number, delivered: boolean): void {
    const t = now();
    if (delivered && !this.kickedAt.has(queue)) this.kickedAt.set(queue, t);
    this.hub.publish(this.source.dm, { kind: 'kick', t, dm: this.source.dm, queue, delivered });
  }

  used(queue: number, usedIdx: number, interrupt: boolean): void {
    const t = now();
    const kicked = this.kickedAt.get(queue);
    this.kickedAt.delete(queue);
    const previous = this.lastUsed.get(queue);
    this.lastUsed.set(queue, usedIdx);
    this.hub.publish(this.source.dm, {
      kind: 'used',
      t,
      dm: this.source.dm,
      queue,
      usedIdx,
      ...(previous === undefined ? {} : { entries: (usedIdx - previous) & 0xffff }),
      interrupt,
      ...(kicked === undefined ? {} : { sinceKickUs: Math.round((t - kicked) * 1000) }),
    });
  }

  fault(code: string, detail: Readonly<Record<string, unknown>>): void {
    this.hub.publish(this.source.dm, { kind: 'fault', t: now(), dm: this.source.dm, code, detail });
  }

  needsReset(reason: string): void {
    this.hub.publish(this.source.dm, { kind: 'needs-reset', t: now(), dm: this.source.dm, reason });
  }
}

/** The tap of a device model nobody can trace (no hub): always off. */
export const NO_TAP: Pick<DeviceTap, 'on' | 'arrived' | 'completed' | 'interrupt' | 'close'> = {
  on: false,
  arrived: () => {},
  completed: () => {},
  interrupt: () => {},
  close: () => {},
};
