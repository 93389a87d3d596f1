// virtio-console over driver-side mock queues: transmit reaches the backend (zero-copy, in
// order, with backpressure), receive reaches the guest (bounded buffering), and hostile chains
// are logged, counted and returned unused.

import { beforeEach, describe, expect, it } from 'vitest';

import {
  ConsoleDevice,
  RECEIVEQ,
  TRANSMITQ,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_F_SIZE,
  type ConsoleBackend,
  type ConsoleBackendEvents,
} from '../../../../lib/devices/console/index.js';
import type { DeviceActivation } from '../../../../lib/virtio/device.js';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../../lib/virtio/descriptor-chain.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC } from '../../../../lib/virtio/features.js';
import { GuestMemory } from '../../../../lib/virtio/guest-memory.js';
import type { Logger } from '../../../../lib/virtio/logger.js';
import { SplitQueue } from '../../../../lib/virtio/split-queue.js';
import { GuestAllocator, MockQueue } from '../../../../lib/virtio/testing/mock-queue.js';

const BASE = 0x4000_0000;
const QSIZE = 16;
const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1');
const bytes = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));

/** A backend the test drives by hand: write completions and drain are under its control. */
class FakeBackend implements ConsoleBackend {
  readonly kind = 'stdio' as const;
  readonly description = 'fake';
  readonly stats = { discardedBytes: 0 };
  events: ConsoleBackendEvents | undefined;
  readonly written: Uint8Array[] = [];
  readonly pending: (() => void)[] = [];
  /** Complete writes synchronously (true) or leave them in `pending` (false). */
  autoComplete = true;
  /** write() answers this: false asks the device to wait for drain(). */
  accept = true;
  paused = false;
  closed = false;

  start(events: ConsoleBackendEvents): void {
    this.events = events;
  }
  write(chunk: Uint8Array, done: (err?: Error | null) => void): boolean {
    this.written.push(chunk);
    if (this.autoComplete) done(null);
    else this.pending.push(() => done(null));
    return this.accept;
  }
  pauseInput(): void {
    this.paused = true;
  }
  resumeInput(): void {
    this.paused = false;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  type(s: string): void {
    this.events?.data(bytes(s));
  }
  output(): string {
    return this.written.map(text).join('');
  }
}

interface LogLine {
  level: string;
  obj: object;
  msg: string | undefined;
}

function recordingLogger(lines: LogLine[]): Logger {
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj, msg });
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

class Rig {
  readonly memory = new GuestMemory(BASE, new Uint8Array(1 << 20));
  readonly allocator = new GuestAllocator(this.memory);
  readonly rxDriver = new MockQueue(this.memory, this.allocator, QSIZE);
  readonly txDriver = new MockQueue(this.memory, this.allocator, QSIZE);
  readonly rx = new SplitQueue(this.memory, this.rxDriver.config());
  readonly tx = new SplitQueue(this.memory, this.txDriver.config());
  readonly backend = new FakeBackend();
  readonly interrupts: number[] = [];
  readonly failures: string[] = [];
  readonly logs: LogLine[] = [];
  readonly device: ConsoleDevice;
  readonly activation: DeviceActivation;

  constructor(options: { rxBufferLimit?: number } = {}) {
    this.device = new ConsoleDevice({ backend: this.backend, ...options });
    this.activation = {
      memory: this.memory,
      queues: [this.rx, this.tx],
      features: 0n,
      notifyUsed: (q) => void this.interrupts.push(q),
      configChanged: () => {},
      fail: (reason) => void this.failures.push(reason),
      log: recordingLogger(this.logs),
    };
  }

  activate(): this {
    this.device.activate(this.activation);
    return this;
  }

  /** The guest writes `s` to the console (one readable buffer per string). */
  send(...parts: string[]): number {
    const head = this.txDriver.add(parts.map((p) => ({ data: bytes(p) })));
    this.device.queueNotify(TRANSMITQ);
    return head;
  }

  /** The guest posts a receive buffer of `length` bytes. */
  postRx(length: number, notify = true): number {
    const head = this.rxDriver.add([{ length, writable: true }]);
    if (notify) this.device.queueNotify(RECEIVEQ);
    return head;
  }

