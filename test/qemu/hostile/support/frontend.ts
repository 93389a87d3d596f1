// A hostile frontend played from inside the guest: register accesses go through bao-sim's
// debugfs `access` file (a vCPU's trapped access: the write blocks until the backend completes
// it; `kick` posts it), and the rings and buffers live in the device model's private shared
// region, which this process maps through its own DM fd while the daemon serves it
// (shared/docs/test-machine-notes.md). Ring memory is the test's: it writes whatever it likes
// at known guest-physical addresses.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

import { Mapping } from '../../../../lib/dispatcher/mapping.js';
import { addon, openDispatcher } from '../../support/backend.js';
import { DEBUGFS, dmInfo } from '../../support/bao-sim.js';

export type Op =
  | { readonly op: 'read'; readonly off: number; readonly width: number }
  | { readonly op: 'write' | 'kick'; readonly off: number; readonly width: number; readonly value: bigint | number };

export const read = (off: number, width = 4): Op => ({ op: 'read', off, width });
export const write = (off: number, value: bigint | number, width = 4): Op => ({ op: 'write', off, width, value });
export const post = (off: number, value: bigint | number, width = 4): Op => ({ op: 'kick', off, width, value });

const hex = (v: bigint | number): string => `0x${BigInt.asUintN(64, BigInt(v)).toString(16)}`;

/** Register offsets (virtio 1.2 §4.2.2). */
export const REG = {
  magic: 0x000,
  deviceFeatures: 0x010,
  deviceFeaturesSel: 0x014,
  driverFeatures: 0x020,
  driverFeaturesSel: 0x024,
  queueSel: 0x030,
  queueNumMax: 0x034,
  queueNum: 0x038,
  queueReady: 0x044,
  queueNotify: 0x050,
  interruptStatus: 0x060,
  interruptAck: 0x064,
  status: 0x070,
  queueDescLow: 0x080,
  queueDescHigh: 0x084,
  queueDriverLow: 0x090,
  queueDriverHigh: 0x094,
  queueDeviceLow: 0x0a0,
  queueDeviceHigh: 0x0a4,
  config: 0x100,
} as const;
export const S = { ACK: 1, DRIVER: 2, DRIVER_OK: 4, FEATURES_OK: 8, NEEDS_RESET: 0x40, FAILED: 0x80 } as const;
export const F = { NEXT: 1, WRITE: 2, INDIRECT: 4 } as const;

/** Where one queue's rings are, as offsets into the region. */
export interface RingLayout {
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  /** Guest-physical ring addresses to program instead of the region offsets (hostile ones). */
  readonly gpa?: { readonly desc: bigint; readonly avail: bigint; readonly used: bigint };
}

export interface Desc {
  readonly addr: number | bigint;
  readonly len: number;
  readonly flags?: number;
  readonly next?: number;
}

/**
 * One `sh` on the frontend CPU (CPU 0) that runs bodies sent on its stdin; the end of each body
 * is an echoed marker line. If the shell ends during a body (a special builtin such as `exec`
 * failing ends a non-interactive shell), the body resolves with what it printed, as a child shell
 * of its own would have, and the next body gets a new shell.
 */
class FrontendShell {
  private child: ChildProcess | undefined;
  private out = '';
  private serial = 0;
  private waiting: { marker: string; done: (out: string) => void } | undefined;

  constructor(private readonly accessFile: string) {}

