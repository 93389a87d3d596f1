// Errors of the virtio layer. Each class carries a stable string `code` that callers and
// tests match on. Two families matter to devices: guest faults (the frontend broke the
// protocol; log, count, and either skip the chain or set NEEDS_RESET) and host faults (our
// own misuse of the API; these throw and are bugs).

export type GuestMemoryErrorCode = 'GUEST_ADDRESS_OUT_OF_RANGE' | 'GUEST_MEMORY_UNSUPPORTED';

/** An access outside the shared region, or a region this host cannot serve. */
export class GuestMemoryError extends Error {
  override readonly name = 'GuestMemoryError';
  constructor(
    readonly code: GuestMemoryErrorCode,
    message: string,
    readonly gpa?: number,
    readonly length?: number,
  ) {
    super(message);
  }
}

export type QueueConfigErrorCode =
  | 'QUEUE_SIZE_INVALID'
  | 'QUEUE_RING_MISALIGNED'
  | 'QUEUE_RING_OUT_OF_RANGE';

/** The driver configured a queue the device cannot use (virtio 1.2 §2.7, §4.2.3.2). */
export class QueueConfigError extends Error {
  override readonly name = 'QueueConfigError';
  constructor(
    readonly code: QueueConfigErrorCode,
    message: string,
    readonly detail: Record<string, number> = {},
  ) {
    super(message);
  }
}

export type InvalidChainCode =
  | 'CHAIN_NEXT_OUT_OF_RANGE'
  | 'CHAIN_TOO_LONG'
  | 'CHAIN_BUFFER_OUT_OF_RANGE'
  | 'CHAIN_READABLE_AFTER_WRITABLE'
  | 'CHAIN_TOTAL_LENGTH_OVERFLOW'
  | 'CHAIN_INDIRECT_NOT_NEGOTIATED'
  | 'CHAIN_INDIRECT_NESTED'
  | 'CHAIN_INDIRECT_WITH_NEXT'
  | 'CHAIN_INDIRECT_BAD_LENGTH'
  | 'CHAIN_INDIRECT_OUT_OF_RANGE';

/**
 * One descriptor chain is malformed (a loop, an index or buffer out of range, a bad indirect
 * table, a readable buffer after a writable one, too long). A driver that writes such a chain
 * has corrupt rings, so, as QEMU's virtio_error does, the device counts it by code, sets
 * DEVICE_NEEDS_RESET and stops using the queue (take-chain.ts); nothing is returned for it.
 */
export class InvalidChainError extends Error {
  override readonly name = 'InvalidChainError';
  constructor(
    readonly code: InvalidChainCode,
    readonly head: number,
    message: string,
    readonly detail: Record<string, number> = {},
  ) {
    super(message);
  }
}

export type QueueCorruptCode = 'QUEUE_AVAIL_IDX_JUMP' | 'QUEUE_HEAD_OUT_OF_RANGE';

/**
 * The ring itself is inconsistent: nothing later in it can be trusted. The device calls
 * activation.fail(), which sets DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2).
 */
export class QueueCorruptError extends Error {
  override readonly name = 'QueueCorruptError';
  constructor(
    readonly code: QueueCorruptCode,
    message: string,
    readonly detail: Record<string, number> = {},
  ) {
    super(message);
  }
}

/** What the rings of a frontend can get wrong; each is counted by code in the transport's stats. */
export type RingFaultCode = InvalidChainCode | QueueCorruptCode;
