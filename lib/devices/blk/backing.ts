// Opening the disk's backing: a raw image file or a block device. It refuses, naming the path,
// what cannot be a disk (missing, a directory, smaller than one sector) and what another
// process already serves: like QEMU, it takes an advisory lock on the whole file, shared for a
// read-only disk and exclusive otherwise, so two daemons never write one image. The syscalls
// Node's fs lacks (the lock, a block device's size) come from the host (the addon), injected.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { SECTOR_SIZE } from './config.js';
import type { IoDone } from './engine.js';
import type { IoUringEngineOptions } from './engines/io-uring.js';
import { BlkBackingError } from './errors.js';

/** The host syscalls a backing needs beyond node:fs. */
export interface BlockHostOps {
  blockDeviceSize(fd: number): bigint;
  blockDevicePhysicalBlockSize(fd: number): number;
  /** Throws an errno error (EAGAIN, EACCES) when another process holds a conflicting lock. */
  lockFile(fd: number, exclusive: boolean): void;
  fallocate(fd: number, mode: 'punch-hole' | 'zero-range', offset: number, length: number, done: IoDone): void;
  /** A new io_uring of `entries` and its eventfd watcher; throws (ENOSYS, EPERM) where unavailable. */
  openUring?(entries: number): Pick<IoUringEngineOptions, 'ring' | 'watch'>;
}

export interface OpenBackingOptions {
  readonly path: string;
  readonly readOnly: boolean;
  /** Absent (tests without the addon): no lock is taken and block devices are refused. */
  readonly host?: BlockHostOps;
  /** Config key naming the path, for messages (default file_path). */
  readonly field?: string;
}

export interface Backing {
  readonly path: string;
  readonly fd: number;
  /** The same file opened O_DSYNC for write-through writes; undefined when read-only. */
  readonly dsyncFd: number | undefined;
  readonly sizeBytes: number;
  readonly physicalBlockSize: number;
  readonly isBlockDevice: boolean;
  /** Whether the lock was taken (false without host ops). */
  readonly locked: boolean;
  close(): Promise<void>;
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export async function openBacking(options: OpenBackingOptions): Promise<Backing> {
  const field = options.field ?? 'file_path';
  const file = options.path;
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new BlkBackingError('BLK_BACKING_MISSING', `'${file}' does not exist; create the disk image first (for example: truncate -s 1G ${file})`, field, { cause: err });
    }
    throw new BlkBackingError('BLK_BACKING_OPEN_FAILED', `cannot stat '${file}': ${String((err as Error).message)}`, field, { cause: err });
  }
  if (st.isDirectory()) throw new BlkBackingError('BLK_BACKING_NOT_A_FILE', `'${file}' is a directory; give the path of a disk image or a block device`, field);
  const isBlockDevice = st.isBlockDevice();
  if (!st.isFile() && !isBlockDevice) throw new BlkBackingError('BLK_BACKING_NOT_A_FILE', `'${file}' is neither a regular file nor a block device`, field);
  if (isBlockDevice && options.host === undefined) {
    throw new BlkBackingError('BLK_BACKING_OPEN_FAILED', `'${file}' is a block device, which needs the native addon to size`, field);
  }

  const flags = options.readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
  const opened: number[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(opened.splice(0).map((fd) => new Promise<void>((resolve) => fs.close(fd, () => resolve()))));
  };
  try {
    let fd: number;
    try {
      fd = await openFd(file, flags);
    } catch (err) {
      const code = errnoCode(err);
      const hint = code === 'EACCES' || code === 'EPERM' ? (options.readOnly ? '' : ' (read_only: true needs only read permission)') : '';
      throw new BlkBackingError('BLK_BACKING_OPEN_FAILED', `cannot open '${file}': ${code ?? String(err)}${hint}`, field, { cause: err });
    }
    opened.push(fd);
    let locked = false;
    if (options.host !== undefined) {
      try {
        options.host.lockFile(fd, !options.readOnly);
        locked = true;
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'EAGAIN' || code === 'EACCES' || code === 'EWOULDBLOCK') {
          throw new BlkBackingError('BLK_BACKING_LOCKED', `'${file}' is in use by another process (it holds a lock on it, as node-bao, bao-virtio-dm or QEMU do); stop that process or give this disk another image`, field, { cause: err });
        }
        throw new BlkBackingError('BLK_BACKING_OPEN_FAILED', `cannot lock '${file}': ${code ?? String(err)}`, field, { cause: err });
      }
    }
    let sizeBytes: number;
    let physicalBlockSize = SECTOR_SIZE;
    if (isBlockDevice) {
      const host = options.host!;
      sizeBytes = Number(host.blockDeviceSize(fd));
      try {
        physicalBlockSize = host.blockDevicePhysicalBlockSize(fd);
      } catch {
        physicalBlockSize = SECTOR_SIZE;
      }
    } else {
      sizeBytes = st.size;
      // A file's own blocks are the page-cache granule; 4 KiB is what ext4 and xfs use.
      physicalBlockSize = st.blksize >= SECTOR_SIZE && isPowerOfTwo(st.blksize) ? Math.min(st.blksize, 4096) : SECTOR_SIZE;
    }
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < SECTOR_SIZE) {
      throw new BlkBackingError('BLK_BACKING_TOO_SMALL', `'${file}' holds ${sizeBytes} bytes, less than one 512-byte sector; give the image a size (for example: truncate -s 1G ${file})`, field);
    }
    let dsyncFd: number | undefined;
    if (!options.readOnly) {
      dsyncFd = await openFd(file, fs.constants.O_RDWR | fs.constants.O_DSYNC);
      opened.push(dsyncFd);
    }
    const fds = [...opened];
    let closing: Promise<void> | undefined;
    return {
      path: file,
      fd,
      dsyncFd,
      sizeBytes,
      physicalBlockSize,
      isBlockDevice,
      locked,
      close: () => {
        closing ??= Promise.all(fds.map((f) => new Promise<void>((resolve) => fs.close(f, () => resolve())))).then(() => undefined);
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** A serial that stays the same for the same image across restarts: derived from its real path. */
export function serialFromPath(file: string): string {
  let resolved = path.resolve(file);
  try {
    resolved = fs.realpathSync(resolved);
  } catch {
    // A path that cannot be resolved now is still a stable name.
  }
  return `nb${createHash('sha256').update(resolved).digest('hex').slice(0, 18)}`;
}

function openFd(file: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