  run(body: string, timeoutMs: number): Promise<string> {
    const child = this.child ?? this.start();
    this.serial += 1;
    const marker = `__bao_frontend_done_${this.serial}__`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        this.kill();
        reject(new Error(`frontend accesses on ${this.accessFile} not completed within ${timeoutMs} ms`));
      }, timeoutMs);
      this.out = '';
      this.waiting = {
        marker,
        done: (out) => {
          clearTimeout(timer);
          this.waiting = undefined;
          resolve(out);
        },
      };
      child.stdin!.write(`${body}\necho ${marker}\n`);
    });
  }

  private start(): ChildProcess {
    const child = spawn('taskset', ['-c', '0', 'sh', '-s'], { stdio: ['pipe', 'pipe', 'ignore'] });
    child.stdin!.on('error', () => {}); // EPIPE after the shell ended: seen as its close
    child.stdout!.on('data', (d: Buffer) => {
      if (this.child !== child) return;
      this.out += d.toString();
      const w = this.waiting;
      if (w === undefined) return;
      const at = this.out.indexOf(`${w.marker}\n`);
      if (at >= 0) w.done(this.out.slice(0, at));
    });
    child.on('close', () => {
      if (this.child !== child) return;
      this.child = undefined;
      this.waiting?.done(this.out);
    });
    child.stdin!.write(`F=${this.accessFile}\n`);
    this.child = child;
    return child;
  }

  private kill(): void {
    this.child?.kill('SIGKILL');
    this.child = undefined;
  }

  close(): void {
    this.kill();
  }
}

export class InjectedFrontend {
  readonly shmemAddr: number;
  readonly size: number;
  readonly mem: Uint8Array;
  readonly view: DataView;
  private readonly mapping: Mapping;
  private readonly dmFd: number;
  private readonly dispatcherFd: number;
  private readonly session: FrontendShell;
  private queue: Promise<void> = Promise.resolve();

  constructor(readonly dm: number) {
    this.session = new FrontendShell(`${DEBUGFS}/dm${dm}/access`);
    const info = dmInfo(dm);
    this.shmemAddr = Number(info.shmem_addr);
    this.size = Number(info.shmem_size);
    this.dispatcherFd = openDispatcher();
    const got = addon().dmGetInfo(this.dispatcherFd, dm);
    this.dmFd = got.fd;
    this.mapping = Mapping.map(this.dmFd, this.size);
    this.mem = this.mapping.bytes;
    this.view = new DataView(this.mem.buffer, this.mem.byteOffset, this.mem.byteLength);
  }

  /** Guest-physical address of region offset `off`. */
  gpa(off: number): number {
    return this.shmemAddr + off;
  }

  /**
   * Runs the accesses in order in one child shell (a stuck access must not stall this process,
   * and a timeout here means an access was never completed); resolves with the read results.
   */
  run(ops: readonly Op[], timeoutMs = 30_000): Promise<bigint[]> {
    const file = `${DEBUGFS}/dm${this.dm}/access`;
    const lines = ops.map((o) =>
      o.op === 'read'
        ? `exec 3<>${file}; echo "read ${hex(o.off)} ${o.width}" >&3; read -r v <&3; echo "$v"; exec 3>&-`
        : `echo "${o.op} ${hex(o.off)} ${o.width} ${hex(o.value)}" > ${file} 2>/dev/null`,
    );
    return this.shell(lines.join('\n'), timeoutMs).then((out) =>
      out
        .split('\n')
        .filter((l) => l.startsWith('0x'))
        .map((l) => BigInt(l)),
    );
  }

