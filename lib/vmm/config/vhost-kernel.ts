// Config entries with `data_plane: vhost`: the kernel's vhost devices. bao-virtio-dm's vsock
// entry (`guest_cid`) runs unchanged; net over vhost-net follows the net device's tap.

import type { RawDevice } from './schema.js';
import type { CreateDmParams, KernelVhostDeviceConfig } from './types.js';

type FieldPath = readonly (string | number)[];

export const KERNEL_VHOST_TYPES = ['vsock'] as const;
export const KERNEL_VHOST_KEYS = ['guest_cid'];

export interface KernelVhostIssues {
  error(path: FieldPath, message: string): void;
}

export function kernelVhostTypeProblem(type: string): string | undefined {
  if ((KERNEL_VHOST_TYPES as readonly string[]).includes(type)) return undefined;
  return `'${type}' is not served over the kernel's vhost by node-bao yet; vhost types: ${KERNEL_VHOST_TYPES.join(', ')} (or use data_plane: virtio)`;
}

export function normalizeKernelVhost(
  raw: RawDevice,
  common: { index: number; id: number; mmioAddr: bigint; createDm: CreateDmParams | undefined },
  issues: KernelVhostIssues,
): KernelVhostDeviceConfig | undefined {
  const at = (key: string): FieldPath => ['devices', common.index, key];
  if (raw.type !== 'vsock') return undefined; // reported by checkTypeAndPlane
  if (raw.guest_cid === undefined) {
    issues.error(at('guest_cid'), 'required for vsock: the CID the frontend VM gets (3 or more, unique among the vsock devices of this machine)');
    return undefined;
  }
  if (raw.guest_cid < 3n || raw.guest_cid > 0xfffffffen) {
    issues.error(at('guest_cid'), `CID ${raw.guest_cid} cannot be a guest's: 0..2 are reserved and vhost-vsock takes at most 0xfffffffe; use 3 or more`);
    return undefined;
  }
  return { ...common, type: 'vsock', dataPlane: 'vhost', guestCid: raw.guest_cid };
}
