// The queue host a vhost-user device gets from DeviceModelServer, for tests: the shared region
// is a file mapped from offset 0 (as mappable as a DM fd, so a backend can map what SET_MEM_TABLE
// passes), the call fd and each queue's kick fd are real eventfds, made on first use.

import * as fs from 'node:fs';

import type { NativeAddon } from '../../../lib/native.js';
import type { ExternalQueueHost } from '../../../lib/virtio/device.js';

/** Maps `fd` (a file of at least `size` bytes) at guest address `base`; `cleanup` gets what undoes it, fd close included. */
export function regionHost(addon: NativeAddon, fd: number, base: number, size: number, cleanup: (fn: () => void) => void): { host: ExternalQueueHost; buffer: ArrayBuffer } {
  const c = addon.constants;
  const buffer = addon.mmap(fd, size, 0, c.PROT_READ | c.PROT_WRITE);
  const kicks = new Map<number, number>();
  const callFd = addon.eventfd(0, c.EFD_NONBLOCK);
  cleanup(() => {
    for (const k of kicks.values()) fs.closeSync(k);
    fs.closeSync(callFd);
    addon.munmap(buffer);
    fs.closeSync(fd);
  });
  const host: ExternalQueueHost = {
    kickFd: (i) => {
      let k = kicks.get(i);
      if (k === undefined) {
        k = addon.eventfd(0, c.EFD_NONBLOCK);
        kicks.set(i, k);
      }
      return k;
    },
    callFd,
    region: { fd, guestAddress: BigInt(base), size: BigInt(size), mappedAt: addon.mappingAddress(buffer) },
  };
  return { host, buffer };
}
