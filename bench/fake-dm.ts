// A device-model handle as DeviceModelServer uses it, with no Bao and no addon: the region is a
// Uint8Array, the eventfds are objects, trapped accesses are delivered by the bench, completions
// keep only the last value. Used by memory.bench.ts and idle.bench.ts.

import type { DeviceModelHandle, IoRequest } from '../lib/dispatcher/index.js';
import { IoOp } from '../lib/uapi/constants.js';
import type { MmioTransport } from '../lib/virtio/mmio-transport.js';

export class FakeEventFd {
  private static nextFd = 1000;
  readonly fd = FakeEventFd.nextFd++;
  private pending = 0n;
  private onReadable: (() => void) | undefined;
  signals = 0;
  signal(): void {
    this.signals += 1;
  }
  read(): bigint | null {
    const v = this.pending;
    this.pending = 0n;
    return v === 0n ? null : v;
  }
  poll(cb: () => void) {
    this.onReadable = cb;
    return { stop: () => undefined };
  }
  close(): void {}
  /** What the kernel does when a QueueNotify write matches this ioeventfd. */
  kick(): void {
    this.pending += 1n;
    this.onReadable?.();
  }
}

export class FakeHandle {
  readonly info: { id: number; shmemAddr: bigint; shmemSize: bigint; irq: number };
  readonly fd = 7;
  readonly bytes: Uint8Array;
  readonly kicks: FakeEventFd[] = [];
  irqfd: FakeEventFd | undefined;
  deliver: ((reqs: IoRequest[]) => void) | undefined;
  lastValue: number | bigint = 0;
  completions = 0;
  constructor(id: number, shmemAddr: number, size: number) {
    this.info = { id, shmemAddr: BigInt(shmemAddr), shmemSize: BigInt(size), irq: 48 + id };
    this.bytes = new Uint8Array(size);
  }
  map() {
    return { bytes: this.bytes, address: 0x7f00_0000_0000n };
  }
  createEventFd(): FakeEventFd {
    return new FakeEventFd();
  }
  assignIrqfd(e: FakeEventFd): void {
    this.irqfd = e;
  }
  deassignIrqfd(): void {}
  assignIoeventfd(spec: { eventfd: FakeEventFd }): void {
    this.kicks.push(spec.eventfd);
  }
  attach(onRequests: (reqs: IoRequest[]) => void) {
    this.deliver = onRequests;
    return { stop: async () => undefined };
  }
  complete(_req: IoRequest, value: number | bigint = 0): void {
    this.lastValue = value;
    this.completions += 1;
  }
  async close(): Promise<void> {}
  get asHandle(): DeviceModelHandle {
    return this as unknown as DeviceModelHandle;
  }
}

/**
 * The frontend's register accesses as trapped accesses of `handle` (one batch each, as the ATTACH
 * loop delivers them), shaped as the transport MockDriver talks to.
 */
export function trappedBus(handle: FakeHandle, mmio: number, device: unknown): MmioTransport {
  let requestId = 0;
  return {
    device,
    read(offset: number, width: number): number {
      handle.deliver?.([{ dmId: handle.info.id, addr: mmio + offset, op: IoOp.Read, value: 0n, accessWidth: width, requestId: requestId++ }]);
      return Number(handle.lastValue);
    },
    write(offset: number, width: number, value: number): void {
      handle.deliver?.([{ dmId: handle.info.id, addr: mmio + offset, op: IoOp.Write, value: BigInt(value), accessWidth: width, requestId: requestId++ }]);
    },
  } as unknown as MmioTransport;
}
