// ConsoleOutput: guest output on its way to the backend, held in host memory. The guest's
// bytes are copied out of its buffers when the transmit chain is taken, so the chain goes back
// to the guest at once (Linux's hvc output spins with interrupts off until it does) and no
// backend write ever reads guest memory later (nothing after a reset, nothing after unmap).
// What is held for a slow or stalled peer (queued here plus handed to the backend and not yet
// confirmed written) is bounded by `limit`; output beyond it is dropped and counted, as a UART
// with nobody reading loses characters. The backend gets writes only while it accepts them
// (write() returning false stops them until drain), so its own buffer stays within the bound.

import type { ConsoleBackend } from './backends/backend.js';

/** Small chunks queued while the backend is busy are packed into chunks of this size. */
const PACK_SIZE = 4096;

interface Chunk {
  readonly bytes: Uint8Array;
  used: number;
}

export class ConsoleOutput {
  private readonly queue: Chunk[] = [];
  private queuedBytes = 0;
  private inBackend = 0;
  private blocked = false;

  constructor(
    private readonly backend: ConsoleBackend,
    readonly limit: number,
  ) {}

  /** Bytes held for the backend now (a gauge). */
  get heldBytes(): number {
    return this.queuedBytes + this.inBackend;
  }

  /** Bytes push() would take now. */
  room(): number {
    return Math.max(0, this.limit - this.heldBytes);
  }

  /**
   * Copies as much of `data` as fits (it may be a view onto guest memory: it is not kept) and
   * returns the bytes taken; the caller counts the rest as dropped.
   */
  push(data: Uint8Array): number {
    const take = Math.min(data.length, this.room());
    if (take === 0) return 0;
    this.append(data.subarray(0, take));
    this.flush();
    return take;
  }

  /** Adds bytes already copied by the caller (no second copy); the caller checked room(). */
  pushCopy(copy: Uint8Array): void {
    this.queue.push({ bytes: copy, used: copy.length });
    this.queuedBytes += copy.length;
    this.flush();
  }

  /** The backend can take output again. */
  drained(): void {
    this.blocked = false;
    this.flush();
  }

  private append(data: Uint8Array): void {
    const last = this.queue.at(-1);
    if (last !== undefined && last.bytes.length - last.used >= data.length) {
      last.bytes.set(data, last.used);
      last.used += data.length;
    } else {
      const bytes = new Uint8Array(this.blocked ? Math.max(PACK_SIZE, data.length) : data.length);
      bytes.set(data);
      this.queue.push({ bytes, used: data.length });
    }
    this.queuedBytes += data.length;
  }

  private flush(): void {
    while (!this.blocked && this.queue.length > 0) {
      const chunk = this.queue.shift()!;
      const n = chunk.used;
      this.queuedBytes -= n;
      this.inBackend += n;
      let settled = false;
      const more = this.backend.write(chunk.bytes.subarray(0, n), () => {
        if (settled) return;
        settled = true;
        this.inBackend -= n;
      });
      if (!more) this.blocked = true;
    }
  }
}
