// `baoctl trace`, the daemon's side: decoding of register accesses, the hub's drop policy (a
// tracer that stops reading is dropped, the others go on), and a device model server that pays
// one boolean check while nobody traces and pauses its hot register cells while somebody does.

import { describe, expect, it } from 'vitest';

import { CELL_LAYOUT, type DeviceModelHandle, type IoRequest, type RegisterCellTable } from '../../../../lib/dispatcher/index.js';
import { RngDevice } from '../../../../lib/devices/rng/index.js';
import { IoOp } from '../../../../lib/uapi/constants.js';
import { silentLogger } from '../../../../lib/virtio/logger.js';
import * as R from '../../../../lib/virtio/mmio-registers.js';
import { ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK } from '../../../../lib/virtio/status.js';
import { DeviceModelServer } from '../../../../lib/vmm/device-model-server.js';
import { decodeAccess, featureNames, registerName } from '../../../../lib/vmm/trace/decode.js';
import { formatTraceEvent } from '../../../../lib/vmm/trace/format.js';
import { TraceHub, type TapSource, type TraceEvent, type TraceSink } from '../../../../lib/vmm/trace/hub.js';
import { traceFilter } from '../../../../lib/vmm/trace/serve.js';

const SEL = { deviceFeaturesSel: 0, driverFeaturesSel: 0, queueSel: 0 };

describe('decoding a virtio-mmio access', () => {
  it('names every register and config space', () => {
    expect(registerName(R.MMIO_MAGIC_VALUE)).toBe('MagicValue');
    expect(registerName(R.MMIO_QUEUE_DEVICE_HIGH)).toBe('QueueDeviceHigh');
    expect(registerName(R.MMIO_CONFIG + 8)).toBe('config+0x8');
    expect(registerName(0x0e0)).toBeUndefined();
    expect(decodeAccess(4, 0x0e0, false, 0, SEL).register).toBe('?0xe0');
    expect(decodeAccess(4, 0x200, false, 0, SEL)).toEqual({ register: 'outside the window', decoded: 'offset 0x200' });
  });

  it('decodes status bits, and a Status write of 0 as the driver resetting the device', () => {
    expect(decodeAccess(4, R.MMIO_STATUS, true, ACKNOWLEDGE | DRIVER, SEL).decoded).toBe('ACKNOWLEDGE|DRIVER');
    expect(decodeAccess(4, R.MMIO_STATUS, false, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK, SEL).decoded).toBe('ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK');
    expect(decodeAccess(4, R.MMIO_STATUS, true, 0, SEL).decoded).toBe('RESET (driver resets the device)');
    expect(decodeAccess(4, R.MMIO_STATUS, false, 0, SEL).decoded).toBe('RESET');
  });

  it('names feature bits by device type and by the word FeaturesSel selects', () => {
    // word 1 of any device: VERSION_1 (32) and ACCESS_PLATFORM (33)
    expect(decodeAccess(4, R.MMIO_DEVICE_FEATURES, false, 0b11, { ...SEL, deviceFeaturesSel: 1 }).decoded).toBe('word 1: VERSION_1 ACCESS_PLATFORM');
    // word 0 of a net device: CSUM (0), MAC (5), MRG_RXBUF (15), and RING_EVENT_IDX (29)
    expect(featureNames(1, 0, (1 << 0) | (1 << 5) | (1 << 15) | (1 << 29))).toEqual(['NET_CSUM', 'NET_MAC', 'NET_MRG_RXBUF', 'RING_EVENT_IDX']);
    expect(featureNames(2, 0, 1 << 9)).toEqual(['BLK_FLUSH']);
    expect(featureNames(4, 0, 1 << 3)).toEqual(['bit3']); // rng has no device bits
    expect(decodeAccess(4, R.MMIO_DRIVER_FEATURES, true, 0, { ...SEL, driverFeaturesSel: 1 }).decoded).toBe('word 1: none');
    expect(decodeAccess(1, R.MMIO_DEVICE_FEATURES_SEL, true, 1, SEL).decoded).toBe('word 1');
  });

  it('decodes queue fields with the queue QueueSel selects, and kicks', () => {
    const q2 = { ...SEL, queueSel: 2 };
    expect(decodeAccess(1, R.MMIO_QUEUE_SEL, true, 2, SEL)).toEqual({ register: 'QueueSel', decoded: 'queue 2', queue: 2 });
    expect(decodeAccess(1, R.MMIO_QUEUE_NUM_MAX, false, 256, q2)).toEqual({ register: 'QueueNumMax', decoded: 'queue 2: up to 256 entries', queue: 2 });
    expect(decodeAccess(1, R.MMIO_QUEUE_NUM_MAX, false, 0, q2).decoded).toBe('queue 2 does not exist');
    expect(decodeAccess(1, R.MMIO_QUEUE_NUM, true, 128, q2).decoded).toBe('queue 2: 128 entries');
    expect(decodeAccess(1, R.MMIO_QUEUE_READY, true, 1, q2).decoded).toBe('queue 2: ready');
    expect(decodeAccess(1, R.MMIO_QUEUE_DRIVER_LOW, true, 0x4000_1000, q2).decoded).toBe('queue 2: driver (avail) ring address, low 32 bits 0x40001000');
    expect(decodeAccess(1, R.MMIO_QUEUE_DESC_HIGH, true, 0, q2).decoded).toBe('queue 2: descriptor table address, high 32 bits 0x0');
    expect(decodeAccess(1, R.MMIO_QUEUE_NOTIFY, true, 1, q2)).toEqual({ register: 'QueueNotify', decoded: 'kick queue 1', queue: 1 });
  });

  it('decodes the probe constants and the interrupt registers', () => {
    expect(decodeAccess(4, R.MMIO_MAGIC_VALUE, false, R.MAGIC_VALUE, SEL).decoded).toBe('"virt"');
    expect(decodeAccess(4, R.MMIO_VERSION, false, 2, SEL).decoded).toBe('modern (virtio 1.x)');
    expect(decodeAccess(4, R.MMIO_DEVICE_ID, false, 4, SEL).decoded).toBe('rng');
    expect(decodeAccess(4, R.MMIO_INTERRUPT_STATUS, false, 3, SEL).decoded).toBe('VRING|CONFIG');
    expect(decodeAccess(4, R.MMIO_INTERRUPT_ACK, true, 1, SEL).decoded).toBe('ack VRING');
    expect(decodeAccess(4, R.MMIO_INTERRUPT_STATUS, false, 0, SEL).decoded).toBe('none');
  });

  it('reads ?dm=N from the request', () => {
    expect(traceFilter('/trace')).toEqual({});
    expect(traceFilter('/trace?dm=3')).toEqual({ dm: 3 });
    expect(traceFilter('/trace?dm=x')).toMatch(/whole number/);
  });
});

