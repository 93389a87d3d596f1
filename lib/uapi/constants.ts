// Op codes, flags and limits of the I/O dispatcher ABI (spec §3.1). The v2 UAPI header carries
// none of them, so userspace defines them; the values are the same in every revision.

/** `op` of a bao_virtio_request. ASK and NOTIFY are hypercall-only and never reach userspace. */
export const IoOp = {
  Write: 0,
  Read: 1,
  Ask: 2,
  Notify: 3,
} as const;
export type IoOpCode = (typeof IoOp)[keyof typeof IoOp];

export const IOEVENTFD_FLAG_DATAMATCH = 1 << 1;
/** Broken in OOT/v1/v2: the driver re-registers right after removing (spec §3.7). */
export const IOEVENTFD_FLAG_DEASSIGN = 1 << 2;
export const IRQFD_FLAG_DEASSIGN = 1 << 0;

/** DM ids are 0..15 in OOT/v1/v2 (BAO_IO_MAX_DMS). */
export const MAX_DEVICE_MODELS = 16;
/** Valid ioeventfd lengths and request access widths, in bytes. */
export const ACCESS_WIDTHS: readonly number[] = [1, 2, 4, 8];
