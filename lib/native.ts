// Loads the C++ addon (native/) with node-gyp-build and types it: the one place where the addon's
// surface is declared (STYLE.md guideline 8). Everything here is a thin syscall; policy lives in
// lib/dispatcher and lib/ipc. Failed syscalls throw a NativeErrnoError shape.

import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { IoctlName, Revision, StructName } from './uapi/revisions.js';
import type { StructLayout } from './uapi/layouts.js';

/** What every failed syscall throws: Node's fs error shape (errno is Node's negative errno). */
export interface NativeErrnoError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

/** COMPLETE refused by the hypervisor (spec §3.4): `status` is its (negative) status. */
export interface CompleteRejectedError extends Error {
  code: 'BAO_COMPLETE_REJECTED';
  status: number;
  errno?: number;
  syscall: string;
}

export interface NativeRevisionAbi {
  ioctlType: number;
  ioctls: Partial<Record<IoctlName, number>>;
  structs: Record<StructName, StructLayout>;
}

export interface NativeDmInfo {
  id: number;
  shmemAddr: bigint;
  shmemSize: bigint;
  irq: number;
}

export interface NativeConstants {
  PROT_READ: number;
  PROT_WRITE: number;
  EFD_NONBLOCK: number;
  EFD_CLOEXEC: number;
  EFD_SEMAPHORE: number;
  POLL_READABLE: number;
  POLL_WRITABLE: number;
  POLL_DISCONNECT: number;
  TUN_F_CSUM: number;
  TUN_F_TSO4: number;
  TUN_F_TSO6: number;
  TUN_F_TSO_ECN: number;
  TUN_F_UFO: number;
}

export type U64 = bigint | number;
/** 0 primary, 1 revA, 2 revB (lib/uapi REVISION_ID). */
export type RevisionId = 0 | 1 | 2;

export interface NativePoller {
  /** Starts (or changes) watching; `events` defaults to POLL_READABLE. */
  start(events?: number): void;
  stop(): void;
  /** Idempotent; the poller cannot be restarted. */
  close(): void;
  readonly active: boolean;
}

export interface NativeUring {
  readonly eventfd: number;
  readonly entries: number;
  /**
   * Each returns false when the submission queue is full (nothing queued). readv and writev move
   * `count` (offset, length) ranges of `region` (a Uint32Array, or a Float64Array of whole
   * numbers for regions past 4 GiB), each checked to lie inside it.
   */
  readv(fd: number, region: Uint8Array, spans: Uint32Array | Float64Array, count: number, offset: U64, tag: U64): boolean;
  writev(fd: number, region: Uint8Array, spans: Uint32Array | Float64Array, count: number, offset: U64, flags: number, tag: U64): boolean;
  fsync(fd: number, tag: U64): boolean;
  fallocate(fd: number, mode: number, offset: U64, length: U64, tag: U64): boolean;
  /** One io_uring_enter for everything queued; returns how many SQEs the kernel took. */
  submit(): number;
  /**
   * Writes the next completions into `out` (out[2i] = tag, out[2i+1] = bytes or -errno) and
   * returns how many, at most out.length / 2; clears the eventfd first, so a caller whose array
   * was filled calls again. Tags are 1..2^31-1.
   */
  reap(out: Int32Array): number;
  close(): void;
}

export type PollCallback = (err: NativeErrnoError | null, events: number) => void;

export type AttachEndReason = 'stopped' | 'dm-gone' | 'error';

/**
 * Called with a batch (`requests` = `count` raw 48-byte bao_virtio_request structs), or, once at the
 * end, with requests null and `end` set; `error` is set when end is 'error' or 'dm-gone'. A batch
 * of up to 16 comes in the same buffer every time: decode it before returning.
 */
export type AttachCallback = (
  requests: ArrayBuffer | null,
  count: number,
  error: NativeErrnoError | null,
  end: AttachEndReason | null,
) => void;

