// A minimal device-model backend for the conformance tests, built on the addon's public surface
// (lib/native.ts, lib/dispatcher): DM_GET_INFO on /dev/bao-io-dispatcher, an AttachLoop feeding
// a queue the test awaits, COMPLETE, and an auto-responder for frontend probes.

import * as fs from 'node:fs';

import { afterAll, afterEach, beforeAll } from 'vitest';

import { loadAddon, type NativeAddon, type NativeDmInfo } from '../../../lib/native.js';
import { AttachLoop } from '../../../lib/dispatcher/attach-loop.js';
import { EventFd } from '../../../lib/dispatcher/eventfd.js';
import type { IoRequest } from '../../../lib/dispatcher/request.js';
import { loadBaoSim, unloadBaoSim, type ModuleParams } from './bao-sim.js';

export const DISPATCHER = '/dev/bao-io-dispatcher';
export const PRIMARY = 0;

export function addon(): NativeAddon {
  return loadAddon();
}

/** Open the dispatcher node (Node opens it O_CLOEXEC). */
export function openDispatcher(): number {
  return fs.openSync(DISPATCHER, fs.constants.O_RDWR);
}

export type Responder = (req: IoRequest) => bigint | number | undefined;

/** One DM fd plus the requests ATTACH delivered on it. */
export class TestDm {
  readonly fd: number;
  readonly info: NativeDmInfo;
  private loop: AttachLoop | undefined;
  private readonly pending: IoRequest[] = [];
  private readonly waiters: ((r: IoRequest) => void)[] = [];
  private responder: Responder | undefined;
  readonly errors: Error[] = [];

  constructor(dispatcherFd: number, id: number) {
    const got = addon().dmGetInfo(dispatcherFd, id);
    if (got.fd < 0) throw new Error(`DM_GET_INFO gave no fd for dm ${id}: ${got.fd}`);
    this.fd = got.fd;
    this.info = { id: got.id, shmemAddr: got.shmemAddr, shmemSize: got.shmemSize, irq: got.irq };
  }

  get id(): number {
    return this.info.id;
  }

  /** Start the native ATTACH thread; with a responder every request is answered at once. */
  attach(responder?: Responder): this {
    this.responder = responder;
    this.loop = new AttachLoop(
      this.fd,
      PRIMARY,
      this.id,
      (reqs) => {
        for (const r of reqs) this.deliver(r);
      },
      (err) => this.errors.push(err),
    );
    return this;
  }

  private deliver(r: IoRequest): void {
    if (this.responder !== undefined) {
      this.complete(r, this.responder(r) ?? 0);
      return;
    }
    const w = this.waiters.shift();
    if (w !== undefined) w(r);
    else this.pending.push(r);
  }

  /** The next request ATTACH delivered (FIFO). */
  next(timeoutMs = 15_000): Promise<IoRequest> {
    const r = this.pending.shift();
    if (r !== undefined) return Promise.resolve(r);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no request on dm ${this.id} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((req) => {
        clearTimeout(t);
        resolve(req);
      });
    });
  }

  get queued(): number {
    return this.pending.length;
  }

  /** COMPLETE echoing dm_id/addr/op/width/request_id; `value` for READs (else the written value). */
  complete(r: IoRequest, value: bigint | number = r.value): void {
    addon().complete(this.fd, PRIMARY, r.dmId, r.addr, r.op, value, r.accessWidth, r.requestId);
  }

  /** Raw COMPLETE with any fields (hostile-backend cases). */
  completeRaw(f: { dmId: number; addr?: number; op: number; value?: bigint | number; width?: number; requestId: number }): void {
    addon().complete(this.fd, PRIMARY, f.dmId, f.addr ?? 0, f.op, f.value ?? 0, f.width ?? 4, f.requestId);
  }

  async close(): Promise<void> {
    await this.loop?.stop();
    this.loop = undefined;
    fs.closeSync(this.fd);
  }
}

/** Answers a frontend probe: MagicValue "virt", Version 2, DeviceID 0 (no device), zero otherwise. */
export function noDeviceResponder(mmioBase: number): Responder {
  return (r) => {
    if (r.op !== 1) return undefined;
    switch (r.addr - mmioBase) {
      case 0x000:
        return 0x74726976;
      case 0x004:
        return 2;
      default:
        return 0;
    }
  };
}

export interface DispatcherFixture {
  /** The dispatcher fd, open for the whole file. */
  readonly disp: number;
  /** A DM fd for `id`, closed after the test. */
  open(id: number): TestDm;
  /** An eventfd, closed with the file (after bao-sim is done with it). */
  eventfd(initval?: number): EventFd;
}

/**
 * The hooks every dispatcher conformance file needs, registered in the calling describe:
 * bao-sim loaded with `params` and the dispatcher open for the file, DMs closed after each test.
 */
export function useDispatcher(params: ModuleParams): DispatcherFixture {
  let disp = -1;
  let dms: TestDm[] = [];
  const efds: EventFd[] = [];
  beforeAll(() => {
    loadBaoSim(params);
    disp = openDispatcher();
  });
  afterEach(async () => {
    await Promise.all(dms.map((d) => d.close()));
    dms = [];
  });
  afterAll(() => {
    for (const e of efds) e.close();
    if (disp >= 0) fs.closeSync(disp);
    unloadBaoSim();
  });
  return {
    get disp() {
      return disp;
    },
    open(id) {
      const d = new TestDm(disp, id);
      dms.push(d);
      return d;
    },
    eventfd(initval = 0) {
      const e = EventFd.create({ initval });
      efds.push(e);
      return e;
    },
  };
}