class FakeSink implements TraceSink {
  lines: string[] = [];
  backlog = 0;
  ended: string | undefined;
  write(line: string): void {
    this.lines.push(line);
  }
  end(line: string): void {
    this.ended = line;
  }
  events(): TraceEvent[] {
    return this.lines.map((l) => JSON.parse(l) as TraceEvent);
  }
}

function source(dm: number, calls: string[]): TapSource {
  return {
    dm,
    type: 'rng',
    deviceId: 4,
    mmioAddr: 0x1000 * (dm + 1),
    selectors: () => SEL,
    setTransportTrace: (t) => calls.push(t === undefined ? `dm${dm} hook off` : `dm${dm} hook on`),
    hot: { pause: () => calls.push(`dm${dm} cells paused`), resume: () => calls.push(`dm${dm} cells resumed`), hits: 7 },
  };
}

describe('the trace hub', () => {
  it('turns a device model tap on only while a tracer of it is attached, pausing its hot cells', () => {
    const calls: string[] = [];
    const hub = new TraceHub();
    const tap0 = hub.register(source(0, calls));
    const tap1 = hub.register(source(1, calls));
    expect([tap0.on, tap1.on]).toEqual([false, false]);
    const a = new FakeSink();
    const subA = hub.subscribe(a, { dm: 1 });
    expect([tap0.on, tap1.on]).toEqual([false, true]);
    expect(calls).toEqual(['dm1 cells paused', 'dm1 hook on']);
    const hello = a.events()[0];
    expect(hello).toMatchObject({ kind: 'hello', filter: { dm: 1 }, devices: [{ dm: 1, type: 'rng', hotCells: 'paused', hotAccessesBefore: 7 }] });
    const b = new FakeSink();
    const subB = hub.subscribe(b);
    expect([tap0.on, tap1.on]).toEqual([true, true]);
    subA.close();
    expect(tap1.on).toBe(true); // b still watches every device model
    subB.close();
    subB.close(); // idempotent
    expect([tap0.on, tap1.on]).toEqual([false, false]);
    expect(calls.filter((c) => c.includes('resumed')).sort()).toEqual(['dm0 cells resumed', 'dm1 cells resumed']);
  });

  it('sends each device model’s events to the tracers that want them', () => {
    const hub = new TraceHub();
    const tap0 = hub.register(source(0, []));
    const tap1 = hub.register(source(1, []));
    const all = new FakeSink();
    const only1 = new FakeSink();
    hub.subscribe(all);
    hub.subscribe(only1, { dm: 1 });
    tap0.notify(0, true);
    tap1.notify(1, true);
    tap1.used(1, 5, true);
    tap1.interrupt(R.INTERRUPT_VRING);
    tap1.used(1, 2, false); // the u16 used idx wrapped: 65533 entries later
    tap0.fault('QUEUE_NUM_INVALID', { offset: 0x38, width: 4 });
    expect(all.events().slice(1).map((e) => `${e.kind}${'dm' in e ? e.dm : ''}`)).toEqual(['kick0', 'kick1', 'used1', 'interrupt1', 'used1', 'fault0']);
    expect(only1.events().slice(1).map((e) => e.kind)).toEqual(['kick', 'used', 'interrupt', 'used']);
    expect(only1.events()[4]).toMatchObject({ usedIdx: 2, entries: 65533, interrupt: false });
    expect(only1.events()[4]).not.toHaveProperty('sinceKickUs');
    const used = only1.events()[2] as Extract<TraceEvent, { kind: 'used' }>;
    expect(used).toMatchObject({ queue: 1, usedIdx: 5, interrupt: true });
    expect(used).not.toHaveProperty('entries');
    expect(used.sinceKickUs).toBeGreaterThanOrEqual(0);
  });

  it('drops a tracer whose backlog passes the bound, with a last line saying why, and keeps serving the others', () => {
    const calls: string[] = [];
    const hub = new TraceHub({ maxBacklogBytes: 1000 });
    const tap = hub.register(source(0, calls));
    const slow = new FakeSink();
    const fast = new FakeSink();
    hub.subscribe(slow);
    hub.subscribe(fast);
    tap.notify(0, true);
    slow.backlog = 1001; // it stopped reading
    tap.notify(0, true);
    expect(hub.dropped).toBe(1);
    expect(hub.tracers).toBe(1);
    expect(JSON.parse(slow.ended ?? '{}')).toMatchObject({ kind: 'dropped' });
    expect(slow.lines).toHaveLength(2); // hello and the first kick
    expect(fast.lines).toHaveLength(3);
    expect(tap.on).toBe(true);
    tap.notify(0, true);
    expect(slow.lines).toHaveLength(2);
    expect(fast.lines).toHaveLength(4);
  });

  it('ends every stream when the daemon stops, and a closed device model never turns on again', () => {
    const calls: string[] = [];
    const hub = new TraceHub();
    const tap = hub.register(source(0, calls));
    const a = new FakeSink();
    hub.subscribe(a);
    tap.close();
    expect(tap.on).toBe(false);
    expect(a.events().at(-1)).toMatchObject({ kind: 'device-removed', dm: 0 });
    hub.close('the daemon stopped');
    expect(JSON.parse(a.ended ?? '{}')).toMatchObject({ kind: 'end', reason: 'the daemon stopped' });
    expect(calls).not.toContain('dm0 cells resumed');
  });

  it('formats each event as one line', () => {
    const types = new Map<number, string>();
    const hello = formatTraceEvent(
      { kind: 'hello', t: 0, filter: {}, note: '', devices: [{ dm: 0, type: 'rng', mmioAddr: '0x1000', hotCells: 'paused', hotAccessesBefore: 3, external: false }] },
      types,
    );
    expect(hello).toMatch(/^tracing every device model: dm 0 rng at 0x1000; hot register cells paused/);
    const t = Date.UTC(2026, 11, 2, 1, 2, 3, 4) + 0.005;
    const line = formatTraceEvent({ kind: 'access', t, dm: 0, op: 'write', offset: 0x70, width: 4, value: 3, register: 'Status', decoded: 'ACKNOWLEDGE|DRIVER', us: 12 }, types);
    expect(line).toBe('01:02:03.004005 dm0 rng     W   Status            0x00000003  ACKNOWLEDGE|DRIVER  (12us)');
    expect(formatTraceEvent({ kind: 'used', t, dm: 0, queue: 0, usedIdx: 4, interrupt: false, sinceKickUs: 20_000 }, types)).toMatch(/used queue 0 idx 4, no interrupt .*, 20\.0ms after the kick$/);
    expect(formatTraceEvent({ kind: 'fault', t, dm: 0, code: 'BAD_WIDTH', detail: { offset: 0x70, width: 2 } }, types)).toMatch(/FAULT BAD_WIDTH offset=0x70 width=2$/);
  });
});