  received(head: number, len: number): string {
    return text(this.rxDriver.buffers(head)[0]!.subarray(0, len));
  }

  warnings(): string[] {
    return this.logs.filter((l) => l.level === 'warn').map((l) => l.msg ?? '');
  }
}

describe('ConsoleDevice identity', () => {
  it('is device 3 with receiveq and transmitq, cols 80, rows 25, max_nr_ports 1 (as bao-virtio-dm)', () => {
    const d = new ConsoleDevice({ backend: new FakeBackend() });
    expect(d.deviceId).toBe(3);
    expect(d.name).toBe('console');
    expect(d.queueMaxSizes).toEqual([1024, 1024]);
    const view = new DataView(d.config.buffer, d.config.byteOffset, d.config.byteLength);
    expect([view.getUint16(0, true), view.getUint16(2, true), view.getUint32(4, true)]).toEqual([80, 25, 1]);
  });

  it('offers the ring features it handles and EMERG_WRITE, but not MULTIPORT or SIZE', () => {
    const d = new ConsoleDevice({ backend: new FakeBackend() });
    expect(d.features & RING_EVENT_IDX).toBe(RING_EVENT_IDX);
    expect(d.features & RING_INDIRECT_DESC).toBe(RING_INDIRECT_DESC);
    expect(d.features & VIRTIO_CONSOLE_F_EMERG_WRITE).toBe(VIRTIO_CONSOLE_F_EMERG_WRITE);
    expect(d.features & (VIRTIO_CONSOLE_F_MULTIPORT | VIRTIO_CONSOLE_F_SIZE)).toBe(0n);
  });

  it('prints a character written to emerg_wr and refuses writes to the read-only fields', () => {
    const rig = new Rig();
    expect(rig.device.writeConfig(8, Uint8Array.of(0x41, 0, 0, 0))).toBe(true);
    expect(rig.device.writeConfig(0, Uint8Array.of(1, 0))).toBe(false);
    expect(rig.backend.output()).toBe('A');
    expect(rig.device.metrics.emergWrites).toBe(1);
  });
});

