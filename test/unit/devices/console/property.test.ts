// Property runs (fast-check) over random interleavings of guest and host activity: whatever the
// order of sends, receive buffers, host input, backpressure and drains, the console delivers
// guest output in order without loss, host input in order without loss (within its bounds), and
// never writes outside the shared region.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { ConsoleDevice, type ConsoleBackend, type ConsoleBackendEvents } from '../../../../lib/devices/console/index.js';
import { MockDriver } from '../../../../lib/virtio/testing/mock-driver.js';

type Op =
  | { kind: 'send'; text: string; split: boolean }
  | { kind: 'postRx'; length: number }
  | { kind: 'type'; text: string }
  | { kind: 'block' }
  | { kind: 'drain' }
  | { kind: 'complete' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('send' as const), text: fc.string({ minLength: 1, maxLength: 12 }), split: fc.boolean() }),
  fc.record({ kind: fc.constant('postRx' as const), length: fc.integer({ min: 1, max: 9 }) }),
  fc.record({ kind: fc.constant('type' as const), text: fc.string({ minLength: 1, maxLength: 10 }) }),
  fc.constant({ kind: 'block' as const }),
  fc.constant({ kind: 'drain' as const }),
  fc.constant({ kind: 'complete' as const }),
);

/** A backend with deferred completions and switchable backpressure. */
class ScriptedBackend implements ConsoleBackend {
  readonly kind = 'stdio' as const;
  readonly description = 'scripted';
  readonly stats = { discardedBytes: 0 };
  events: ConsoleBackendEvents | undefined;
  out = '';
  blocked = false;
  waiting = false;
  readonly pending: (() => void)[] = [];
  start(e: ConsoleBackendEvents): void {
    this.events = e;
  }
  write(chunk: Uint8Array, done: () => void): boolean {
    this.out += Buffer.from(chunk).toString('latin1'); // copied now: the bytes the guest had at write time
    this.pending.push(done);
    if (this.blocked) this.waiting = true;
    return !this.blocked;
  }
  completeAll(): void {
    for (const done of this.pending.splice(0)) done();
  }
  pauseInput(): void {}
  resumeInput(): void {}
  async close(): Promise<void> {}
}

describe('console under random interleavings', () => {
  it('delivers both directions in order, without loss, within the region', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const backend = new ScriptedBackend();
        const device = new ConsoleDevice({ backend, rxBufferLimit: 1 << 20 });
        const driver = MockDriver.create(device, { size: 1 << 18 });
        driver.init({ queueSizes: [64, 64] });
        let sent = '';
        let typed = '';
        let received = '';
        const rxViews = new Map<number, Uint8Array>();
        const txDescs = new Map<number, number>();
        let txInUse = 0;
        const collect = (): void => {
          for (const u of driver.queue(0).used()) {
            received += Buffer.from(rxViews.get(u.id)!.subarray(0, u.len)).toString('latin1');
            rxViews.delete(u.id);
          }
          for (const u of driver.queue(1).used()) {
            txInUse -= txDescs.get(u.id)!;
            txDescs.delete(u.id);
          }
        };
        const postRx = (length: number): void => {
          const head = driver.queue(0).add([{ length, writable: true }]);
          rxViews.set(head, driver.queue(0).buffers(head)[0]!);
          driver.kick(0);
        };
        for (const op of ops) {
          switch (op.kind) {
            case 'send': {
              const parts = op.split && op.text.length > 1 ? [op.text.slice(0, 1), op.text.slice(1)] : [op.text];
              if (txInUse + parts.length > 64) break; // a driver with a full ring waits
              const head = driver.queue(1).add(parts.map((p) => ({ data: Buffer.from(p, 'latin1') })));
              txDescs.set(head, parts.length);
              txInUse += parts.length;
              driver.kick(1);
              sent += op.text;
              break;
            }
            case 'postRx':
              if (rxViews.size < 32) postRx(op.length);
              break;
            case 'type': {
              typed += op.text;
              backend.events?.data(Buffer.from(op.text, 'latin1'));
              break;
            }
            case 'block':
              backend.blocked = true;
              break;
            case 'drain':
              backend.blocked = false;
              if (backend.waiting) {
                backend.waiting = false;
                backend.events?.drain();
              }
              break;
            case 'complete':
              backend.completeAll();
              break;
          }
          collect();
        }
        // Let everything finish: unblock, complete, and give the guest enough receive space.
        backend.blocked = false;
        backend.waiting = false;
        backend.events?.drain();
        backend.completeAll();
        collect();
        while (device.metrics.rxBufferedBytes > 0) {
          postRx(16);
          collect();
        }
        expect(txInUse).toBe(0);
        expect(backend.out).toBe(sent);
        expect(received).toBe(typed);
        expect(device.metrics.invalidChains).toBe(0);
        expect(driver.guardsIntact()).toBe(true);
      }),
      { numRuns: 150 },
    );
  });
});
