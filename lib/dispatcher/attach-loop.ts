// AttachLoop: the request stream of one device model. The addon runs one thread blocked in
// IO_CLIENT_ATTACH (spec §3.4) and wakes JS once per burst; this wrapper decodes the batch into
// IoRequest objects, turns the thread's end into `ended`, and makes stop() idempotent.

import {
  loadAddon,
  type AttachEndReason,
  type NativeAddon,
  type NativeAttachLoop,
  type NativeErrnoError,
  type RevisionId,
} from '../native.js';
import { DeviceModelGoneError } from './errors.js';
import type { RegisterCellTable } from './register-cells.js';
import { decodeRequests, type IoRequest } from './request.js';

export type OnRequests = (requests: IoRequest[]) => void;
/** Errors that end the loop: a syscall error (code/errno/syscall) or DeviceModelGoneError. */
export type OnAttachError = (error: Error) => void;

export interface AttachOptions {
  /** Accesses hitting these cells are answered by the native thread and never reach onRequests. */
  readonly cells?: RegisterCellTable;
  /** Where the native thread records each request it takes before handing it on (native/journal.h). */
  readonly journal?: { readonly buffer: ArrayBuffer; readonly offset: number; readonly slots: number };
}

export interface AttachEnd {
  readonly reason: AttachEndReason;
  readonly error?: Error;
}

export class AttachLoop {
  /** Settles (never rejects) when the native thread has ended and been joined. */
  readonly ended: Promise<AttachEnd>;
  private native: NativeAttachLoop;
  private stopping: Promise<void> | undefined;
  private done = false;

  constructor(
    fd: number,
    revision: RevisionId,
    dmId: number,
    onRequests: OnRequests,
    onError: OnAttachError,
    addon: NativeAddon = loadAddon(),
    options: AttachOptions = {},
  ) {
    let settle: (end: AttachEnd) => void = () => {};
    this.ended = new Promise<AttachEnd>((resolve) => {
      settle = resolve;
    });
    // The addon delivers into the same buffer each time (AttachCallback): one view over it.
    let viewOf: ArrayBuffer | undefined;
    let view: DataView | undefined;
    this.native = new addon.AttachLoop(fd, revision, (buffer, count, err, end) => {
      if (buffer !== null) {
        if (buffer !== viewOf || view === undefined) {
          viewOf = buffer;
          view = new DataView(buffer);
        }
        onRequests(decodeRequests(buffer, count, view));
        return;
      }
      if (end === null) return;
      this.done = true;
      let error: Error | undefined;
      if (end === 'dm-gone') error = new DeviceModelGoneError(dmId, err);
      else if (end === 'error') error = err ?? undefined;
      // Settle first: an onError that throws must not leave `ended` pending.
      settle(error === undefined ? { reason: end } : { reason: end, error });
      if (error !== undefined) onError(error);
    }, nativeAttachOptions(options));
  }

  get running(): boolean {
    return !this.done;
  }

  /** Ends the thread (signal + join, natively) and resolves when it is gone. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.native.stop();
    return this.stopping;
  }
}

function nativeAttachOptions(options: AttachOptions): { cells?: ArrayBuffer; journal?: ArrayBuffer; journalOffset?: number; journalSlots?: number } | undefined {
  if (options.cells === undefined && options.journal === undefined) return undefined;
  return {
    ...(options.cells === undefined ? {} : { cells: options.cells.buffer }),
    ...(options.journal === undefined ? {} : { journal: options.journal.buffer, journalOffset: options.journal.offset, journalSlots: options.journal.slots }),
  };
}

export type { NativeErrnoError };
