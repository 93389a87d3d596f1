// DeviceModelServer, the hot path between a Bao device model and a device's MmioTransport,
// driven through a stand-in for the device-model handle (the real one is exercised against
// bao-sim in test/qemu). Each trapped access must be answered exactly once, with the value the
// hypervisor needs, whatever the frontend sent.

import { describe, expect, it, vi } from 'vitest';

import { CELL_LAYOUT, type DeviceModelHandle, type IoRequest, type RegisterCellTable } from '../../../lib/dispatcher/index.js';
import { IoOp } from '../../../lib/uapi/constants.js';
import { RngDevice } from '../../../lib/devices/rng/index.js';
import { silentLogger } from '../../../lib/virtio/logger.js';
import * as R from '../../../lib/virtio/mmio-registers.js';
import { ACKNOWLEDGE, DEVICE_NEEDS_RESET, DRIVER, DRIVER_OK, FEATURES_OK } from '../../../lib/virtio/status.js';
import { DeviceModelServer, REQUEST_SLICE, REQUEST_SLICE_MS } from '../../../lib/vmm/device-model-server.js';
import { SharedDeadlines, type KickClock } from '../../../lib/vmm/kick-clock.js';
import type { ExternalQueueHost } from '../../../lib/virtio/device.js';

const MMIO = 0xa003e00;
const SHMEM = 0x4000_0000;

class FakeEventFd {
  static nextFd = 100;
  readonly fd = FakeEventFd.nextFd++;
  signals = 0;
  closed = false;
  onReadable: (() => void) | undefined;
  onPollError: ((err: Error) => void) | undefined;
  pollerStopped = false;
  failRead: Error | undefined;
  pending = 0n;
  signal(): void {
    this.signals += 1;
  }
  read(): bigint | null {
    if (this.failRead !== undefined) throw this.failRead;
    const v = this.pending;
    this.pending = 0n;
    return v === 0n ? null : v;
  }
  poll(cb: () => void, options: { onError?: (err: Error) => void } = {}) {
    this.onReadable = cb;
    this.onPollError = options.onError;
    return { stop: () => void (this.pollerStopped = true) };
  }
  close(): void {
    this.closed = true;
  }
  /** What the kernel does when a QueueNotify write matches this ioeventfd. */
  kick(): void {
    this.pending += 1n;
    this.onReadable?.();
  }
}

class FakeHandle {
  readonly info = { id: 3, shmemAddr: BigInt(SHMEM), shmemSize: 1n << 20n, irq: 40 };
  readonly bytes = new Uint8Array(1 << 20);
  readonly completed: { req: IoRequest; value: number | bigint }[] = [];
  readonly ioeventfds: { eventfd: FakeEventFd; addr: number | bigint; len: number; datamatch?: number | bigint }[] = [];
  readonly eventfds: FakeEventFd[] = [];
  readonly events: string[] = [];
  irqfd: FakeEventFd | undefined;
  rejectNext = false;
  /** createEventFd throws EMFILE from this call on (0 = the irqfd's). */
  failEventFdFrom: number | undefined;
  deliver: ((reqs: IoRequest[]) => void) | undefined;
  attachOptions: { cells?: RegisterCellTable } | undefined;

