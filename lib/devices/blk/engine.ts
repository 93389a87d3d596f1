// The I/O engine contract: the few operations the device asks of its backing, each on byte
// offsets already validated against the capacity, with data as an IoVector: ranges of the
// guest's buffers (the engine reads into and writes from them in place). An engine knows nothing
// of virtio. Completion callbacks may arrive in any order; err carries the errno `code` of the
// failure. An engine may keep the vector it is given until it calls done: the caller does not
// change it meanwhile (the block device makes one per request), so no engine copies it.

import type { IoVector } from './io-vector.js';

export type IoDone = (err: NodeJS.ErrnoException | null) => void;

export interface BlkEngine {
  /** 'thread-pool' or 'io_uring': logged at start and shown in the device's status. */
  readonly name: string;
  /** Whether discard() and writeZeroes() are available (hole punching needs fallocate). */
  readonly canDiscard: boolean;
  /** Fill `data` with the bytes at `offset`; bytes past the end of the backing read as zero. */
  read(data: IoVector, offset: number, done: IoDone): void;
  /** Write `data` at `offset`; `durable` asks for write-through (on stable storage when done). */
  write(data: IoVector, offset: number, durable: boolean, done: IoDone): void;
  /** Make every write completed before this call durable (fdatasync). */
  flush(done: IoDone): void;
  /** Deallocate the range (reads as zeros afterwards). */
  discard(offset: number, length: number, done: IoDone): void;
  /** Zero the range; `unmap` allows deallocating it. */
  writeZeroes(offset: number, length: number, unmap: boolean, done: IoDone): void;
  /** Release the engine's resources; every callback has been called before it resolves. */
  close(): Promise<void>;
}
