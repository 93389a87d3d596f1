// VhostFd: one open kernel vhost device (/dev/vhost-vsock, /dev/vhost-net) and its ioctls, with
// errors that say what to do. Owner of the fd: close() is idempotent.

import * as fs from 'node:fs';

import { isErrnoError, loadAddon, type NativeAddon } from '../../native.js';
import { memTablePayload, readVringState, u64Payload, vringAddrPayload, vringStatePayload } from '../user/protocol.js';
import * as K from './uapi.js';

export class VhostKernelError extends Error {
  override readonly name = 'VhostKernelError';
  constructor(
    readonly code: 'VHOST_UNAVAILABLE' | 'VHOST_DENIED' | 'VHOST_CID_IN_USE' | 'VHOST_IOCTL_FAILED',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class VhostFd {
  private fd_: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly addon: NativeAddon,
  ) {
    this.fd_ = fd;
  }

  /** Opens the node and becomes its owner (VHOST_SET_OWNER binds the kernel worker to us). */
  static open(path: string, addon: NativeAddon = loadAddon()): VhostFd {
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDWR);
    } catch (err) {
      const code = isErrnoError(err) ? err.code : '';
      if (code === 'ENOENT' || code === 'ENODEV') {
        const mod = path.endsWith('vhost-net') ? 'vhost_net' : 'vhost_vsock';
        throw new VhostKernelError('VHOST_UNAVAILABLE', `${path} does not exist: load the kernel module (modprobe ${mod}) or use data_plane: virtio`, { cause: err });
      }
      if (code === 'EACCES' || code === 'EPERM') throw new VhostKernelError('VHOST_DENIED', `no permission to open ${path}: run the daemon as root or give it access to the node`, { cause: err });
      throw new VhostKernelError('VHOST_UNAVAILABLE', `cannot open ${path}: ${String(err)}`, { cause: err });
    }
    const v = new VhostFd(path, fd, addon);
    try {
      v.ioctl('SET_OWNER', K.VHOST_SET_OWNER);
    } catch (err) {
      v.close();
      throw err;
    }
    return v;
  }

  get fd(): number {
    if (this.fd_ === undefined) throw new VhostKernelError('VHOST_IOCTL_FAILED', `${this.path} is closed`);
    return this.fd_;
  }

  getFeatures(): bigint {
    const b = new Uint8Array(8);
    this.ioctl('GET_FEATURES', K.VHOST_GET_FEATURES, b);
    return new DataView(b.buffer).getBigUint64(0, true);
  }

  setFeatures(features: bigint): void {
    this.ioctl('SET_FEATURES', K.VHOST_SET_FEATURES, u64Payload(features));
  }

  /** One region: guest-physical base, size, and where this process mapped it. */
  setMemTable(guestAddress: bigint, size: bigint, userspaceAddress: bigint): void {
    this.ioctl('SET_MEM_TABLE', K.VHOST_SET_MEM_TABLE, memTablePayload([{ guestPhysAddr: guestAddress, memorySize: size, userspaceAddr: userspaceAddress, mmapOffset: 0n }]));
  }

  setVringNum(index: number, num: number): void {
    this.ioctl('SET_VRING_NUM', K.VHOST_SET_VRING_NUM, vringStatePayload(index, num));
  }

  setVringBase(index: number, base: number): void {
    this.ioctl('SET_VRING_BASE', K.VHOST_SET_VRING_BASE, vringStatePayload(index, base));
  }

  getVringBase(index: number): number {
    const b = vringStatePayload(index, 0);
    this.ioctl('GET_VRING_BASE', K.VHOST_GET_VRING_BASE, b);
    return readVringState(b).num;
  }

  /** Userspace addresses of the three ring parts (in our mapping). */
  setVringAddr(index: number, desc: bigint, avail: bigint, used: bigint): void {
    this.ioctl('SET_VRING_ADDR', K.VHOST_SET_VRING_ADDR, vringAddrPayload({ index, flags: 0, desc, used, avail, log: 0n }));
  }

  setVringKick(index: number, fd: number): void {
    this.ioctl('SET_VRING_KICK', K.VHOST_SET_VRING_KICK, K.vringFile(index, fd));
  }

  setVringCall(index: number, fd: number): void {
    this.ioctl('SET_VRING_CALL', K.VHOST_SET_VRING_CALL, K.vringFile(index, fd));
  }

  setGuestCid(cid: bigint): void {
    try {
      this.ioctl('VSOCK_SET_GUEST_CID', K.VHOST_VSOCK_SET_GUEST_CID, u64Payload(cid));
    } catch (err) {
      if (err instanceof VhostKernelError && isErrnoError(err.cause) && err.cause.code === 'EADDRINUSE') {
        throw new VhostKernelError('VHOST_CID_IN_USE', `guest_cid ${cid} is already used by another vhost-vsock device or by this machine's own vsock transport: give each frontend its own CID`, { cause: err });
      }
      throw err;
    }
  }

  /** vhost-net: the tap fd queue `index` moves frames through; -1 detaches it (the kernel stops the ring first). */
  setNetBackend(index: number, fd: number): void {
    this.ioctl('NET_SET_BACKEND', K.VHOST_NET_SET_BACKEND, K.vringFile(index, fd));
  }

  setRunning(running: boolean): void {
    this.ioctl('VSOCK_SET_RUNNING', K.VHOST_VSOCK_SET_RUNNING, K.int32(running ? 1 : 0));
  }

  close(): void {
    const fd = this.fd_;
    this.fd_ = undefined;
    if (fd !== undefined) fs.closeSync(fd);
  }

  private ioctl(name: string, request: number, bytes?: Uint8Array): number {
    try {
      return this.addon.vhostIoctl(this.fd, request, bytes);
    } catch (err) {
      throw new VhostKernelError('VHOST_IOCTL_FAILED', `${name} on ${this.path} failed: ${String(err)}`, { cause: err });
    }
  }
}
