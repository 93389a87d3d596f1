// The hand-over every kernel vhost device makes at DRIVER_OK, in the order the kernel needs it:
// the features the driver accepted (without ACCESS_PLATFORM), the memory table (the shared
// region: guest-physical base -> our mapping), then per queue its size, first index, the ring
// parts' addresses in our mapping, the kick fd (the queue's ioeventfd) and the call fd (the
// irqfd). The device-specific start (a tap backend, SET_RUNNING) follows it. VHOST_SET_OWNER
// came earlier, at open (VhostFd.open).

import type { DeviceActivation, ExternalQueueHost } from '../../virtio/device.js';
import { ACCESS_PLATFORM } from '../../virtio/features.js';
import type { VhostFd } from './vhost-fd.js';

/** The ioctls of the hand-over (VhostFd; a recording double in tests). */
export type VhostRingOps = Pick<VhostFd, 'path' | 'setFeatures' | 'setMemTable' | 'setVringNum' | 'setVringBase' | 'setVringAddr' | 'setVringKick' | 'setVringCall' | 'getVringBase'>;

/**
 * Hands the kernel the driver's rings `queues` (virtio queue indexes). `features` is what the
 * kernel may see (the driver's choice cut to what it knows); ACCESS_PLATFORM is removed here:
 * it is between the driver and us, and would make the kernel expect an IOTLB.
 */
export function setUpVhostRings(v: VhostRingOps, features: bigint, activation: DeviceActivation, host: ExternalQueueHost, queues: readonly number[], device: string): void {
  const region = host.region;
  v.setFeatures(features & ~ACCESS_PLATFORM);
  v.setMemTable(region.guestAddress, region.size, region.mappedAt);
  const toUser = (gpa: number): bigint => region.mappedAt + (BigInt(gpa) - region.guestAddress);
  for (const index of queues) {
    const q = activation.queues[index];
    if (q === undefined) throw new Error(`the driver did not enable ${device} queue ${index}`);
    v.setVringNum(index, q.size);
    v.setVringBase(index, 0);
    v.setVringAddr(index, toUser(q.descTable), toUser(q.availRing), toUser(q.usedRing));
    v.setVringKick(index, host.kickFd(index));
    v.setVringCall(index, host.callFd);
  }
}

/** GET_VRING_BASE of each queue: it waits for the kernel worker to leave the ring, so nothing runs against it afterwards. */
export function drainVhostRings(v: VhostRingOps, queues: readonly number[]): void {
  for (const index of queues) v.getVringBase(index);
}