  readonly fd = 7;
  map() {
    return { bytes: this.bytes, address: 0x7f00_0000_0000n };
  }
  createEventFd(): FakeEventFd {
    if (this.failEventFdFrom !== undefined && this.eventfds.length >= this.failEventFdFrom) {
      throw Object.assign(new Error('EMFILE: too many open files, eventfd'), { code: 'EMFILE' });
    }
    const e = new FakeEventFd();
    this.eventfds.push(e);
    return e;
  }
  assignIrqfd(e: FakeEventFd): void {
    this.irqfd = e;
  }
  deassignIrqfd(): void {
    this.events.push('irqfd deassigned');
  }
  assignIoeventfd(spec: FakeHandle['ioeventfds'][number]): void {
    this.ioeventfds.push(spec);
  }
  attach(onRequests: (reqs: IoRequest[]) => void, _onError: unknown, options?: { cells?: RegisterCellTable }) {
    this.deliver = onRequests;
    this.attachOptions = options;
    return {
      stop: async () => {
        this.events.push('loop stopped');
      },
    };
  }
  complete(req: IoRequest, value: number | bigint = 0): void {
    if (this.rejectNext) {
      this.rejectNext = false;
      throw Object.assign(new Error('rejected'), { code: 'BAO_COMPLETE_REJECTED' });
    }
    this.completed.push({ req, value });
  }
  async close(): Promise<void> {
    this.events.push('handle closed');
  }
}

let nextId = 0;
function access(op: 'read' | 'write', offset: number, width = 4, value: bigint = 0n, addr = MMIO + offset): IoRequest {
  return { dmId: 3, addr, op: op === 'read' ? IoOp.Read : IoOp.Write, value, accessWidth: width, requestId: nextId++ };
}

