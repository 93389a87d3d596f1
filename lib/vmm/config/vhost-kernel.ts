// Config entries with `data_plane: vhost`: the kernel's vhost devices. bao-virtio-dm's vsock
// entry (`guest_cid`) runs unchanged; net over vhost-net follows the net device's tap.

import type { RawDevice } from './schema.js';
import type { CreateDmParams, KernelVhostDeviceConfig, NetDeviceConfig } from './types.js';

type FieldPath = readonly (string | number)[];

export const KERNEL_VHOST_TYPES = ['vsock', 'net'] as const;
export const KERNEL_VHOST_KEYS = ['guest_cid', 'tap_name', 'mac_addr', 'create_tap', 'mtu', 'queue_pairs', 'queue_size'];

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
  /** The net entry's own normalizer: vhost-net takes the same keys as the in-process device. */
  net: () => NetDeviceConfig | undefined,
): KernelVhostDeviceConfig | undefined {
  const at = (key: string): FieldPath => ['devices', common.index, key];
  if (raw.type === 'net') {
    const entry = net();
    if (entry === undefined) return undefined;
    if (entry.queuePairs !== 1) {
      issues.error(at('queue_pairs'), `vhost-net serves one queue pair (it has no control queue to switch more on); use queue_pairs: 1 or data_plane: virtio`);
      return undefined;
    }
    return { ...entry, dataPlane: 'vhost' };
  }
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
