// DeviceModelHandle: the one owner of one device model's fd (spec §3), and of what hangs off it:
// the shared-memory mapping, ATTACH loops, and the EventFds it created. close() is idempotent and
// cascades: loops stopped and joined, mapping unmapped, owned eventfds closed, then the DM fd is
// closed or, where closing it is fatal, kept open until the process exits (see closeDmFd).

import * as fs from 'node:fs';

import type { NativeAddon, RevisionId } from '../native.js';
import { ACCESS_WIDTHS, IOEVENTFD_FLAG_DATAMATCH, IOEVENTFD_FLAG_DEASSIGN, IRQFD_FLAG_DEASSIGN, IoOp } from '../uapi/constants.js';
import type { Revision } from '../uapi/revisions.js';
import { AttachLoop, type AttachOptions, type OnAttachError, type OnRequests } from './attach-loop.js';
import { HandleClosedError, InvalidArgumentError } from './errors.js';
import { EventFd, type EventFdOptions } from './eventfd.js';
import { Mapping } from './mapping.js';
import type { IoRequest } from './request.js';
import type { DeviceModelInfo, DmFdClosePolicy } from './revision-ops.js';

export interface IoeventfdSpec {
  readonly eventfd: EventFd;
  /** Frontend GPA of the register (exact match, spec §3.7); virtio-mmio QueueNotify = base + 0x50. */
  readonly addr: number | bigint;
  /** 1, 2, 4 or 8 */
  readonly len: number;
  /** Only signal when the written value equals this (full 64-bit compare); omitted = any write. */
  readonly datamatch?: number | bigint;
}

/**
 * DM fds the process must not close (OOT: use-after-free, v1: destroys the DM; spec §3.5). Kept
 * here so the fd stays referenced until exit and a reopened id reuses it instead of piling up fds.
 */
const keptOpen = new Map<string, { fd: number; info: DeviceModelInfo }>();

/** Take a kept-open DM fd for a new owner (it leaves the registry: one owner per fd). */
export function takeKeptOpenDmFd(key: string): { fd: number; info: DeviceModelInfo } | undefined {
  const kept = keptOpen.get(key);
  keptOpen.delete(key);
  return kept;
}

const U32_MASK = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];

export class DeviceModelHandle {
  readonly revision: Revision;
  readonly info: DeviceModelInfo;
  private fd_: number | undefined;
  private readonly revId: RevisionId;
  private readonly addon: NativeAddon;
  private readonly closePolicy: DmFdClosePolicy;
  private readonly keepKey: string;
  private mapping: Mapping | undefined;
  private readonly loops = new Set<AttachLoop>();
  private readonly eventfds = new Set<EventFd>();
  private closing: Promise<void> | undefined;

  /** Made by BaoDriver.openDeviceModel; not meant to be constructed directly. */
  constructor(init: {
    addon: NativeAddon;
    revision: Revision;
    revisionId: RevisionId;
    fd: number;
    info: DeviceModelInfo;
    closePolicy: DmFdClosePolicy;
    keepKey: string;
  }) {
    this.addon = init.addon;
    this.revision = init.revision;
    this.revId = init.revisionId;
    this.fd_ = init.fd;
    this.info = init.info;
    this.closePolicy = init.closePolicy;
    this.keepKey = init.keepKey;
  }

  get id(): number {
    return this.info.id;
  }

  get closed(): boolean {
    return this.fd_ === undefined;
  }

  /** The DM fd (for vhost wiring and diagnostics; the handle stays its only owner). */
  get fd(): number {
    if (this.fd_ === undefined) throw new HandleClosedError(`device model ${this.id}`);
    return this.fd_;
  }

  /** The whole shared region, offset 0, read-write (spec §3.5); the same Mapping on every call. */
  map(): Mapping {
    const fd = this.fd;
    if (this.mapping === undefined || this.mapping.closed) {
      this.mapping = Mapping.map(fd, this.info.shmemSize, { addon: this.addon });
    }
    return this.mapping;
  }