  /**
   * A raw shell body with $F bound to the access file (floods as loops, not as script text), run
   * in this frontend's shell on the frontend CPU. The shell lives across calls (a process start
   * costs a few hundred milliseconds under TCG, and a case makes about ten calls); calls run one
   * after another. A body that does not finish within `timeoutMs` (an access never completed)
   * rejects, and the shell is killed and started again at the next call.
   */
  shell(body: string, timeoutMs = 30_000): Promise<string> {
    const run = this.queue.then(() => this.session.run(body, timeoutMs));
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async readReg(off: number, width = 4): Promise<number> {
    const [v] = await this.run([read(off, width)]);
    return Number(v ?? -1n);
  }

  /** Status 0 and read back until 0 (Linux's vm_reset), bounded. */
  async reset(): Promise<number> {
    const [v] = await this.run([write(REG.status, 0), read(REG.status)]);
    return Number(v ?? -1n);
  }

  /**
   * The driver's bring-up, as virtio_mmio makes it: reset, ACK, DRIVER, accept every offered
   * feature, FEATURES_OK, each queue's size and ring addresses, QueueReady, DRIVER_OK.
   * Returns the status read back.
   */
  async bringUp(queues: readonly (RingLayout | undefined)[]): Promise<number> {
    const [hi, lo] = await this.run([
      write(REG.status, 0),
      write(REG.status, S.ACK),
      write(REG.status, S.ACK | S.DRIVER),
      write(REG.deviceFeaturesSel, 1),
      read(REG.deviceFeatures),
      write(REG.deviceFeaturesSel, 0),
      read(REG.deviceFeatures),
    ]);
    const ops: Op[] = [
      write(REG.driverFeaturesSel, 1),
      write(REG.driverFeatures, hi ?? 0n),
      write(REG.driverFeaturesSel, 0),
      write(REG.driverFeatures, lo ?? 0n),
      write(REG.status, S.ACK | S.DRIVER | S.FEATURES_OK),
    ];
    queues.forEach((q, i) => {
      if (q === undefined) return;
      ops.push(write(REG.queueSel, i), write(REG.queueNum, q.size), ...this.ringAddressOps(q), write(REG.queueReady, 1));
    });
    ops.push(write(REG.status, S.ACK | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK), read(REG.status));
    const [status] = await this.run(ops);
    return Number(status ?? -1n);
  }

  ringAddressOps(q: RingLayout): Op[] {
    const words = (off: number, raw: bigint | undefined): [number, number] => {
      const g = BigInt.asUintN(64, raw ?? BigInt(this.gpa(off)));
      return [Number(g & 0xffffffffn), Number(g >> 32n)];
    };
    const [dl, dh] = words(q.desc, q.gpa?.desc);
    const [al, ah] = words(q.avail, q.gpa?.avail);
    const [ul, uh] = words(q.used, q.gpa?.used);
    return [
      write(REG.queueDescLow, dl),
      write(REG.queueDescHigh, dh),
      write(REG.queueDriverLow, al),
      write(REG.queueDriverHigh, ah),
      write(REG.queueDeviceLow, ul),
      write(REG.queueDeviceHigh, uh),
    ];
  }

  /** Zeroes a queue's rings. */
  clearRings(q: RingLayout): void {
    this.mem.fill(0, q.desc, q.desc + 16 * q.size);
    this.mem.fill(0, q.avail, q.avail + 6 + 2 * q.size);
    this.mem.fill(0, q.used, q.used + 6 + 8 * q.size);
  }

  setDesc(at: number, index: number, d: Desc): void {
    const o = at + 16 * index;
    this.view.setBigUint64(o, BigInt.asUintN(64, BigInt(d.addr)), true);
    this.view.setUint32(o + 8, d.len >>> 0, true);
    this.view.setUint16(o + 12, d.flags ?? 0, true);
    this.view.setUint16(o + 14, d.next ?? 0, true);
  }

  availIdx(q: RingLayout): number {
    return this.view.getUint16(q.avail + 2, true);
  }

  /** Appends `heads` to the avail ring and publishes them (no kick). */
  offer(q: RingLayout, ...heads: number[]): void {
    let idx = this.availIdx(q);
    for (const h of heads) {
      this.view.setUint16(q.avail + 4 + 2 * (idx % q.size), h, true);
      idx = (idx + 1) & 0xffff;
    }
    this.view.setUint16(q.avail + 2, idx, true);
  }

  setAvailIdx(q: RingLayout, idx: number): void {
    this.view.setUint16(q.avail + 2, idx & 0xffff, true);
  }

  usedIdx(q: RingLayout): number {
    return this.view.getUint16(q.used + 2, true);
  }

  /** A posted QueueNotify, as a kick is. */
  kick(queue: number): void {
    fs.writeFileSync(`${DEBUGFS}/dm${this.dm}/access`, `kick 0x50 4 ${queue}`);
  }

  close(): void {
    this.session.close();
    this.mapping.unmap();
    fs.closeSync(this.dmFd);
    fs.closeSync(this.dispatcherFd);
  }
}
