// Mapping: one owner for one mmap'ed region (a DM's shared memory, an IPC region). The bytes
// are the mapping itself (no copy); unmap() is explicit and idempotent, the ArrayBuffer's
// finalizer unmaps what was forgotten, and after unmap the addon detaches the buffer, so a
// stale view reads as empty and this wrapper throws MappingClosedError instead of crashing.

import { loadAddon, type NativeAddon } from '../native.js';
import { InvalidArgumentError, MappingClosedError } from './errors.js';

export interface MapOptions {
  /** Offset into the file (v1/v2 DM fds: must be 0; IPC v2: relative to the region start). */
  readonly offset?: number | bigint;
  /** Default read-write. */
  readonly writable?: boolean;
  readonly addon?: NativeAddon;
}

export class Mapping {
  readonly length: number;
  private buffer_: ArrayBuffer | undefined;
  private bytes_: Uint8Array | undefined;
  private readonly addon: NativeAddon;

  private constructor(addon: NativeAddon, buffer: ArrayBuffer) {
    this.addon = addon;
    this.buffer_ = buffer;
    this.bytes_ = new Uint8Array(buffer);
    this.length = buffer.byteLength;
  }

  /** mmap(fd, length, offset) MAP_SHARED. */
  static map(fd: number, length: number | bigint, options: MapOptions = {}): Mapping {
    const addon = options.addon ?? loadAddon();
    const len = typeof length === 'bigint' ? Number(length) : length;
    if (!Number.isSafeInteger(len) || len <= 0) throw new InvalidArgumentError(`mapping length must be a positive integer, got ${length}`);
    const c = addon.constants;
    const prot = options.writable === false ? c.PROT_READ : c.PROT_READ | c.PROT_WRITE;
    return new Mapping(addon, addon.mmap(fd, len, options.offset ?? 0, prot));
  }

  get closed(): boolean {
    return this.buffer_ === undefined;
  }

  /** The whole region as bytes (the same view every time). */
  get bytes(): Uint8Array {
    if (this.bytes_ === undefined) throw new MappingClosedError();
    return this.bytes_;
  }

  get arrayBuffer(): ArrayBuffer {
    if (this.buffer_ === undefined) throw new MappingClosedError();
    return this.buffer_;
  }

  /** The mapping's address in this process (kernel vhost memory tables name it). */
  get address(): bigint {
    return this.addon.mappingAddress(this.arrayBuffer);
  }

  /** A bounds-checked view of [offset, offset + length). */
  view(offset: number, length: number): Uint8Array {
    const bytes = this.bytes;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.length) {
      throw new InvalidArgumentError(`view [${offset}, ${offset + length}) is outside the ${this.length}-byte mapping`);
    }
    return bytes.subarray(offset, offset + length);
  }

  /** Idempotent. */
  unmap(): void {
    const buffer = this.buffer_;
    if (buffer === undefined) return;
    this.buffer_ = undefined;
    this.bytes_ = undefined;
    this.addon.munmap(buffer);
  }
}