function setup(log = silentLogger, options: { handle?: FakeHandle; resetTimeoutMs?: number; kickClock?: KickClock; now?: () => number } = {}) {
  const handle = options.handle ?? new FakeHandle();
  const device = new RngDevice();
  const server = DeviceModelServer.start({
    handle: handle as unknown as DeviceModelHandle,
    device,
    mmioAddr: MMIO,
    log,
    ...(options.resetTimeoutMs === undefined ? {} : { resetTimeoutMs: options.resetTimeoutMs }),
    ...(options.kickClock === undefined ? {} : { kickClock: options.kickClock }),
    // A clock that stands still unless a test brings its own: a burst's slice then ends on its
    // count, never on how fast a cold JIT ran its first accesses on a busy machine.
    now: options.now ?? (() => 0),
  });
  const send = (...reqs: IoRequest[]) => handle.deliver?.(reqs);
  const read = (offset: number, width = 4): number | bigint => {
    send(access('read', offset, width));
    return handle.completed.at(-1)?.value ?? -1;
  };
  const write = (offset: number, value: number | bigint, width = 4) => send(access('write', offset, width, BigInt(value)));
  /** The Linux virtio_mmio probe and setup of queue 0, as register accesses. */
  const bringUp = () => {
    write(R.MMIO_STATUS, 0);
    write(R.MMIO_STATUS, ACKNOWLEDGE);
    write(R.MMIO_STATUS, ACKNOWLEDGE | DRIVER);
    write(R.MMIO_DRIVER_FEATURES_SEL, 1);
    write(R.MMIO_DRIVER_FEATURES, 1); // VERSION_1
    write(R.MMIO_STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    write(R.MMIO_QUEUE_SEL, 0);
    write(R.MMIO_QUEUE_NUM, 16);
    write(R.MMIO_QUEUE_DESC_LOW, SHMEM);
    write(R.MMIO_QUEUE_DRIVER_LOW, SHMEM + 0x1000);
    write(R.MMIO_QUEUE_DEVICE_LOW, SHMEM + 0x2000);
    write(R.MMIO_QUEUE_READY, 1);
    write(R.MMIO_STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  };
  /** One writable 16-byte buffer on queue 0 (descriptor 0, avail entry 0, avail idx 1), not kicked. */
  const offerBuffer = (): DataView => {
    const mem = new DataView(handle.bytes.buffer);
    mem.setBigUint64(0, BigInt(SHMEM + 0x8000), true);
    mem.setUint32(8, 16, true);
    mem.setUint16(12, 2, true); // VIRTQ_DESC_F_WRITE
    mem.setUint16(0x1000 + 4, 0, true);
    mem.setUint16(0x1000 + 2, 1, true);
    return mem;
  };
  return { handle, device, server, send, read, write, bringUp, offerBuffer };
}

describe('DeviceModelServer', () => {
  it('answers register reads from the transport, zero-extended, and completes every request once', () => {
    const { handle, read } = setup();
    expect(read(R.MMIO_MAGIC_VALUE)).toBe(R.MAGIC_VALUE);
    expect(read(R.MMIO_DEVICE_ID)).toBe(4);
    expect(handle.completed).toHaveLength(2);
    expect(handle.completed.every((c) => typeof c.value === 'number' && c.value >= 0)).toBe(true);
  });

  it('completes an access outside its virtio-mmio window with 0 and counts it, without touching the device', () => {
    const { handle, server, send } = setup();
    send(access('read', 0, 4, 0n, MMIO - 4), access('write', 0, 4, 7n, MMIO + R.MMIO_WINDOW_SIZE));
    expect(handle.completed.map((c) => c.value)).toEqual([0, 0]);
    expect(server.stats.strayAccesses).toBe(2);
    expect(server.transport.status).toBe(0);
  });

  it('masks write data to the access width (the hypervisor passes the whole source register)', () => {
    const { server, write } = setup();
    write(R.MMIO_STATUS, 0xffff_ffff_0000_0001n);
    expect(server.transport.status).toBe(ACKNOWLEDGE);
  });

  it('keeps serving after the hypervisor rejects a completion, and counts the rejection', () => {
    const { handle, server, read } = setup();
    handle.rejectNext = true;
    read(R.MMIO_MAGIC_VALUE);
    expect(server.stats.rejectedCompletions).toBe(1);
    expect(read(R.MMIO_VERSION)).toBe(2);
  });

  it('registers one QueueNotify ioeventfd per enabled queue at DRIVER_OK, once for the life of the device model', () => {
    const { handle, write, bringUp } = setup();
    bringUp();
    expect(handle.ioeventfds).toEqual([expect.objectContaining({ addr: MMIO + R.MMIO_QUEUE_NOTIFY, len: 4, datamatch: 0 })]);
    // Reset and re-activation: DEASSIGN is broken in the drivers (spec §3.7), so the same
    // registration must keep serving instead of piling up new ones.
    write(R.MMIO_STATUS, 0);
    bringUp();
    expect(handle.ioeventfds).toHaveLength(1);
  });

  it('routes an ioeventfd kick to the device, which raises the irqfd after setting InterruptStatus', () => {
    const { handle, server, bringUp, offerBuffer } = setup();
    bringUp();
    const mem = offerBuffer();
    handle.ioeventfds[0]?.eventfd.kick();
    expect(server.stats.ioeventfdKicks).toBe(1);
    expect(mem.getUint16(0x2000 + 2, true)).toBe(1); // used idx
    expect(mem.getUint32(0x2000 + 4 + 4, true)).toBe(16); // used len
    expect(server.transport.interruptStatus & R.INTERRUPT_VRING).toBe(R.INTERRUPT_VRING);
    expect(handle.irqfd?.signals).toBe(1);
  });

  it('serves buffers whose kick went astray (a stale ioeventfd) through the kick watchdog, and says why', () => {
    vi.useFakeTimers();
    try {
      const warnings: string[] = [];
      const log = { ...silentLogger, warn: (_o: object, msg?: string) => void warnings.push(msg ?? ''), child: () => log };
      const { handle, server, bringUp, offerBuffer } = setup(log);
      bringUp();
      const mem = offerBuffer(); // and no kick
      vi.advanceTimersByTime(120);
      expect(mem.getUint16(0x2000 + 2, true)).toBe(1); // used idx
      expect(handle.irqfd?.signals).toBe(1);
      expect(server.stats.watchdogFinds).toBe(1);
      expect(warnings.join('\n')).toMatch(/kicks are not reaching this process.*ioeventfds/);
    } finally {
      vi.useRealTimers();
    }
  });

  it('does not look at the rings at all before a driver activates the device', () => {
    vi.useFakeTimers();
    try {
      const { server } = setup();
      const looks = vi.spyOn(server.transport, 'serveUnkicked');
      vi.advanceTimersByTime(60_000);
      expect(looks.mock.calls.length).toBeLessThanOrEqual(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('costs (almost) nothing while idle: the kick watchdog backs off to a look every 2 s', () => {
    vi.useFakeTimers();
    try {
      const { server, bringUp } = setup();
      bringUp();
      const looks = vi.spyOn(server.transport, 'serveUnkicked');
      vi.advanceTimersByTime(60_000);
      // 50 ms doubling to 2 s: 6 looks in the first 3.15 s, then one every 2 s.
      expect(looks.mock.calls.length).toBeLessThanOrEqual(36);
      expect(server.stats.watchdogFinds).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('wakes the process together with the other device models given the same kick clock: one timer expiry per deadline', () => {
    vi.useFakeTimers();
    try {
      const clock = new SharedDeadlines();
      const servers = Array.from({ length: 4 }, () => {
        const s = setup(silentLogger, { kickClock: clock });
        s.bringUp();
        vi.advanceTimersByTime(7); // brought up one after the other
        return s.server;
      });
      vi.advanceTimersByTime(10_000);
      const looks = servers.map((s) => vi.spyOn(s.transport, 'serveUnkicked'));
      const before = clock.wakeups;
      vi.advanceTimersByTime(60_000);
      for (const l of looks) expect(l.mock.calls.length).toBe(30);
      expect(clock.wakeups - before).toBe(30);
    } finally {
      vi.useRealTimers();
    }
  });

  it('hands the ATTACH loop its hot register cells, whose InterruptStatus word is the transport\u2019s', () => {
    const { handle, server, bringUp, offerBuffer } = setup();
    const cells = handle.attachOptions?.cells;
    expect(cells?.size).toBe(6); // 4 probe constants, InterruptStatus, InterruptACK
    const w = cells?.words ?? new Int32Array(0);
    const cellAddr = (n: number) => w[CELL_LAYOUT.headerWords + n * CELL_LAYOUT.cellWords + CELL_LAYOUT.addrLow];
    expect([0, 1, 2, 3, 4, 5].map(cellAddr)).toEqual([0x00, 0x04, 0x08, 0x0c, 0x60, 0x64].map((o) => MMIO + o));
    const isrIndex = w[CELL_LAYOUT.headerWords + 4 * CELL_LAYOUT.cellWords + CELL_LAYOUT.valueIndex] ?? -1;
    bringUp();
    offerBuffer();
    handle.eventfds.at(-1)?.kick();
    expect(server.transport.interruptStatus).toBe(R.INTERRUPT_VRING);
    expect(Atomics.load(w, isrIndex)).toBe(R.INTERRUPT_VRING); // what the native thread answers
    expect(server.snapshot().server.hotAccesses).toBe(0);
  });

  it('answers everything in JS when hot registers are off', () => {
    const handle = new FakeHandle();
    DeviceModelServer.start({ handle: handle as unknown as DeviceModelHandle, device: new RngDevice(), mmioAddr: MMIO, log: silentLogger, hotRegisters: false });
    expect(handle.attachOptions?.cells).toBeUndefined();
  });

  it('closes in order: request loop first, then the device, then the irqfd and the device model', async () => {
    const { handle, device, server } = setup();
    const resets: string[] = handle.events;
    const originalReset = device.reset.bind(device);
    device.reset = () => {
      resets.push('device reset');
      return originalReset();
    };
    await Promise.all([server.close(), server.close()]);
    // (reset() is idempotent: the transport's Status 0 and the server may both ask for it)
    const order = handle.events.filter((e, i, all) => e !== all[i - 1]);
    expect(order).toEqual(['loop stopped', 'device reset', 'irqfd deassigned', 'handle closed']);
  });
});

describe('DeviceModelServer containment: whatever the frontend or the device does, every access is completed', () => {
  const completedIds = (handle: FakeHandle) => handle.completed.map((c) => c.req.requestId);

  it('completes the whole batch when handling one access throws, and puts only that device in NEEDS_RESET', () => {
    const { handle, server, send, bringUp } = setup();
    const other = setup();
    bringUp();
    other.bringUp();
    const realRead = server.transport.read.bind(server.transport);
    server.transport.read = (offset: number, width: number) => {
      if (offset === R.MMIO_DEVICE_ID) throw new Error('bug in a register handler');
      return realRead(offset, width);
    };
    const batch = [access('read', R.MMIO_MAGIC_VALUE), access('read', R.MMIO_DEVICE_ID), access('read', R.MMIO_VERSION)];
    handle.completed.length = 0;
    send(...batch);
    expect(completedIds(handle)).toEqual(batch.map((r) => r.requestId));
    expect(handle.completed.map((c) => c.value)).toEqual([R.MAGIC_VALUE, 0, 2]);
    expect(server.stats.handlerErrors).toBe(1);
    expect(server.transport.status & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(other.server.transport.status & DEVICE_NEEDS_RESET).toBe(0);
    expect(other.read(R.MMIO_STATUS)).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  });

  it('answers ops other than READ and WRITE with 0, counts them and never executes them (an ASK at Status does not reset a live device)', () => {
    const { handle, server, send, bringUp } = setup();
    bringUp();
    const odd = [IoOp.Ask, IoOp.Notify, 7].map((op) => ({ ...access('write', R.MMIO_STATUS, 4, 0n), op }));
    const resets = server.transport.stats.resets;
    handle.completed.length = 0;
    send(...odd);
    expect(handle.completed.map((c) => c.value)).toEqual([0, 0, 0]);
    expect(server.stats.badOps).toBe(3);
    expect(server.transport.stats.resets).toBe(resets);
    expect(server.transport.status).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  });

  it('answers the DRIVER_OK write and sets NEEDS_RESET when the kick eventfd cannot be created (EMFILE), leaving other device models live', () => {
    const starved = new FakeHandle();
    starved.failEventFdFrom = 1; // the irqfd exists; the first queue's kick eventfd fails
    const { handle, server, bringUp } = setup(silentLogger, { handle: starved });
    const other = setup();
    bringUp();
    other.bringUp();
    expect(handle.completed).toHaveLength(13);
    expect(server.transport.status & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(server.stats.handlerErrors).toBe(1);
    expect(other.server.transport.status).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(other.handle.ioeventfds).toHaveLength(1);
  });

  it('turns an error in the ioeventfd handler into NEEDS_RESET of that device, not an exception on the event loop', () => {
    const { handle, server, bringUp } = setup();
    bringUp();
    const kick = handle.ioeventfds[0]!.eventfd;
    kick.failRead = Object.assign(new Error('EBADF'), { code: 'EBADF' });
    expect(() => kick.kick()).not.toThrow();
    expect(server.transport.status & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
  });

  it('survives a poll error on a kick eventfd: counted, that poller stopped, the watchdog serves the queue', () => {
    const { handle, server, bringUp } = setup();
    bringUp();
    const kick = handle.ioeventfds[0]!.eventfd;
    expect(() => kick.onPollError?.(Object.assign(new Error('poll failed'), { code: 'EBADF' }))).not.toThrow();
    expect(server.stats.pollErrors).toBe(1);
    expect(kick.pollerStopped).toBe(true);
    expect(server.transport.status & DEVICE_NEEDS_RESET).toBe(0);
  });

  it('completes an access whose write returns a Promise only when it settles, and serves the accesses behind it afterwards, in order', async () => {
    const { handle, server, send, bringUp } = setup();
    bringUp();
    let finish: () => void = () => {};
    const realWrite = server.transport.write.bind(server.transport);
    server.transport.write = ((offset: number, width: number, value: number) => {
      realWrite(offset, width, value);
      if (offset === R.MMIO_STATUS && value === 0) return new Promise<void>((r) => (finish = r));
      return undefined;
    }) as typeof server.transport.write;
    handle.completed.length = 0;
    const reset = access('write', R.MMIO_STATUS, 4, 0n);
    const readBack = access('read', R.MMIO_STATUS);
    send(reset, readBack);
    const later = access('read', R.MMIO_MAGIC_VALUE);
    send(later);
    expect(handle.completed).toHaveLength(0);
    finish();
    await vi.waitFor(() => expect(handle.completed).toHaveLength(3));
    expect(completedIds(handle)).toEqual([reset.requestId, readBack.requestId, later.requestId]);
    expect(handle.completed.map((c) => c.value)).toEqual([0, 0, R.MAGIC_VALUE]);
  });

  it('serves a long burst a slice at a time, in order, and another device model\u2019s access handed over meanwhile waits for one slice only', async () => {
    // The slice ends on its count here (setup's clock stands still; the time bound is the next test's).
    const abused = setup();
    const canary = setup();
    abused.bringUp();
    canary.bringUp();
    abused.handle.completed.length = 0;
    const burst = Array.from({ length: 10 * REQUEST_SLICE }, () => access('write', R.MMIO_INTERRUPT_ACK, 4, 0n));
    abused.send(...burst);
    expect(abused.handle.completed).toHaveLength(REQUEST_SLICE);
    // Arrives while the burst is being served: behind the burst's rest, in order.
    const late = access('read', R.MMIO_MAGIC_VALUE);
    abused.send(late);
    await new Promise((r) => setImmediate(r));
    expect(canary.read(R.MMIO_MAGIC_VALUE)).toBe(R.MAGIC_VALUE);
    expect(abused.handle.completed.length).toBeLessThanOrEqual(2 * REQUEST_SLICE);
    await vi.waitFor(() => expect(abused.handle.completed).toHaveLength(burst.length + 1));
    expect(completedIds(abused.handle)).toEqual([...burst, late].map((r) => r.requestId));
    await abused.server.close();
    expect(abused.handle.events).toContain('handle closed');
  });

  it('cuts a burst of dear accesses after about REQUEST_SLICE_MS, however few, and reads no clock for a lone access', async () => {
    const handle = new FakeHandle();
    // Each access "costs" 0.3 ms: the clock is the number of accesses answered so far.
    let reads = 0;
    const now = (): number => {
      reads += 1;
      return handle.completed.length * 0.3;
    };
    const abused = setup(silentLogger, { handle, now });
    abused.bringUp();
    handle.completed.length = 0;
    reads = 0;
    abused.read(R.MMIO_MAGIC_VALUE);
    expect(reads).toBe(0);
    handle.completed.length = 0;
    const burst = Array.from({ length: 10 }, () => access('write', R.MMIO_INTERRUPT_ACK, 4, 0n));
    abused.send(...burst);
    // 0.3 ms in, the slice goes on; 0.6 ms in, past REQUEST_SLICE_MS, the rest waits a turn.
    expect(REQUEST_SLICE_MS).toBe(0.5);
    expect(handle.completed).toHaveLength(2);
    expect(abused.server.stats.requestYields).toBe(1);
    await vi.waitFor(() => expect(handle.completed).toHaveLength(burst.length));
    expect(completedIds(handle)).toEqual(burst.map((r) => r.requestId));
    expect(abused.server.stats.requestYields).toBe(4);
    await abused.server.close();
  });

  it('completes the access anyway when the device reset does not finish in time, and sets NEEDS_RESET', async () => {
    const { handle, server, send, bringUp } = setup(silentLogger, { resetTimeoutMs: 30 });
    bringUp();
    const realWrite = server.transport.write.bind(server.transport);
    server.transport.write = ((offset: number, width: number, value: number) => {
      realWrite(offset, width, value);
      if (offset === R.MMIO_STATUS && value === 0) return new Promise<void>(() => {});
      return undefined;
    }) as typeof server.transport.write;
    handle.completed.length = 0;
    send(access('write', R.MMIO_STATUS, 4, 0n), access('read', R.MMIO_STATUS));
    await vi.waitFor(() => expect(handle.completed).toHaveLength(2), { timeout: 1000 });
    expect(server.stats.resetTimeouts).toBe(1);
    expect(handle.completed[1]?.value).toBe(DEVICE_NEEDS_RESET);
  });

  it('completePending() answers, with 0, every access still waiting (the last resort before exiting)', () => {
    const { handle, server, send, bringUp } = setup();
    bringUp();
    server.transport.write = (() => new Promise<void>(() => {})) as unknown as typeof server.transport.write;
    handle.completed.length = 0;
    send(access('write', R.MMIO_STATUS, 4, 0n), access('read', R.MMIO_MAGIC_VALUE));
    expect(handle.completed).toHaveLength(0);
    expect(server.completePending()).toBe(2);
    expect(handle.completed.map((c) => c.value)).toEqual([0, 0]);
    expect(server.completePending()).toBe(0);
  });

  it('waits at shutdown for the device reset to finish before releasing the mapping', async () => {
    const { handle, device, server } = setup();
    device.reset = () =>
      new Promise<void>((resolve) =>
        setTimeout(() => {
          handle.events.push('device reset done');
          resolve();
        }, 20),
      );
    await server.close();
    expect(handle.events.indexOf('device reset done')).toBeLessThan(handle.events.indexOf('handle closed'));
  });

  it('keeps the mapping when the device reset never finishes at shutdown (late work must not fault), and still returns', async () => {
    const { handle, device, server } = setup(silentLogger, { resetTimeoutMs: 30 });
    device.reset = () => new Promise<void>(() => {});
    await server.close();
    expect(server.stats.resetTimeouts).toBe(1);
    expect(handle.events).not.toContain('handle closed');
  });

  it('ignores kicks once shutdown began', async () => {
    const { handle, server, bringUp, offerBuffer } = setup();
    bringUp();
    const mem = offerBuffer();
    const closing = server.close();
    handle.ioeventfds[0]?.eventfd.kick();
    await closing;
    expect(mem.getUint16(0x2000 + 2, true)).toBe(0);
  });
});

describe('DeviceModelServer with a device whose queues are driven elsewhere (vhost)', () => {
  it('hands it the irqfd, the region and one registered ioeventfd per queue, polls none of them, and runs no watchdog', () => {
    const handle = new FakeHandle();
    const device = new RngDevice();
    let host: ExternalQueueHost | undefined;
    const external = Object.assign(device, { bindExternalQueues: (h: ExternalQueueHost) => (host = h) });
    const timers = vi.spyOn(globalThis, 'setTimeout');
    const server = DeviceModelServer.start({ handle: handle as unknown as DeviceModelHandle, device: external, mmioAddr: MMIO, log: silentLogger });
    expect(host).toBeDefined();
    expect(host!.callFd).toBe(handle.irqfd!.fd);
    expect(host!.region).toEqual({ fd: 7, guestAddress: BigInt(SHMEM), size: 1n << 20n, mappedAt: 0x7f00_0000_0000n });
    const kick = host!.kickFd(0);
    expect(host!.kickFd(0)).toBe(kick);
    expect(handle.ioeventfds).toEqual([expect.objectContaining({ addr: MMIO + R.MMIO_QUEUE_NOTIFY, len: 4, datamatch: 0 })]);
    expect(handle.ioeventfds[0]!.eventfd.onReadable).toBeUndefined();
    expect(timers).not.toHaveBeenCalled();
    timers.mockRestore();
    void server.close();
  });
});
