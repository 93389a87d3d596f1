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
  type ConsoleDeviceOptions,
} from '../../../../lib/devices/console/index.js';
import { ManualScheduler } from '../../../../lib/virtio/testing/manual-scheduler.js';
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
  readonly ringFaults: string[] = [];
  readonly logs: LogLine[] = [];
  readonly device: ConsoleDevice;
  readonly activation: DeviceActivation;

  constructor(options: Omit<ConsoleDeviceOptions, 'backend'> = {}) {
    this.device = new ConsoleDevice({ backend: this.backend, ...options });
    this.activation = {
      memory: this.memory,
      queues: [this.rx, this.tx],
      features: 0n,
      notifyUsed: (q) => void this.interrupts.push(q),
      configChanged: () => {},
      fail: (reason) => void this.failures.push(reason),
      ringFault: (code) => void this.ringFaults.push(code),
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

  it('copies the bytes of a chain for the backend and returns the chain at once', () => {
    const head = rig.send('hello ', 'world\n');
    expect(rig.backend.output()).toBe('hello world\n');
    // A copy: no backend write ever reads guest memory after the chain went back.
    expect(rig.backend.written[0]!.buffer === rig.memory.bytes.buffer).toBe(false);
    expect(rig.txDriver.used()).toEqual([{ id: head, len: 0 }]);
    expect(rig.interrupts).toEqual([TRANSMITQ]);
    expect(rig.device.metrics).toMatchObject({ txBytes: 12, txChains: 1 });
  });

  it('returns chains at once even while the backend has confirmed no write (Linux hvc spins until they come back)', () => {
    rig.backend.autoComplete = false;
    const a = rig.send('a');
    const b = rig.send('b');
    expect(rig.txDriver.used()).toEqual([
      { id: a, len: 0 },
      { id: b, len: 0 },
    ]);
    expect(rig.backend.output()).toBe('ab');
    expect(rig.device.txHeldBytes).toBe(2);
    rig.backend.pending.forEach((done) => done());
    expect(rig.device.txHeldBytes).toBe(0);
  });

  it('holds a bounded amount for a backend that does not read, then drops and counts, still returning every chain', () => {
    const slow = new Rig({ txBufferLimit: 10 }).activate();
    slow.backend.accept = false;
    slow.backend.autoComplete = false;
    slow.send('one'); // handed to the backend, which asks us to wait
    slow.send('two');
    slow.send('four'); // 3 + 3 + 4 = 10 bytes held: the bound
    slow.send('more!');
    expect(slow.txDriver.used()).toHaveLength(4);
    expect(slow.backend.output()).toBe('one');
    expect(slow.device.txHeldBytes).toBe(10);
    expect(slow.device.metrics.txDroppedBytes).toBe(5);
    slow.backend.accept = true;
    slow.backend.events!.drain();
    expect(slow.backend.output()).toBe('onetwofour');
  });

  it('passes on at most maxTxBytesPerChain of one chain: aliased descriptors claiming 16 MiB cost a bounded copy', () => {
    const big = new Rig({ maxTxBytesPerChain: 4096 }).activate();
    // 16 descriptors, each the whole 1 MiB region.
    for (let i = 0; i < QSIZE; i += 1) {
      big.txDriver.writeDescriptor(i, { addr: BASE, len: 1 << 20, flags: i < QSIZE - 1 ? VIRTQ_DESC_F_NEXT : 0, next: i + 1 });
    }
    big.txDriver.pushAvail(0);
    big.device.queueNotify(TRANSMITQ);
    expect(big.txDriver.used()).toEqual([{ id: 0, len: 0 }]);
    expect(big.backend.written.reduce((n, b) => n + b.length, 0)).toBe(4096);
    expect(big.device.metrics).toMatchObject({ txBytes: 4096, txChainsTruncated: 1, txDroppedBytes: 16 * (1 << 20) - 4096 });
  });

  it('rate-limits guest output: a chain that finds the bucket empty waits for it to refill', () => {
    const scheduler = new ManualScheduler();
    const limited = new Rig({ scheduler, now: scheduler.now, txBytesPerSecond: 1000, txBurstBytes: 4 }).activate();
    limited.send('abcd');
    const late = limited.send('e');
    expect(limited.backend.output()).toBe('abcd');
    expect(limited.device.metrics.rateLimitWaits).toBe(1);
    scheduler.advance(1);
    expect(limited.backend.output()).toBe('abcde');
    expect(limited.txDriver.used().at(-1)).toEqual({ id: late, len: 0 });
  });

  it('serves at most its budget of transmit chains per kick, then yields and continues', () => {
    const scheduler = new ManualScheduler();
    const fair = new Rig({ scheduler, budget: { chains: 2 } }).activate();
    for (const c of 'abcde') fair.txDriver.add([{ data: bytes(c) }]);
    fair.device.queueNotify(TRANSMITQ);
    expect(fair.backend.output()).toBe('ab');
    scheduler.turn();
    expect(fair.backend.output()).toBe('abcd');
    scheduler.settle();
    expect(fair.backend.output()).toBe('abcde');
    expect(fair.device.metrics.queueYields).toBe(2);
  });

  it('bounds emerg_wr output too: characters beyond what is held are dropped and counted', () => {
    const slow = new Rig({ txBufferLimit: 3 });
    slow.backend.accept = false;
    slow.backend.autoComplete = false;
    for (const c of 'abcdef') slow.device.writeConfig(8, Uint8Array.of(c.charCodeAt(0)));
    expect(slow.device.metrics.emergWrites).toBe(6);
    expect(slow.device.txHeldBytes).toBe(3);
    expect(slow.device.metrics.txDroppedBytes).toBe(3);
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

  it('fails the device (NEEDS_RESET) on a malformed chain (buffer outside the region), counted by code, and stops', () => {
    const head = rig.txDriver.add([{ data: bytes('zz') }]);
    rig.txDriver.writeDescriptor(head, { addr: BASE + (1 << 21), len: 4 });
    rig.device.queueNotify(TRANSMITQ);
    rig.send('ignored');
    expect(rig.backend.output()).toBe('');
    expect(rig.device.metrics.invalidChains).toBe(1);
    expect(rig.ringFaults).toEqual(['CHAIN_BUFFER_OUT_OF_RANGE']);
    expect(rig.failures).toHaveLength(1);
    expect(rig.txDriver.used()).toEqual([]);
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

  it('is quiet when its reset returns: output already copied drains from host memory, nothing reads the guest', () => {
    rig.backend.autoComplete = false;
    rig.backend.accept = false;
    rig.send('first');
    rig.send('second'); // queued in host memory behind the stalled backend
    expect(rig.device.reset()).toBeUndefined();
    rig.memory.bytes.fill(0x58); // the guest reuses its memory after the reset
    rig.backend.accept = true;
    rig.backend.events!.drain();
    expect(rig.backend.output()).toBe('firstsecond');
    rig.backend.pending.forEach((done) => done());
    expect(rig.device.txHeldBytes).toBe(0);
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

  it('fails the device on a chain that is a descriptor loop, writing nothing', () => {
    const rig = new Rig().activate();
    const head = rig.rxDriver.add([{ length: 4, writable: true }]);
    rig.rxDriver.writeDescriptor(head, { addr: BASE + 0x8000, len: 4, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: head });
    rig.rxDriver.add([{ length: 4, writable: true }]);
    rig.backend.type('ok');
    expect(rig.rxDriver.used()).toEqual([]);
    expect(rig.ringFaults).toEqual(['CHAIN_TOO_LONG']);
    expect(rig.failures).toHaveLength(1);
    expect(rig.device.metrics.invalidChains).toBe(1);
  });

  it('serves at most its budget of receive chains per run when input is plentiful', () => {
    const scheduler = new ManualScheduler();
    const rig = new Rig({ scheduler, budget: { chains: 3 } }).activate();
    for (let i = 0; i < 8; i += 1) rig.postRx(1, false);
    rig.backend.type('abcdefgh');
    expect(rig.rxDriver.used()).toHaveLength(3);
    scheduler.settle();
    expect(rig.rxDriver.used()).toHaveLength(5);
    expect(rig.device.metrics.rxBytes).toBe(8);
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
