// openBaoDriver(): detect which I/O dispatcher revision this kernel offers (from the device
// nodes) and open device models through it, all three revisions behind one API. The control
// node is opened on first use and closed with the driver.

import * as fs from 'node:fs';

import { isErrnoError, loadAddon, type NativeAddon } from '../native.js';
import { MAX_DEVICE_MODELS } from '../uapi/constants.js';
import type { Revision } from '../uapi/revisions.js';
import { DeviceModelHandle, takeKeptOpenDmFd } from './device-model.js';
import { DeviceModelMismatchError, DeviceModelNotFoundError, HandleClosedError } from './errors.js';
import { detectRevision, dispatcherFlavour, revisionOf, scanBaoNodes, type BaoNodes, type DispatcherFlavour } from './nodes.js';
import {
  openNode,
  REVISION_OPS,
  type CreateDeviceModelParams,
  type DeviceModelInfo,
  type DmFdClosePolicy,
  type RevisionContext,
} from './revision-ops.js';

export interface OpenBaoDriverOptions {
  /** Where the device nodes are (default /dev). */
  readonly devRoot?: string;
  /** Where sysfs is (default /sys): tells a v2 dispatcher from OOT/v1 (spec §3.5). */
  readonly sysRoot?: string;
  /** Force a revision instead of detecting it from the node names. */
  readonly revision?: Revision;
  /**
   * Primary ABI only: close DM fds on handle close? 'auto' (default) closes them only when sysfs
   * shows the v2 driver, where that is harmless; OOT (use-after-free) and v1 (destroys the DM)
   * keep them open until the process exits, as bao-virtio-dm does.
   */
  readonly closeDmFds?: 'auto' | 'always' | 'never';
  readonly addon?: NativeAddon;
}

export type DeviceModelOptions = CreateDeviceModelParams;

export class BaoDriver {
  readonly revision: Revision;
  readonly nodes: BaoNodes;
  /** Primary ABI: which driver build sysfs shows. */
  readonly flavour: DispatcherFlavour;
  private readonly addon: NativeAddon;
  private control: number | undefined;
  private closed = false;
  private readonly handles = new Set<DeviceModelHandle>();
  private readonly ctx: RevisionContext;

  constructor(revision: Revision, nodes: BaoNodes, options: OpenBaoDriverOptions) {
    this.revision = revision;
    this.nodes = nodes;
    this.addon = options.addon ?? loadAddon();
    this.flavour = revision === 'primary' ? dispatcherFlavour(options.sysRoot) : 'unknown';
    const policy = options.closeDmFds ?? 'auto';
    const closable = policy === 'always' || (policy === 'auto' && this.flavour === 'v2');
    this.ctx = {
      addon: this.addon,
      nodes,
      controlFd: () => this.controlFd(),
      primaryDmFdsClosable: closable,
    };
  }

  private get ops() {
    return REVISION_OPS[this.revision];
  }

  private controlFd(): number {
    if (this.closed) throw new HandleClosedError('the Bao driver');
    if (this.control === undefined) {
      const node = this.ops.controlNode(this.nodes);
      if (node === undefined) throw new Error(`revision ${this.revision} has no control node`);
      this.control = openNode(node, this.nodes.devRoot);
    }
    return this.control;
  }

  /**
   * Open device model `id`. Primary: DM_GET_INFO on the dispatcher; revA: its /dev/bao-dm<id>
   * node; revB: CREATE_DM, which needs shmemAddr, shmemSize and irq (DeviceModelConfigMissingError).
   */
  openDeviceModel(id: number, options: DeviceModelOptions = {}): DeviceModelHandle {
    if (this.closed) throw new HandleClosedError('the Bao driver');
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new DeviceModelNotFoundError(id);
    const keepKey = `${this.nodes.devRoot}:${this.revision}:${id}`;
    const kept = takeKeptOpenDmFd(keepKey);
    const opened =
      kept !== undefined
        ? { fd: kept.fd, info: kept.info, closePolicy: 'keep-open' as const }
        : this.ops.openDeviceModel(this.ctx, id, options);
    const handle = new DeviceModelHandle({
      addon: this.addon,
      revision: this.revision,
      revisionId: this.ops.id,
      fd: opened.fd,
      info: opened.info,
      closePolicy: opened.closePolicy,
      keepKey,
    });
    this.handles.add(handle);
    return handle;
  }