  /**
   * Start serving requests: one native thread blocks in ATTACH and hands bursts to `onRequests`.
   * Answer each with complete(). `onError` gets the error that ended the loop (syscall error, or
   * DeviceModelGoneError when the driver tears the DM down).
   */
  attach(onRequests: OnRequests, onError: OnAttachError, options: AttachOptions = {}): AttachLoop {
    const loop = new AttachLoop(this.fd, this.revId, this.id, onRequests, onError, this.addon, options);
    this.loops.add(loop);
    void loop.ended.then(() => this.loops.delete(loop));
    return loop;
  }

  /**
   * COMPLETE a request: dm_id, addr, op and request_id are echoed unchanged; a READ returns
   * `readValue` zero-extended to the access width (the hypervisor writes it verbatim, §3.9), a
   * WRITE echoes the guest's value. Throws code BAO_COMPLETE_REJECTED if the hypervisor refuses.
   */
  complete(request: IoRequest, readValue: number | bigint = 0): void {
    let value: number | bigint = request.value;
    if (request.op === IoOp.Read) {
      const width = request.accessWidth;
      if (typeof readValue === 'number' && width <= 4 && Number.isSafeInteger(readValue)) {
        value = width === 4 ? readValue >>> 0 : readValue & (U32_MASK[width] ?? 0xffffffff);
      } else {
        const bits = BigInt(Math.min(width, 8) * 8);
        value = BigInt.asUintN(Number(bits), BigInt(readValue));
      }
    }
    this.addon.complete(this.fd, this.revId, request.dmId, request.addr, request.op, value, request.accessWidth, request.requestId);
  }

  /** An EventFd owned by this handle (closed with it). */
  createEventFd(options: Omit<EventFdOptions, 'addon'> = {}): EventFd {
    const fd = this.fd; // throws when closed
    void fd;
    const e = EventFd.create({ ...options, addon: this.addon });
    this.eventfds.add(e);
    return e;
  }

  /** An eventfd kept from a previous process, owned by this handle from now on (closed with it). */
  adoptEventFd(fd: number): EventFd {
    void this.fd; // throws when closed
    const e = EventFd.adopt(fd, { addon: this.addon });
    this.eventfds.add(e);
    return e;
  }

  /** Kernel-side kick path (spec §3.7): matching writes signal the eventfd and never reach ATTACH. */
  assignIoeventfd(spec: IoeventfdSpec): void {
    this.ioeventfd(spec, 0);
  }

  /** Sent as the ABI defines it, but OOT/v1/v2 re-register right after removing (spec §3.7). */
  deassignIoeventfd(spec: IoeventfdSpec): void {
    this.ioeventfd(spec, IOEVENTFD_FLAG_DEASSIGN);
  }

  /** Writes to `eventfd` raise the frontend interrupt (spec §3.8). EBUSY if already assigned. */
  assignIrqfd(eventfd: EventFd): void {
    this.addon.irqfd(this.fd, this.revId, eventfd.fd, 0);
  }

  deassignIrqfd(eventfd: EventFd): void {
    this.addon.irqfd(this.fd, this.revId, eventfd.fd, IRQFD_FLAG_DEASSIGN);
  }

  private ioeventfd(spec: IoeventfdSpec, flags: number): void {
    if (!ACCESS_WIDTHS.includes(spec.len)) throw new InvalidArgumentError(`ioeventfd len must be 1, 2, 4 or 8, got ${spec.len}`);
    let f = flags;
    let data: number | bigint = 0;
    if (spec.datamatch !== undefined) {
      f |= IOEVENTFD_FLAG_DATAMATCH;
      data = spec.datamatch;
    }
    this.addon.ioeventfd(this.fd, this.revId, spec.eventfd.fd, f, spec.addr, spec.len, data);
  }

  /** Idempotent; resolves once every loop thread has been joined. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    // Loops first: their threads use the fd. The fd stays open until they are joined.
    await Promise.all([...this.loops].map((l) => l.stop()));
    this.loops.clear();
    this.mapping?.unmap();
    this.mapping = undefined;
    for (const e of this.eventfds) e.close();
    this.eventfds.clear();
    const fd = this.fd_;
    this.fd_ = undefined;
    if (fd === undefined) return;
    if (this.closePolicy === 'close') fs.closeSync(fd);
    else keptOpen.set(this.keepKey, { fd, info: this.info });
  }
}
