// A recording double of a kernel vhost device's fd (/dev/vhost-net, /dev/vhost-vsock): every
// ioctl the device model makes is recorded as one line, in order, so that a test states the
// hand-over the kernel sees; `failOn` makes the first call starting with it throw, as a kernel
// refusal would. Each device's test adds its own ioctls (setNetBackend, setGuestCid, ...).

import type { VhostRingOps } from '../../../lib/vhost/kernel/vring-setup.js';

export class RecordingVhost implements VhostRingOps {
  readonly calls: string[] = [];
  features = 0n;
  failOn: string | undefined;

  constructor(
    readonly path: string,
    readonly kernelFeatures: bigint,
  ) {}

  protected rec(call: string): void {
    if (this.failOn !== undefined && call.startsWith(this.failOn)) throw new Error(`${call} failed`);
    this.calls.push(call);
  }
  getFeatures(): bigint {
    return this.kernelFeatures;
  }
  setFeatures(f: bigint): void {
    this.features = f;
    this.rec(`features 0x${f.toString(16)}`);
  }
  setMemTable(gpa: bigint, size: bigint, uaddr: bigint): void {
    this.rec(`mem 0x${gpa.toString(16)} 0x${size.toString(16)} 0x${uaddr.toString(16)}`);
  }
  setVringNum(i: number, n: number): void {
    this.rec(`num ${i} ${n}`);
  }
  setVringBase(i: number, b: number): void {
    this.rec(`base ${i} ${b}`);
  }
  getVringBase(i: number): number {
    this.rec(`getbase ${i}`);
    return 0;
  }
  setVringAddr(i: number, d: bigint, a: bigint, u: bigint): void {
    this.rec(`addr ${i} 0x${d.toString(16)} 0x${a.toString(16)} 0x${u.toString(16)}`);
  }
  setVringKick(i: number, fd: number): void {
    this.rec(`kick ${i} ${fd}`);
  }
  setVringCall(i: number, fd: number): void {
    this.rec(`call ${i} ${fd}`);
  }
}
