// The host side of a virtio-console port, behind one small interface: bytes out (guest output,
// with a completion callback and a backpressure signal) and bytes in (host input, pausable).
// StreamBackend adapts a Readable/Writable pair to it; the stdio, socket and PTY backends are
// built on it.

import type { Readable, Writable } from 'node:stream';

export type ConsoleBackendKind = 'stdio' | 'socket' | 'pty';

export interface ConsoleBackendEvents {
  /** Host input destined for the guest. The chunk is the backend's; copy what you keep. */
  data(chunk: Uint8Array): void;
  /** After write() returned false: the backend can take output again. */
  drain(): void;
}

export interface ConsoleBackendStats {
  /** Guest output discarded because nothing was connected (socket backend without a client). */
  readonly discardedBytes: number;
}

export interface ConsoleBackend {
  readonly kind: ConsoleBackendKind;
  /** For logs: "socket /run/c0.sock", "pty /dev/pts/3 (alias /tmp/c0)". */
  readonly description: string;
  readonly stats: ConsoleBackendStats;
  /** Starts delivering input and drain events; called once, by the device. */
  start(events: ConsoleBackendEvents): void;
  /**
   * Sends guest output. `chunk` may be a view onto guest memory: the backend keeps it without
   * copying until `done` is called, after which the caller may hand the buffer back to the
   * guest. Returns false when the caller should wait for drain() before writing more.
   */
  write(chunk: Uint8Array, done: (err?: Error | null) => void): boolean;
  pauseInput(): void;
  resumeInput(): void;
  /** Stops input, releases host resources (socket file, PTY alias). Idempotent. */
  close(): Promise<void>;
}

/**
 * How a StreamBackend treats output the host side does not take. 'backpressure' (default):
 * zero-copy writes, write() returns false and the device waits for drain. 'lossy': output is
 * copied and acknowledged at once; once `maxQueuedBytes` are queued the rest is discarded and
 * counted, so the guest never stalls on a side nobody reads (a PTY with no terminal attached).
 */
export type OutputPolicy = { readonly kind: 'backpressure' } | { readonly kind: 'lossy'; readonly maxQueuedBytes: number };

/** Wraps an input/output stream pair; `release` undoes what the concrete backend set up. */
export class StreamBackend implements ConsoleBackend {
  protected events: ConsoleBackendEvents | undefined;
  protected paused = false;
  private discarded = 0;
  private closing: Promise<void> | undefined;
  private readonly onData = (chunk: Buffer | string): void => {
    this.events?.data(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  };
  private readonly onDrain = (): void => this.events?.drain();
  private readonly onError = (): void => {
    // A broken pipe on the host side must not crash the daemon; writes report it via done().
  };

  constructor(
    readonly kind: ConsoleBackendKind,
    readonly description: string,
    private readonly input: Readable | NodeJS.ReadableStream,
    private readonly output: Writable | NodeJS.WritableStream,
    private readonly release: () => Promise<void> = async () => {},
    private readonly policy: OutputPolicy = { kind: 'backpressure' },
  ) {}

  get stats(): ConsoleBackendStats {
    return { discardedBytes: this.discarded };
  }

  start(events: ConsoleBackendEvents): void {
    this.events = events;
    this.input.on('data', this.onData);
    this.input.on('error', this.onError);
    this.output.on('drain', this.onDrain);
    this.output.on('error', this.onError);
    if (this.paused) this.input.pause();
    else this.input.resume();
  }

  write(chunk: Uint8Array, done: (err?: Error | null) => void): boolean {
    if (this.policy.kind === 'backpressure') return this.output.write(chunk, (err?: Error | null) => done(err));
    const queued = (this.output as { writableLength?: number }).writableLength ?? 0;
    if (queued + chunk.length > this.policy.maxQueuedBytes) this.discarded += chunk.length;
    else this.output.write(Buffer.from(chunk)); // a copy: the guest gets its buffer back now
    done(null);
    return true;
  }

  pauseInput(): void {
    this.paused = true;
    this.input.pause();
  }

  resumeInput(): void {
    this.paused = false;
    if (this.events !== undefined) this.input.resume();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.input.removeListener('data', this.onData);
      this.output.removeListener('drain', this.onDrain);
      this.input.pause();
      this.events = undefined;
      await this.release();
      // Listeners for 'error' stay: a late EPIPE after close must still be swallowed.
    })();
    return this.closing;
  }
}
