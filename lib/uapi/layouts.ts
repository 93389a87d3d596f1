// Struct layouts of the ABI as offset tables (spec §3.3). Little-endian on every target, and the
// same on LP64 and ARM EABI (64-bit fields are 8-byte aligned there too), so one table serves
// arm64, armv7, riscv64 and x86_64. test/native checks these against the addon's sizeof/offsetof.

export interface StructLayout {
  readonly size: number;
  /** field name (as in the kernel header) -> byte offset */
  readonly offsets: Readonly<Record<string, number>>;
}

/** OOT/v1/v2 `struct bao_dm_info`: u32 id, 4 bytes padding, u64 shmem_addr, u64 shmem_size, u32 irq, s32 fd. */
export const DM_INFO: StructLayout = {
  size: 32,
  offsets: { id: 0, shmem_addr: 8, shmem_size: 16, irq: 24, fd: 28 },
};

/** revA: the same without `fd` (its 4 bytes are uninitialised tail padding, §10.3). */
export const DM_INFO_REVA: StructLayout = {
  size: 32,
  offsets: { id: 0, shmem_addr: 8, shmem_size: 16, irq: 24 },
};

/** revB: reordered, no padding. */
export const DM_INFO_REVB: StructLayout = {
  size: 24,
  offsets: { shmem_addr: 0, shmem_size: 8, id: 16, irq: 20 },
};

/** `struct bao_virtio_request`: six u64, the same in every revision. */
export const VIRTIO_REQUEST: StructLayout = {
  size: 48,
  offsets: { dm_id: 0, addr: 8, op: 16, value: 24, access_width: 32, request_id: 40 },
};

export const IOEVENTFD: StructLayout = {
  size: 32,
  offsets: { fd: 0, flags: 4, addr: 8, len: 16, reserved: 20, data: 24 },
};

export const IRQFD: StructLayout = {
  size: 8,
  offsets: { fd: 0, flags: 4 },
};
