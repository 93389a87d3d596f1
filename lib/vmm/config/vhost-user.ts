// Config entries with `data_plane: vhost_user`: any type a vhost-user backend can serve (fs and
// vsock as bao-virtio-dm has them, and rng, i2c, gpio, ... through vhost-device-*). The socket is
// bao-virtio-dm's `<socket_path><type><id>.sock` (bao-abi.md §5.1) unchanged, or named directly
// with node-bao's `socket` key.

import { baoVirtioDmSocket, FS_TAG_MAX, isVhostUserType, VHOST_USER_TYPE_NAMES } from '../../vhost/user/device-types.js';
import type { RawDevice } from './schema.js';
import type { CreateDmParams, VhostUserDeviceConfig } from './types.js';

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
const MAX_UNIX_SOCKET_PATH = 107;

type FieldPath = readonly (string | number)[];

export interface VhostUserIssues {
  error(path: FieldPath, message: string): void;
  warn(path: FieldPath, message: string): void;
}

export const VHOST_USER_KEYS = ['socket_path', 'socket', 'tag', 'guest_cid'];

/** The message for a type that cannot go over vhost_user, or undefined. */
export function vhostUserTypeProblem(type: string): string | undefined {
  if (isVhostUserType(type)) return undefined;
  return `'${type}' cannot be served over vhost_user; vhost-user types: ${VHOST_USER_TYPE_NAMES.join(', ')}`;
}

export function normalizeVhostUser(
  raw: RawDevice,
  common: { index: number; id: number; mmioAddr: bigint; createDm: CreateDmParams | undefined },
  issues: VhostUserIssues,
): VhostUserDeviceConfig | undefined {
  const at = (key: string): FieldPath => ['devices', common.index, key];
  const type = raw.type;
  if (!isVhostUserType(type)) return undefined; // reported by checkTypeAndPlane
  let socket: string;
  if (raw.socket !== undefined) {
    socket = raw.socket;
    if (raw.socket_path !== undefined) issues.warn(at('socket_path'), `ignored: socket names the backend's socket (${raw.socket})`);
  } else if (raw.socket_path !== undefined) {
    socket = baoVirtioDmSocket(raw.socket_path, type, common.id);
  } else {
    issues.error(at('socket_path'), `required with data_plane: vhost_user: the directory prefix of the backend's socket (bao-virtio-dm connects to <socket_path>${type}${common.id}.sock), or name the socket itself with socket:`);
    return undefined;
  }
  if (socket === '') {
    issues.error(at(raw.socket !== undefined ? 'socket' : 'socket_path'), 'must be a non-empty path');
    return undefined;
  }
  if (Buffer.byteLength(socket) > MAX_UNIX_SOCKET_PATH) {
    issues.error(at(raw.socket !== undefined ? 'socket' : 'socket_path'), `the socket ${socket} is too long for a unix socket (${Buffer.byteLength(socket)} bytes, at most ${MAX_UNIX_SOCKET_PATH}); use a shorter path`);
    return undefined;
  }
  if (raw.tag !== undefined && type !== 'fs') issues.warn(at('tag'), `ignored for type ${type} (it applies to fs)`);
  if (raw.tag !== undefined && (raw.tag === '' || Buffer.byteLength(raw.tag) > FS_TAG_MAX)) {
    issues.error(at('tag'), `a virtio-fs tag is 1 to ${FS_TAG_MAX} bytes, got ${Buffer.byteLength(raw.tag)}`);
    return undefined;
  }
  if (raw.guest_cid !== undefined && type !== 'vsock') issues.warn(at('guest_cid'), `ignored for type ${type} (it applies to vsock)`);
  if (raw.guest_cid !== undefined && raw.guest_cid < 3n) {
    issues.error(at('guest_cid'), `CID ${raw.guest_cid} is reserved (0..2 are the hypervisor, local and host); use 3 or more`);
    return undefined;
  }
  return {
    ...common,
    type,
    dataPlane: 'vhost_user',
    socket,
    tag: type === 'fs' ? (raw.tag ?? 'bao-fs') : undefined,
    guestCid: type === 'vsock' ? raw.guest_cid : undefined,
  };
}