export interface NativeAttachLoop {
  /** Resolves once the thread has ended and been joined. Idempotent. */
  stop(): Promise<void>;
  readonly running: boolean;
}

export interface NativeAddon {
  abi(): Record<Revision, NativeRevisionAbi>;
  /** Primary ABI, on /dev/bao-io-dispatcher: a new DM fd each call (spec §3.4). */
  dmGetInfo(fd: number, id: number): NativeDmInfo & { fd: number };
  /** revA, on /dev/bao-dm<N>. */
  dmGetInfoRevA(fd: number, id: number): NativeDmInfo;
  /** revB, on /dev/bao: returns the DM fd. */
  createDm(fd: number, id: number, shmemAddr: U64, shmemSize: U64, irq: number): number;
  /** revB, on a DM fd. */
  dmGetInfoRevB(fd: number): NativeDmInfo;
  complete(
    fd: number,
    revision: RevisionId,
    dmId: U64,
    addr: U64,
    op: U64,
    value: U64,
    accessWidth: U64,
    requestId: U64,
  ): void;
  ioeventfd(fd: number, revision: RevisionId, eventfd: number, flags: number, addr: U64, len: number, data: U64): void;
  irqfd(fd: number, revision: RevisionId, eventfd: number, flags: number): void;
  /** MAP_SHARED mapping as an external ArrayBuffer; unmap with munmap (idempotent). */
  mmap(fd: number, length: U64, offset: U64, prot: number): ArrayBuffer;
  /** Unmaps and detaches the buffer (all its views become zero-length). */
  munmap(buffer: ArrayBuffer): void;
  eventfd(initval: number, flags: number): number;
  /** Master fd (O_NONBLOCK, O_CLOEXEC, raw line discipline) and the slave's path. */
  openpty(): { fd: number; path: string };
  /** One datagram to a unix socket ('@name': abstract namespace); returns the bytes sent. */
  sendUnixDatagram(path: string, data: Buffer): number;
  /** The same datagram with `fds` as SCM_RIGHTS (systemd's fd store, FDSTORE=1). */
  sendUnixDatagramFds(path: string, data: Buffer, fds: readonly number[]): number;
  /** FD_CLOEXEC on an fd inherited at exec (LISTEN_FDS). */
  setCloexec(fd: number): void;
  /** Size in bytes of a block device (BLKGETSIZE64). */
  blockDeviceSize(fd: number): bigint;
  /** Physical block size of a block device (BLKPBSZGET). */
  blockDevicePhysicalBlockSize(fd: number): number;
  /** Whole-file OFD lock (F_OFD_SETLK), write lock if exclusive; EAGAIN/EACCES when held elsewhere. */
  lockFile(fd: number, exclusive: boolean): void;
  /** fallocate(PUNCH_HOLE or ZERO_RANGE, KEEP_SIZE) on the libuv thread pool. */
  fallocate(fd: number, mode: 'punch-hole' | 'zero-range', offset: U64, length: U64, callback: (err: NativeErrnoError | null) => void): void;
  /** Connected AF_UNIX stream socket, non-blocking, close-on-exec. */
  unixConnect(path: string): number;
  /** A connected AF_UNIX stream pair, both ends non-blocking, close-on-exec. */
  socketPair(): [number, number];
  /** One sendmsg (MSG_DONTWAIT, MSG_NOSIGNAL) with `fds` as SCM_RIGHTS: bytes sent. */
  sendFds(fd: number, bytes: Uint8Array, fds?: readonly number[]): number;
  /** One recvmsg (MSG_DONTWAIT): bytes 0 = peer closed; EAGAIN thrown when empty. */
  recvFds(fd: number, into: Uint8Array): { bytes: number; fds: number[]; truncated: boolean };
  /** A listening AF_UNIX stream socket ('@name': abstract), non-blocking, close-on-exec. */
  unixListen(path: string, backlog?: number): number;
  /** One accept4 (non-blocking, close-on-exec); EAGAIN thrown when none waits. */
  unixAccept(fd: number): number;
  /** A bound AF_UNIX datagram socket, non-blocking, close-on-exec (read with recvFds). */
  unixDatagramBind(path: string): number;
  /** A kernel vhost ioctl (type 0xAF only) with its argument struct by pointer: the result. */
  vhostIoctl(fd: number, request: number, bytes?: Uint8Array): number;
  /** Process address of an mmap'ed ArrayBuffer (kernel vhost memory table). */
  mappingAddress(buffer: ArrayBuffer): bigint;
  /** A thin io_uring (native/uring.cc): its eventfd is readable when completions wait. */
  Uring: new (entries: number) => NativeUring;
  Poller: new (fd: number, callback: PollCallback) => NativePoller;
  /**
   * `options.cells`: a register cell table (lib/dispatcher/register-cells.ts) whose hits the thread
   * answers and COMPLETEs itself. `options.testStallMs` (tests only): the thread ignores signals
   * that long before its first ATTACH. `options.journal` (with journalOffset, journalSlots): the
   * thread records each request it takes there before handing it on (native/journal.h).
   */
  AttachLoop: new (
    fd: number,
    revision: RevisionId,
    callback: AttachCallback,
    options?: { cells?: ArrayBuffer; testStallMs?: number; journal?: ArrayBuffer; journalOffset?: number; journalSlots?: number },
  ) => NativeAttachLoop;
  /** The native thread's cell lookup without the ioctl: the read value or echoed write value on a hit, else null. */
  answerCell(table: ArrayBuffer, addr: U64, op: U64, width: U64, value: U64): number | null;
  /** Test hook: records one delivery's hand-off and JS turn in the table's timing block. */
  recordDelivery(table: ArrayBuffer, queuedNs: U64, startNs: U64, endNs: U64): void;
  /** The ATTACH thread's mark of a queued batch, then the time it left (0n: a batch the sampling does not time). Tests only. */
  markQueued(table: ArrayBuffer): bigint;
  /** TUNSETIFF as a tap with a vnet header (IFF_MULTI_QUEUE if asked); creates a missing name. */
  tapOpen(name: string, multiQueue: boolean): { fd: number; name: string };
  tapSetVnetHdrSize(fd: number, size: number): void;
  /** TUNSETOFFLOAD at once (takes rtnl: start-up only), or with a callback on the thread pool, callback(null) when done. */
  tapSetOffload(fd: number, flags: number, callback?: (err: NativeErrnoError | null) => void): void;
  /** Non-blocking readv into the views; bytes read (a tap: the frame's full length), -1 on EAGAIN. */
  readv(fd: number, buffers: readonly Uint8Array[]): number;
  /** Non-blocking writev of the views; bytes written, -1 on EAGAIN. */
  writev(fd: number, buffers: readonly Uint8Array[]): number;
  /** readv into `count` (offset, length) pairs of `spans`, ranges of `region` (checked); as readv. */
  readvSpans(fd: number, region: Uint8Array, spans: Uint32Array | Float64Array, count: number): number;
  /** writev of `count` (offset, length) ranges of `region`; as writev. */
  writevSpans(fd: number, region: Uint8Array, spans: Uint32Array | Float64Array, count: number): number;
  constants: NativeConstants;
}

/** The package root: one level above lib/ (sources under vitest) and dist/ (compiled). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let cached: NativeAddon | undefined;

/** The addon, loaded once (prebuilds/<platform>-<arch>/ or build/Release/bao.node). */
export function loadAddon(): NativeAddon {
  if (cached === undefined) {
    const require = createRequire(import.meta.url);
    const load = require('node-gyp-build') as (root: string) => unknown;
    cached = load(PACKAGE_ROOT) as NativeAddon;
  }
  return cached;
}

/** True when `e` has the errno error shape (native or Node's fs). */
export function isErrnoError(e: unknown): e is NativeErrnoError {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string' && typeof (e as { errno?: unknown }).errno === 'number';
}
