// The kernel vhost UAPI (<linux/vhost.h>, <linux/vhost_types.h>): ioctl numbers (type 0xAF)
// and argument layouts. The struct layouts of the vring calls are the ones vhost-user reuses,
// so their encoders are shared with lib/vhost/user/protocol.ts.

import { io, ior, iow, iowr } from '../../uapi/ioc.js';

const VHOST = 0xaf;
const U64 = 8;
const VRING_STATE = 8;
const VRING_ADDR = 40;
const VRING_FILE = 8;
const MEMORY_HEADER = 8;

export const VHOST_GET_FEATURES = ior(VHOST, 0x00, U64);
export const VHOST_SET_FEATURES = iow(VHOST, 0x00, U64);
export const VHOST_SET_OWNER = io(VHOST, 0x01);
export const VHOST_RESET_OWNER = io(VHOST, 0x02);
export const VHOST_SET_MEM_TABLE = iow(VHOST, 0x03, MEMORY_HEADER);
export const VHOST_SET_VRING_NUM = iow(VHOST, 0x10, VRING_STATE);
export const VHOST_SET_VRING_ADDR = iow(VHOST, 0x11, VRING_ADDR);
export const VHOST_SET_VRING_BASE = iow(VHOST, 0x12, VRING_STATE);
export const VHOST_GET_VRING_BASE = iowr(VHOST, 0x12, VRING_STATE);
export const VHOST_SET_VRING_KICK = iow(VHOST, 0x20, VRING_FILE);
export const VHOST_SET_VRING_CALL = iow(VHOST, 0x21, VRING_FILE);
export const VHOST_NET_SET_BACKEND = iow(VHOST, 0x30, VRING_FILE);
export const VHOST_VSOCK_SET_GUEST_CID = iow(VHOST, 0x60, U64);
export const VHOST_VSOCK_SET_RUNNING = iow(VHOST, 0x61, 4);

/** struct vhost_vring_file {unsigned int index; int fd}. */
export function vringFile(index: number, fd: number): Uint8Array {
  const out = new Uint8Array(VRING_FILE);
  const v = new DataView(out.buffer);
  v.setUint32(0, index, true);
  v.setInt32(4, fd, true);
  return out;
}

export function int32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setInt32(0, value, true);
  return out;
}
