// How each ABI revision opens a device model and reads its info (spec §2.1, §3.4, §8): the one
// TypeScript module holding revision differences (lib/uapi holds the numbers and layouts).
// Everything after the DM fd is open (ATTACH, COMPLETE, ioeventfd, irqfd, mmap) is the same
// call with the revision id passed through to the addon.

import * as fs from 'node:fs';

import { isErrnoError, type NativeAddon, type RevisionId } from '../native.js';
import { REVISION_ID, type Revision } from '../uapi/revisions.js';
import {
  BaoNotPresentError,
  BaoPermissionError,
  BaoWrongDeviceError,
  DeviceModelConfigMissingError,
  DeviceModelNotFoundError,
} from './errors.js';
import type { BaoNodes } from './nodes.js';

export interface DeviceModelInfo {
  readonly id: number;
  /** Physical base of the shared region = frontend guest-physical base (spec §3.6). */
  readonly shmemAddr: bigint;
  readonly shmemSize: bigint;
  /** Backend interrupt: Linux virq (primary, revA, informational) or the line given to CREATE_DM (revB). */
  readonly irq: number;
}

/** revB only: the device model's description, from the VMM config (spec §4.4, revB). */
export interface CreateDeviceModelParams {
  readonly shmemAddr?: bigint | number;
  readonly shmemSize?: bigint | number;
  readonly irq?: number;
}

/** What closing a DM fd does to the device model on this revision (spec §3.5, §3.11). */
export type DmFdClosePolicy = 'close' | 'keep-open';

export interface OpenedDeviceModel {
  readonly fd: number;
  readonly info: DeviceModelInfo;
  readonly closePolicy: DmFdClosePolicy;
}

export interface RevisionContext {
  readonly addon: NativeAddon;
  readonly nodes: BaoNodes;
  /** The fd of the control node (primary: bao-io-dispatcher, revB: bao); opened on demand. */
  controlFd(): number;
  /** primary only: may DM fds be closed (v2), or must they stay open until exit (OOT/v1/unknown)? */
  readonly primaryDmFdsClosable: boolean;
}

export interface RevisionOps {
  readonly revision: Revision;
  readonly id: RevisionId;
  /** The node opened once per driver, if the revision has one. */
  controlNode(nodes: BaoNodes): string | undefined;
  openDeviceModel(ctx: RevisionContext, id: number, params: CreateDeviceModelParams): OpenedDeviceModel;
  /** Device model ids that can be listed without creating anything (undefined: probe by id). */
  listedIds(nodes: BaoNodes): readonly number[] | undefined;
}

/** Open a node O_RDWR (close-on-exec, as Node always does), mapping errors to typed ones. */
export function openNode(path: string, devRoot: string): number {
  try {
    return fs.openSync(path, fs.constants.O_RDWR);
  } catch (e) {
    if (isErrnoError(e) && (e.code === 'EACCES' || e.code === 'EPERM')) throw new BaoPermissionError(path, e);
    if (isErrnoError(e) && e.code === 'ENOENT') throw new BaoNotPresentError(devRoot, [path]);
    throw e;
  }
}

function mapInfoError(e: unknown, id: number, path: string, revision: Revision): never {
  if (isErrnoError(e)) {
    // v1/v2 answer an unknown id with ENOENT, OOT with EINVAL (spec §3.4).
    if (e.code === 'ENOENT' || e.code === 'EINVAL') throw new DeviceModelNotFoundError(id, e);
    if (e.code === 'ENOTTY') throw new BaoWrongDeviceError(path, revision, e);
  }
  throw e;
}

const primary: RevisionOps = {
  revision: 'primary',
  id: REVISION_ID.primary,
  controlNode: (nodes) => nodes.dispatcher,
  openDeviceModel(ctx, id) {
    const control = ctx.controlFd();
    let got: ReturnType<NativeAddon['dmGetInfo']>;
    try {
      got = ctx.addon.dmGetInfo(control, id);
    } catch (e) {
      mapInfoError(e, id, ctx.nodes.dispatcher ?? 'bao-io-dispatcher', 'primary');
    }
    const { fd, ...info } = got;
    return { fd, info, closePolicy: ctx.primaryDmFdsClosable ? 'close' : 'keep-open' };
  },
  listedIds: () => undefined,
};

const revA: RevisionOps = {
  revision: 'revA',
  id: REVISION_ID.revA,
  controlNode: () => undefined,
  openDeviceModel(ctx, id) {
    const node = ctx.nodes.deviceModels.find((n) => n.id === id);
    if (node === undefined) throw new DeviceModelNotFoundError(id);
    const fd = openNode(node.path, ctx.nodes.devRoot);
    try {
      const info = ctx.addon.dmGetInfoRevA(fd, id);
      // The node is the DM itself and outlives our fd: closing it is harmless.
      return { fd, info: { ...info, id }, closePolicy: 'close' };
    } catch (e) {
      fs.closeSync(fd);
      mapInfoError(e, id, node.path, 'revA');
    }
  },
  listedIds: (nodes) => nodes.deviceModels.map((n) => n.id),
};

const revB: RevisionOps = {
  revision: 'revB',
  id: REVISION_ID.revB,
  controlNode: (nodes) => nodes.control,
  openDeviceModel(ctx, id, params) {
    const missing: string[] = [];
    if (params.shmemAddr === undefined) missing.push('shmemAddr');
    if (params.shmemSize === undefined) missing.push('shmemSize');
    if (params.irq === undefined) missing.push('irq');
    if (missing.length > 0 || params.shmemAddr === undefined || params.shmemSize === undefined || params.irq === undefined) {
      throw new DeviceModelConfigMissingError(id, missing);
    }
    const control = ctx.controlFd();
    let fd: number;
    try {
      fd = ctx.addon.createDm(control, id, params.shmemAddr, params.shmemSize, params.irq);
    } catch (e) {
      if (isErrnoError(e) && e.code === 'ENOTTY') throw new BaoWrongDeviceError(ctx.nodes.control ?? 'bao', 'revB', e);
      throw e;
    }
    let info: DeviceModelInfo;
    try {
      info = ctx.addon.dmGetInfoRevB(fd);
    } catch {
      // GET_INFO is optional for revB's purpose: we already know what we asked for.
      info = { id, shmemAddr: BigInt(params.shmemAddr), shmemSize: BigInt(params.shmemSize), irq: params.irq };
    }
    // revB: the DM lives exactly as long as this fd (spec §3.11), so close = destroy, as intended.
    return { fd, info, closePolicy: 'close' };
  },
  listedIds: () => [],
};

export const REVISION_OPS: Readonly<Record<Revision, RevisionOps>> = { primary, revA, revB };
