// The virtio-blk feature bits, request types, status values and configuration-space layout
// (virtio 1.2 §5.2.3, §5.2.4, §5.2.6). The config space is built once per device and read in
// place by the transport; every multi-byte field is little-endian.

export const BLOCK_DEVICE_ID = 2;
export const SECTOR_SIZE = 512;
export const SECTOR_SHIFT = 9;

export const VIRTIO_BLK_F_SIZE_MAX = 1n << 1n;
export const VIRTIO_BLK_F_SEG_MAX = 1n << 2n;
export const VIRTIO_BLK_F_GEOMETRY = 1n << 4n;
export const VIRTIO_BLK_F_RO = 1n << 5n;
export const VIRTIO_BLK_F_BLK_SIZE = 1n << 6n;
export const VIRTIO_BLK_F_FLUSH = 1n << 9n;
export const VIRTIO_BLK_F_TOPOLOGY = 1n << 10n;
export const VIRTIO_BLK_F_CONFIG_WCE = 1n << 11n;
export const VIRTIO_BLK_F_MQ = 1n << 12n;
export const VIRTIO_BLK_F_DISCARD = 1n << 13n;
export const VIRTIO_BLK_F_WRITE_ZEROES = 1n << 14n;

export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;

export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

/** GET_ID answers with at most this many bytes (no NUL when the serial is exactly 20 long). */
export const VIRTIO_BLK_ID_BYTES = 20;
/** The request header: le32 type, le32 reserved, le64 sector. */
export const REQUEST_HEADER_SIZE = 16;
/** One discard / write-zeroes segment: le64 sector, le32 num_sectors, le32 flags. */
export const DISCARD_SEGMENT_SIZE = 16;
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

// Offsets in struct virtio_blk_config (§5.2.4).
export const CONFIG_CAPACITY = 0;
export const CONFIG_SIZE_MAX = 8;
export const CONFIG_SEG_MAX = 12;
export const CONFIG_BLK_SIZE = 20;
export const CONFIG_PHYSICAL_BLOCK_EXP = 24;
export const CONFIG_ALIGNMENT_OFFSET = 25;
export const CONFIG_MIN_IO_SIZE = 26;
export const CONFIG_OPT_IO_SIZE = 28;
export const CONFIG_WRITEBACK = 32;
export const CONFIG_NUM_QUEUES = 34;
export const CONFIG_MAX_DISCARD_SECTORS = 36;
export const CONFIG_MAX_DISCARD_SEG = 40;
export const CONFIG_DISCARD_SECTOR_ALIGNMENT = 44;
export const CONFIG_MAX_WRITE_ZEROES_SECTORS = 48;
export const CONFIG_MAX_WRITE_ZEROES_SEG = 52;
export const CONFIG_WRITE_ZEROES_MAY_UNMAP = 56;
/** Up to and including write_zeroes_may_unmap and its padding (secure erase is not offered). */
export const CONFIG_SPACE_SIZE = 60;

export interface BlkGeometry {
  /** Capacity in 512-byte sectors. */
  readonly capacitySectors: bigint;
  /** Logical block size the guest should use (512 or a power of two above). */
  readonly blockSize: number;
  /** Physical block size of the backing, a power-of-two multiple of blockSize. */
  readonly physicalBlockSize: number;
  readonly sizeMax: number;
  readonly segMax: number;
  readonly numQueues: number;
  /** Limits of DISCARD and WRITE_ZEROES (only meaningful when those are offered). */
  readonly maxDiscardSectors: number;
  readonly maxDiscardSeg: number;
  readonly discardSectorAlignment: number;
  readonly maxWriteZeroesSectors: number;
  readonly maxWriteZeroesSeg: number;
  readonly writeZeroesMayUnmap: boolean;
}

export function buildConfigSpace(g: BlkGeometry): Uint8Array {
  const bytes = new Uint8Array(CONFIG_SPACE_SIZE);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(CONFIG_CAPACITY, g.capacitySectors, true);
  view.setUint32(CONFIG_SIZE_MAX, g.sizeMax, true);
  view.setUint32(CONFIG_SEG_MAX, g.segMax, true);
  view.setUint32(CONFIG_BLK_SIZE, g.blockSize, true);
  // §5.2.4: physical_block_exp is log2(physical blocks per logical block).
  view.setUint8(CONFIG_PHYSICAL_BLOCK_EXP, Math.log2(Math.max(1, g.physicalBlockSize / g.blockSize)));
  view.setUint8(CONFIG_ALIGNMENT_OFFSET, 0);
  view.setUint16(CONFIG_MIN_IO_SIZE, 1, true);
  view.setUint32(CONFIG_OPT_IO_SIZE, 0, true);
  view.setUint16(CONFIG_NUM_QUEUES, g.numQueues, true);
  view.setUint32(CONFIG_MAX_DISCARD_SECTORS, g.maxDiscardSectors, true);
  view.setUint32(CONFIG_MAX_DISCARD_SEG, g.maxDiscardSeg, true);
  view.setUint32(CONFIG_DISCARD_SECTOR_ALIGNMENT, g.discardSectorAlignment, true);
  view.setUint32(CONFIG_MAX_WRITE_ZEROES_SECTORS, g.maxWriteZeroesSectors, true);
  view.setUint32(CONFIG_MAX_WRITE_ZEROES_SEG, g.maxWriteZeroesSeg, true);
  view.setUint8(CONFIG_WRITE_ZEROES_MAY_UNMAP, g.writeZeroesMayUnmap ? 1 : 0);
  return bytes;
}