  /**
   * Serve device model `id` on a DM fd a previous process left open (lib/vmm/restart), instead of
   * opening a new one. `claimed` is what that process recorded from DM_GET_INFO. Checked where the
   * ABI can: revA and revB answer GET_INFO on the DM fd itself; the primary (v2) driver makes a
   * fresh DM fd, closed again at once, whose info must match. On the out-of-tree and v1 drivers
   * no new DM fd may be made (closing one is fatal, spec §3.5), so the claim is taken as it is,
   * the fd having been checked to be that DM's (anon_inode:bao-dm<id>). Throws when it does not fit;
   * the caller then closes the fd and opens the DM anew.
   */
  adoptDeviceModel(id: number, fd: number, claimed: Omit<DeviceModelInfo, 'id'>): DeviceModelHandle {
    if (this.closed) throw new HandleClosedError('the Bao driver');
    let info: DeviceModelInfo = { id, ...claimed };
    let closePolicy: DmFdClosePolicy = 'close';
    if (this.revision === 'revA') {
      info = { ...this.addon.dmGetInfoRevA(fd, id), id };
    } else if (this.revision === 'revB') {
      info = this.addon.dmGetInfoRevB(fd);
      if (info.id !== id) throw new DeviceModelMismatchError(id, `it is device model ${info.id}'s`);
    } else if (this.ctx.primaryDmFdsClosable) {
      const fresh = this.ops.openDeviceModel(this.ctx, id, {});
      fs.closeSync(fresh.fd);
      info = fresh.info;
      if (info.shmemAddr !== claimed.shmemAddr || info.shmemSize !== claimed.shmemSize) {
        throw new DeviceModelMismatchError(id, `its shared region is 0x${info.shmemAddr.toString(16)}+0x${info.shmemSize.toString(16)} now, it was recorded as 0x${claimed.shmemAddr.toString(16)}+0x${claimed.shmemSize.toString(16)}`);
      }
    } else {
      closePolicy = 'keep-open';
    }
    const handle = new DeviceModelHandle({
      addon: this.addon,
      revision: this.revision,
      revisionId: this.ops.id,
      fd,
      info,
      closePolicy,
      keepKey: `${this.nodes.devRoot}:${this.revision}:${id}`,
    });
    this.handles.add(handle);
    return handle;
  }

  /**
   * Info of every device model that exists, without keeping them open. Primary: DM_GET_INFO on
   * ids 0..15 (absent = ENOENT/EINVAL); revA: one per node; revB: none (they are created on demand).
   */
  probeDeviceModels(): DeviceModelInfo[] {
    const listed = this.ops.listedIds(this.nodes);
    const ids = listed ?? Array.from({ length: MAX_DEVICE_MODELS }, (_, i) => i);
    const found: DeviceModelInfo[] = [];
    for (const id of ids) {
      try {
        const h = this.openDeviceModel(id);
        found.push(h.info);
        void h.close();
      } catch (e) {
        if (e instanceof DeviceModelNotFoundError) continue;
        throw e;
      }
    }
    return found;
  }

  /** Closes every handle opened through this driver, then the control node. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.handles].map((h) => h.close()));
    this.handles.clear();
    if (this.control !== undefined) {
      const fd = this.control;
      this.control = undefined;
      try {
        fs.closeSync(fd);
      } catch (e) {
        if (!isErrnoError(e) || e.code !== 'EBADF') throw e;
      }
    }
  }
}

/** Detect the revision under `devRoot` (BaoNotPresentError if none) and return a driver for it. */
export function openBaoDriver(options: OpenBaoDriverOptions = {}): BaoDriver {
  const devRoot = options.devRoot ?? '/dev';
  if (options.revision !== undefined) {
    const nodes = scanBaoNodes(devRoot);
    return new BaoDriver(options.revision, nodes, options);
  }
  const { revision, nodes } = detectRevision(devRoot);
  return new BaoDriver(revision, nodes, options);
}

export { revisionOf };
