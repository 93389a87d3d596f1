// Fuzz target: virtio-console request handling (receiveq 0, transmitq 1, emerg_wr). A
// ConsoleDevice behind the transport and a MockDriver, with a scripted backend: the input
// decides when the backend completes writes (at once, later, with an error), when it pushes
// back (write() returning false) and drains, and what host input arrives. Besides the shared
// oracle: every chunk handed to the backend is a view inside the region or a copy the device
// made, held input stays within the device's bound, a backend that pushed back is not handed
// more than one chain's worth of buffers before it drains, and once the backend has completed
// everything, every chain taken has been given back.

import { ConsoleDevice } from '../../../lib/devices/console/index.js';
import type { ConsoleBackend, ConsoleBackendEvents } from '../../../lib/devices/console/backends/backend.js';
import * as R from '../../../lib/virtio/mmio-registers.js';
import { DeviceHarness, ScriptedEventLoop } from '../device-harness.js';
import { FuzzInput } from '../decode.js';
import { beginInput, checkAllCompleted, guardsIntact, violated } from '../oracle.js';

interface PendingWrite {
  readonly done: (err?: Error | null) => void;
}

class ScriptedBackend implements ConsoleBackend {
  readonly kind = 'socket' as const;
  readonly description = 'fuzz backend';
  readonly stats = { discardedBytes: 0 };
  events: ConsoleBackendEvents | undefined;
  readonly pending: PendingWrite[] = [];
  /** Bytes handed over and not yet confirmed written. */
  pendingBytes = 0;
  /** Whether write() answers "wait for drain" (the next write after that counts against the bound). */
  full = false;
  /** Whether write() completes at once (synchronously) while not full. */
  synchronous = true;
  writesWhileFull = 0;
  maxWritesWhileFull = 0;
  paused = false;
  writes = 0;

  constructor(private readonly check: (chunk: Uint8Array) => void) {}

  start(events: ConsoleBackendEvents): void {
    this.events = events;
  }

  write(chunk: Uint8Array, done: (err?: Error | null) => void): boolean {
    this.check(chunk);
    this.writes += 1;
    if (this.full) {
      this.writesWhileFull += 1;
      this.maxWritesWhileFull = Math.max(this.maxWritesWhileFull, this.writesWhileFull);
    }
    if (this.synchronous && !this.full) done(null);
    else {
      this.pendingBytes += chunk.byteLength;
      const n = chunk.byteLength;
      this.pending.push({
        done: (err) => {
          this.pendingBytes -= n;
          done(err);
        },
      });
    }
    return !this.full;
  }

  pauseInput(): void {
    this.paused = true;
  }

  resumeInput(): void {
    this.paused = false;
  }

  async close(): Promise<void> {}

  /** Completes up to `n` pending writes, oldest first. */
  complete(n: number, err: boolean): void {
    for (let i = 0; i < n && this.pending.length > 0; i += 1) this.pending.shift()!.done(err ? new Error('EPIPE') : null);
  }

  drain(): void {
    this.full = false;
    this.writesWhileFull = 0;
    this.events?.drain();
  }
}

export function fuzz(data: Uint8Array): void {
  beginInput();
  const input = new FuzzInput(data);
  const rxLimit = input.pick([16, 256, 4096, 64 * 1024]);
  const maxQueue = input.pick([1, 2, 4, 16, 64, 256]);
  let harness: DeviceHarness | undefined;
  const backend = new ScriptedBackend((chunk) => {
    if (harness === undefined) return;
    const region = harness.driver.memory.bytes;
    if (chunk.buffer !== region.buffer) return; // a copy the device made (emerg_wr)
    const start = chunk.byteOffset - region.byteOffset;
    if (start < 0 || start + chunk.byteLength > region.byteLength) {
      violated('VIEW_OUTSIDE_REGION', `backend handed [${start}, +${chunk.byteLength}) outside the region`);
    }
  });
  const txLimit = input.pick([1, 100, 4096, 64 * 1024]);
  const loop = new ScriptedEventLoop();
  const device = new ConsoleDevice({
    backend,
    queueSize: maxQueue,
    rxBufferLimit: rxLimit,
    txBufferLimit: txLimit,
    now: loop.now,
    scheduler: loop,
    ...(input.bool() ? { txBytesPerSecond: input.pick([16, 4096]), txBurstBytes: input.pick([1, 4096]) } : {}),
  });
  // Output is copied out of the chains (ConsoleOutput), so chains complete whatever the backend does.
  harness = new DeviceHarness(device, input, { maxQueueSize: 256, completesSynchronously: () => true }, loop);
  harness.init();
  const h = harness;
  const bound = (): void => {
    const m = device.metrics;
    if (m.rxBufferedBytes > 2 * rxLimit) violated('RX_UNBOUNDED', `${m.rxBufferedBytes} bytes of host input held; the bound is ${2 * rxLimit}`);
    if (m.rxBufferedBytes < 0) violated('RX_COUNTER', `rxBufferedBytes ${m.rxBufferedBytes}`);
    const txSize = h.queues[1]?.size ?? maxQueue;
    void txSize;
    // A backend that said "wait" gets nothing more until it drains.
    if (backend.maxWritesWhileFull > 1) {
      violated('BACKPRESSURE_IGNORED', `${backend.maxWritesWhileFull - 1} writes after the backend asked to wait`);
    }
    // What is held for the backend (handed over, unconfirmed) stays within the device's bound.
    if (backend.pendingBytes > txLimit) violated('TX_UNBOUNDED', `${backend.pendingBytes} bytes held by the backend; the bound is ${txLimit}`);
  };
  for (let steps = 0; steps < 48 && !input.done; steps += 1) {
    const op = input.u8();
    if (!h.step(op)) {
      switch (input.u8() % 6) {
        case 0: {
          const n = input.pick([1, 7, 100, 3000, 70000]);
          h.deliver('host input', () => backend.events?.data(new Uint8Array(n).fill(0x41)));
          break;
        }
        case 1:
          h.deliver('backend completes', () => backend.complete(1 + input.below(8), input.bool()));
          break;
        case 2:
          h.deliver('backend drains', () => backend.drain());
          break;
        case 3:
          backend.full = input.bool();
          backend.synchronous = input.bool();
          break;
        case 4: {
          const width = input.pick([1, 2, 4]);
          const offset = input.pick([8, 8, 9, 10, 0, 4, 12]);
          h.deliver('emerg_wr', () => h.driver.transport.write(R.MMIO_CONFIG + offset, width, input.u32()));
          break;
        }
        default:
          h.deliver('config read', () => h.driver.transport.read(R.MMIO_CONFIG + input.below(16), input.pick([1, 2, 4])));
      }
    }
    bound();
  }
  // The backend finishes everything it holds and stops pushing back: every chain comes back.
  backend.synchronous = true;
  h.settle();
  for (let rounds = 0; rounds < 8 && (backend.pending.length > 0 || backend.full); rounds += 1) {
    h.deliver('final completion', () => {
      backend.complete(backend.pending.length, false);
      backend.drain();
    });
  }
  h.settle();
  bound();
  checkAllCompleted('after the backend completed everything');
  if (!guardsIntact(h.driver.backing, 256)) violated('GUARD_OVERWRITTEN', 'a byte around the region changed');
}