describe('transmit (guest output)', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = new Rig().activate();
  });

  it('hands every readable buffer to the backend as a view onto guest memory, then returns the chain', () => {
    const head = rig.send('hello ', 'world\n');
    expect(rig.backend.output()).toBe('hello world\n');
    // Zero-copy: the backend got views into the shared region, not copies.
    expect(rig.backend.written[0]!.buffer).toBe(rig.memory.bytes.buffer);
    expect(rig.txDriver.used()).toEqual([{ id: head, len: 0 }]);
    expect(rig.interrupts).toEqual([TRANSMITQ]);
    expect(rig.device.metrics).toMatchObject({ txBytes: 12, txChains: 1 });
  });

  it('keeps a chain until the backend has written it, and publishes used entries in order', () => {
    rig.backend.autoComplete = false;
    const a = rig.send('a');
    const b = rig.send('b');
    expect(rig.txDriver.used()).toEqual([]);
    rig.backend.pending[1]!(); // b finishes first ...
    expect(rig.txDriver.used()).toEqual([]); // ... but waits behind a
    rig.backend.pending[0]!();
    expect(rig.txDriver.used()).toEqual([
      { id: a, len: 0 },
      { id: b, len: 0 },
    ]);
    expect(rig.interrupts).toEqual([TRANSMITQ]);
  });

  it('stops popping the transmit queue while the backend drains, and resumes on drain', () => {
    rig.backend.accept = false;
    rig.send('one');
    rig.send('two');
    rig.send('three');
    expect(rig.backend.output()).toBe('one');
    expect(rig.device.metrics.txBackpressureWaits).toBe(1);
    rig.device.queueNotify(TRANSMITQ); // kicks while waiting do not bypass backpressure
    expect(rig.backend.output()).toBe('one');
    rig.backend.accept = true;
    rig.backend.events!.drain();
    expect(rig.backend.output()).toBe('onetwothree');
    expect(rig.txDriver.used()).toHaveLength(3);
  });

  it('re-arms kicks with EVENT_IDX after draining the queue', () => {
    const rig2 = new Rig();
    const tx = new SplitQueue(rig2.memory, rig2.txDriver.config({ eventIdx: true }));
    const activation = { ...rig2.activation, queues: [rig2.rx, tx] };
    rig2.device.activate(activation);
    rig2.txDriver.add([{ data: bytes('x') }]);
    rig2.txDriver.add([{ data: bytes('y') }]);
    rig2.device.queueNotify(TRANSMITQ);
    expect(rig2.backend.output()).toBe('xy');
    expect(rig2.txDriver.availEvent()).toBe(2);
  });

  it('returns a transmit chain with writable buffers unused, and logs and counts it', () => {
    const bad = rig.txDriver.add([{ data: bytes('x') }, { length: 8, writable: true }]);
    rig.device.queueNotify(TRANSMITQ);
    const good = rig.send('ok');
    expect(rig.backend.output()).toBe('ok');
    expect(rig.txDriver.used()).toEqual([
      { id: bad, len: 0 },
      { id: good, len: 0 },
    ]);
    expect(rig.device.metrics.txChainsWithWritable).toBe(1);
    expect(rig.warnings()).toContain('guest fault: transmit chain with writable buffers; returned unused');
  });

  it('survives a malformed chain (buffer outside the region): returned with 0, counted, next one served', () => {
    const head = rig.txDriver.add([{ data: bytes('zz') }]);
    rig.txDriver.writeDescriptor(head, { addr: BASE + (1 << 21), len: 4 });
    rig.device.queueNotify(TRANSMITQ);
    rig.send('fine');
    expect(rig.backend.output()).toBe('fine');
    expect(rig.device.metrics.invalidChains).toBe(1);
    expect(rig.txDriver.used().map((u) => u.len)).toEqual([0, 0]);
    expect(rig.failures).toEqual([]);
  });

  it('fails the device (NEEDS_RESET) on a corrupt ring instead of throwing', () => {
    rig.txDriver.setAvailIdx(QSIZE + 5);
    expect(() => rig.device.queueNotify(TRANSMITQ)).not.toThrow();
    expect(rig.failures).toHaveLength(1);
    // It stops using its queues until the transport resets it.
    rig.device.queueNotify(TRANSMITQ);
    expect(rig.failures).toHaveLength(1);
  });

  it('serves an indirect chain', () => {
    rig.txDriver.add([{ data: bytes('ind') }, { data: bytes('irect') }], { indirect: true });
    const tx = new SplitQueue(rig.memory, { ...rig.txDriver.config(), indirect: true });
    const rig2Activation = { ...rig.activation, queues: [rig.rx, tx] };
    rig.device.reset();
    rig.device.activate(rig2Activation);
    expect(rig.backend.output()).toBe('indirect');
  });

  it('ignores write completions that arrive after a reset', () => {
    rig.backend.autoComplete = false;
    rig.send('late');
    rig.device.reset();
    rig.backend.pending[0]!();
    expect(rig.txDriver.used()).toEqual([]);
  });
});

