// Host-side errors of the block device: a backing that cannot serve as a disk. `field` names
// the config key at fault so the daemon's message points at it (devices[1].file_path: ...).

export type BlkBackingErrorCode =
  | 'BLK_BACKING_MISSING'
  | 'BLK_BACKING_NOT_A_FILE'
  | 'BLK_BACKING_TOO_SMALL'
  | 'BLK_BACKING_LOCKED'
  | 'BLK_BACKING_OPEN_FAILED'
  | 'BLK_ENGINE_UNAVAILABLE';

export class BlkBackingError extends Error {
  override readonly name = 'BlkBackingError';

  constructor(
    readonly code: BlkBackingErrorCode,
    message: string,
    readonly field: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
