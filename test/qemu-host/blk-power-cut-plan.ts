// What the power-cut test writes and where, shared by its two halves: the guest
// (blk-power-cut.guest.ts) writes it through node-bao's disk, the host (blk-power-cut.test.ts)
// looks for it in the image file once the machine's power is cut.

/** The serial of the disk QEMU provides (the host's image file): node-bao's backing store. */
export const STORE_SERIAL = 'nb-host-store';
/** The serial of the disk node-bao serves to the guest's own virtio_blk over bao-sim. */
export const FRONTEND_SERIAL = 'nb-power-cut';
export const STORE_BYTES = 64 << 20;

export interface Region {
  readonly offset: number;
  readonly length: number;
  /** Seeds the region's contents (pattern). */
  readonly seed: number;
}

/** Written and fsync'ed (FLUSH): must be in the image after the cut. */
export const SYNCED: Region = { offset: 0, length: 4 << 20, seed: 13 };
/** Written after SYNCED and never synced: the control, which may be lost with the guest's page cache. */
export const UNSYNCED: Region = { offset: 16 << 20, length: 1 << 20, seed: 91 };

/** What the guest prints once its fsync has returned; the host cuts the power when it sees it. */
export const CUT_MARKER = 'BLK-POWER-CUT: fsync returned, cut the power';

/** A region's contents: no run of zeros, and different for every 4 KiB block and seed. */
export function pattern(region: Region): Buffer {
  const buf = Buffer.alloc(region.length);
  for (let i = 0; i < buf.length; i += 1) buf[i] = ((i * region.seed + (i >>> 12) + 1) % 251) + 1;
  return buf;
}