/** A device-model handle that is enough for DeviceModelServer (the full fake is in device-model-server.test.ts). */
class Handle {
  readonly info = { id: 5, shmemAddr: 0x4000_0000n, shmemSize: 1n << 20n, irq: 40 };
  readonly fd = 7;
  readonly bytes = new Uint8Array(1 << 20);
  readonly completed: { req: IoRequest; value: number }[] = [];
  deliver: ((reqs: IoRequest[]) => void) | undefined;
  cells: RegisterCellTable | undefined;
  map() {
    return { bytes: this.bytes, address: 0x7f00_0000_0000n };
  }
  createEventFd() {
    return { fd: 9, signal() {}, read: () => null, poll: () => ({ stop() {} }), close() {} };
  }
  assignIrqfd(): void {}
  deassignIrqfd(): void {}
  assignIoeventfd(): void {}
  attach(onRequests: (reqs: IoRequest[]) => void, _onError: unknown, options?: { cells?: RegisterCellTable }) {
    this.deliver = onRequests;
    this.cells = options?.cells;
    return { stop: async () => {} };
  }
  complete(req: IoRequest, value = 0): void {
    this.completed.push({ req, value });
  }
  async close(): Promise<void> {}
}

const MMIO = 0xa003e00;
let nextId = 0;
const access = (op: 'read' | 'write', offset: number, value = 0n): IoRequest => ({
  dmId: 5,
  addr: MMIO + offset,
  op: op === 'read' ? IoOp.Read : IoOp.Write,
  value,
  accessWidth: 4,
  requestId: nextId++,
});