describe('receive (host input)', () => {
  it('copies host input into the guest buffers that are available', () => {
    const rig = new Rig().activate();
    const head = rig.postRx(64);
    rig.backend.type('ls -l\n');
    expect(rig.received(head, 6)).toBe('ls -l\n');
    expect(rig.rxDriver.used()).toEqual([{ id: head, len: 6 }]);
    expect(rig.interrupts).toEqual([RECEIVEQ]);
    expect(rig.device.metrics).toMatchObject({ rxBytes: 6, rxChains: 1, rxBufferedBytes: 0 });
  });

  it('holds input until the guest posts buffers, splitting it across small ones', () => {
    const rig = new Rig().activate();
    rig.backend.type('abcdefgh');
    expect(rig.device.metrics.rxBufferedBytes).toBe(8);
    const a = rig.postRx(3, false);
    const b = rig.postRx(3, false);
    const c = rig.postRx(3);
    expect([rig.received(a, 3), rig.received(b, 3), rig.received(c, 2)]).toEqual(['abc', 'def', 'gh']);
    expect(rig.rxDriver.used()).toEqual([
      { id: a, len: 3 },
      { id: b, len: 3 },
      { id: c, len: 2 },
    ]);
  });

  it('keeps input typed before the driver is up and delivers it at activation', () => {
    const rig = new Rig();
    rig.backend.type('early');
    const head = rig.rxDriver.add([{ length: 16, writable: true }]);
    rig.activate();
    expect(rig.received(head, 5)).toBe('early');
  });

  it('pauses the backend at the buffer limit and resumes it once the guest has taken half', () => {
    const rig = new Rig({ rxBufferLimit: 8 }).activate();
    rig.backend.type('12345');
    expect(rig.backend.paused).toBe(false);
    rig.backend.type('6789');
    expect(rig.backend.paused).toBe(true);
    expect(rig.device.metrics.rxBackpressurePauses).toBe(1);
    rig.postRx(6);
    expect(rig.device.metrics.rxBufferedBytes).toBe(3);
    expect(rig.backend.paused).toBe(false);
  });

  it('drops the oldest input beyond twice the limit when the backend ignores pause, and counts it', () => {
    const rig = new Rig({ rxBufferLimit: 4 }).activate();
    rig.backend.type('aaaa');
    rig.backend.type('bbbb');
    rig.backend.type('cccc');
    expect(rig.device.metrics.rxBufferedBytes).toBe(8);
    expect(rig.device.metrics.rxDroppedBytes).toBe(4);
    const head = rig.postRx(16);
    expect(rig.received(head, 8)).toBe('bbbbcccc');
  });

  it('returns a receive chain with no writable buffer unused, logged and counted, and uses the next', () => {
    const rig = new Rig().activate();
    const bad = rig.rxDriver.add([{ length: 0, writable: true }]);
    const good = rig.rxDriver.add([{ length: 8, writable: true }]);
    rig.backend.type('hi');
    expect(rig.rxDriver.used()).toEqual([
      { id: bad, len: 0 },
      { id: good, len: 2 },
    ]);
    expect(rig.device.metrics.rxChainsWithoutWritable).toBe(1);
    expect(rig.warnings()).toContain('guest fault: receive chain without writable space; returned unused');
  });

  it('returns a receive chain with readable buffers unused, logged and counted', () => {
    const rig = new Rig().activate();
    const bad = rig.rxDriver.add([{ data: bytes('evil') }, { length: 8, writable: true }]);
    rig.backend.type('x');
    expect(rig.rxDriver.used()).toEqual([{ id: bad, len: 0 }]);
    expect(rig.device.metrics.rxChainsWithReadable).toBe(1);
    expect(rig.device.metrics.rxBufferedBytes).toBe(1);
  });

  it('returns a chain that is a descriptor loop with 0 and keeps serving', () => {
    const rig = new Rig().activate();
    const head = rig.rxDriver.add([{ length: 4, writable: true }]);
    rig.rxDriver.writeDescriptor(head, { addr: BASE + 0x8000, len: 4, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: head });
    const good = rig.rxDriver.add([{ length: 4, writable: true }]);
    rig.backend.type('ok');
    expect(rig.rxDriver.used()).toEqual([
      { id: head, len: 0 },
      { id: good, len: 2 },
    ]);
    expect(rig.device.metrics.invalidChains).toBe(1);
  });

  it('counts a notify for a queue it does not have', () => {
    const rig = new Rig().activate();
    rig.device.queueNotify(5);
    expect(rig.device.metrics.unknownQueueNotifies).toBe(1);
  });
});

describe('lifecycle', () => {
  it('does nothing with queues before activation or after reset', () => {
    const rig = new Rig();
    rig.txDriver.add([{ data: bytes('x') }]);
    rig.device.queueNotify(TRANSMITQ);
    expect(rig.backend.output()).toBe('');
    rig.activate();
    expect(rig.backend.output()).toBe('x');
    rig.device.reset();
    rig.txDriver.add([{ data: bytes('y') }]);
    rig.device.queueNotify(TRANSMITQ);
    expect(rig.backend.output()).toBe('x');
  });

  it('close() resets and closes the backend once', async () => {
    const rig = new Rig().activate();
    await Promise.all([rig.device.close(), rig.device.close()]);
    expect(rig.backend.closed).toBe(true);
  });
});
