// IpcDevice: one open /dev/baoipc<N> (spec §7). read/write go at explicit offsets with
// pread/pwrite, because OOT/v1/v2 have no llseek and the file position is shared between read
// and write; every write() also notifies the peers (IPC hypercall, §7.3). mmap offsets are
// relative to the start of the whole region (v1/v2); revA/revB split it into read then write
// region, and revB refuses PROT_WRITE on the read region (§7.4).

import * as fs from 'node:fs';
import * as path from 'node:path';

import { Mapping } from '../dispatcher/mapping.js';
import { isErrnoError, type NativeAddon } from '../native.js';
import { IpcClosedError, IpcNotFoundError, IpcPermissionError } from './errors.js';

export interface IpcOpenOptions {
  readonly devRoot?: string;
  readonly addon?: NativeAddon;
}

export interface IpcMapOptions {
  readonly offset?: number;
  readonly length: number;
  /** Default true; the read channel on revB must be mapped read-only. */
  readonly writable?: boolean;
}

export class IpcDevice {
  readonly path: string;
  private fd_: number | undefined;
  private readonly addon: NativeAddon | undefined;
  private readonly mappings = new Set<Mapping>();

  private constructor(path: string, fd: number, addon: NativeAddon | undefined) {
    this.path = path;
    this.fd_ = fd;
    this.addon = addon;
  }

  /** Open /dev/baoipc<id> (or an explicit path) read-write. */
  static open(idOrPath: number | string, options: IpcOpenOptions = {}): IpcDevice {
    const p = typeof idOrPath === 'number' ? path.join(options.devRoot ?? '/dev', `baoipc${idOrPath}`) : idOrPath;
    let fd: number;
    try {
      fd = fs.openSync(p, fs.constants.O_RDWR);
    } catch (e) {
      if (isErrnoError(e) && e.code === 'ENOENT') throw new IpcNotFoundError(p, e);
      if (isErrnoError(e) && (e.code === 'EACCES' || e.code === 'EPERM')) throw new IpcPermissionError(p, e);
      throw e;
    }
    return new IpcDevice(p, fd, options.addon);
  }

  get closed(): boolean {
    return this.fd_ === undefined;
  }

  get fd(): number {
    if (this.fd_ === undefined) throw new IpcClosedError(this.path);
    return this.fd_;
  }

  /** pread into `target` from the read channel at `offset`; returns the byte count (0 at the end). */
  readInto(target: Uint8Array, offset: number): number {
    return fs.readSync(this.fd, target, 0, target.byteLength, offset);
  }

  /** Up to `length` bytes of the read channel from `offset` (fewer at its end). */
  read(offset: number, length: number): Buffer {
    const buf = Buffer.alloc(length);
    const n = this.readInto(buf, offset);
    return n === length ? buf : buf.subarray(0, n);
  }

  /** pwrite into the write channel at `offset` (clamped by the driver) and notify the peers. */
  write(data: Uint8Array | string, offset: number): number {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    return fs.writeSync(this.fd, bytes, 0, bytes.byteLength, offset);
  }

  /** mmap part of the region (MAP_SHARED); unmapped with the device at the latest. */
  map(options: IpcMapOptions): Mapping {
    const m = Mapping.map(this.fd, options.length, {
      offset: options.offset ?? 0,
      ...(options.writable === undefined ? {} : { writable: options.writable }),
      ...(this.addon === undefined ? {} : { addon: this.addon }),
    });
    this.mappings.add(m);
    return m;
  }

  /** Idempotent; unmaps this device's mappings, then closes the fd. */
  close(): void {
    const fd = this.fd_;
    if (fd === undefined) return;
    for (const m of this.mappings) m.unmap();
    this.mappings.clear();
    this.fd_ = undefined;
    fs.closeSync(fd);
  }
}