describe('a device model server with a trace hub', () => {
  it('is untouched while nobody traces, and traces each access decoded, with its timing, while somebody does', async () => {
    const handle = new Handle();
    const hub = new TraceHub();
    const server = DeviceModelServer.start({ handle: handle as unknown as DeviceModelHandle, device: new RngDevice(), mmioAddr: MMIO, log: silentLogger, trace: hub, hotRegisters: true });
    const cells = handle.cells!;
    const published = cells.size;
    expect(published).toBeGreaterThan(0);
    expect(server.transport.trace).toBeUndefined();
    handle.deliver?.([access('read', R.MMIO_MAGIC_VALUE)]);

    const sink = new FakeSink();
    const sub = hub.subscribe(sink, { dm: 5 });
    expect(Atomics.load(cells.words, CELL_LAYOUT.count)).toBe(0); // every access now reaches JS
    expect(server.transport.trace).toBeDefined();
    const w = (offset: number, v: number) => handle.deliver?.([access('write', offset, BigInt(v))]);
    handle.deliver?.([access('read', R.MMIO_DEVICE_ID)]);
    w(R.MMIO_STATUS, 0);
    w(R.MMIO_STATUS, ACKNOWLEDGE);
    w(R.MMIO_STATUS, ACKNOWLEDGE | DRIVER);
    w(R.MMIO_DEVICE_FEATURES_SEL, 1);
    handle.deliver?.([access('read', R.MMIO_DEVICE_FEATURES)]);
    w(R.MMIO_DRIVER_FEATURES_SEL, 1);
    w(R.MMIO_DRIVER_FEATURES, 1);
    w(R.MMIO_STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    w(R.MMIO_QUEUE_SEL, 0);
    handle.deliver?.([access('read', R.MMIO_QUEUE_NUM_MAX)]);
    w(R.MMIO_QUEUE_NUM, 3); // not a power of two: a guest fault
    handle.deliver?.([{ ...access('read', R.MMIO_STATUS), accessWidth: 2 }]); // bad width
    const events = sink.events();
    const accesses = events.filter((e): e is Extract<TraceEvent, { kind: 'access' }> => e.kind === 'access');
    expect(accesses.map((a) => `${a.op} ${a.register}: ${a.decoded}`)).toEqual([
      'read DeviceID: rng',
      'write Status: RESET (driver resets the device)',
      'write Status: ACKNOWLEDGE',
      'write Status: ACKNOWLEDGE|DRIVER',
      'write DeviceFeaturesSel: word 1',
      'read DeviceFeatures: word 1: VERSION_1 ACCESS_PLATFORM',
      'write DriverFeaturesSel: word 1',
      'write DriverFeatures: word 1: VERSION_1',
      'write Status: ACKNOWLEDGE|DRIVER|FEATURES_OK',
      'write QueueSel: queue 0',
      `read QueueNumMax: queue 0: up to ${accesses.find((a) => a.register === 'QueueNumMax')?.value} entries`,
      'write QueueNum: queue 0: 3 entries',
      'read Status: RESET', // a 2-byte read is a guest fault, answered 0
    ]);
    expect(accesses.at(-1)?.width).toBe(2);
    for (const a of accesses) expect(a.us).toBeGreaterThanOrEqual(0);
    expect(events.filter((e) => e.kind === 'fault').map((e) => (e as { code: string }).code)).toEqual(['QUEUE_NUM_INVALID', 'BAD_WIDTH']);

    sub.close();
    expect(Atomics.load(cells.words, CELL_LAYOUT.count)).toBe(published); // the native answers are back
    expect(server.transport.trace).toBeUndefined();
    const before = sink.lines.length;
    w(R.MMIO_STATUS, 0);
    expect(sink.lines.length).toBe(before);
    await server.close();
    expect(hub.tracers).toBe(0);
  });
});
