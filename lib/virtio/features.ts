// Feature bits shared by all device types (virtio 1.2 §6 "Reserved Feature Bits") and the
// negotiation rule of §2.2 / §3.1.1: the driver accepts a subset of the offer, and a modern
// (virtio-mmio v2) device refuses FEATURES_OK unless VERSION_1 is among them.
// Bits are bigint because they span 64 bits and JS bitwise operators stop at 32.

export const RING_INDIRECT_DESC = 1n << 28n;
export const RING_EVENT_IDX = 1n << 29n;
export const VERSION_1 = 1n << 32n;
export const ACCESS_PLATFORM = 1n << 33n;
export const RING_PACKED = 1n << 34n;
export const IN_ORDER = 1n << 35n;
export const ORDER_PLATFORM = 1n << 36n;
export const SR_IOV = 1n << 37n;
export const NOTIFICATION_DATA = 1n << 38n;
export const NOTIF_CONFIG_DATA = 1n << 39n;
export const RING_RESET = 1n << 40n;

/** Offered by the transport on every device: Bao frontends need restricted DMA (bao-abi.md §3.6). */
export const TRANSPORT_FEATURES = VERSION_1 | ACCESS_PLATFORM;

const U64 = (1n << 64n) - 1n;

export function hasFeature(features: bigint, bit: bigint): boolean {
  return (features & bit) === bit;
}

/** The 32-bit word `sel` of a feature set, as the Device/DriverFeatures registers show it. */
export function featureWord(features: bigint, sel: number): number {
  if (sel < 0 || sel > 1) return 0;
  return Number((features >> BigInt(32 * sel)) & 0xffff_ffffn);
}

/** Replace word `sel` (0 or 1) of a feature set with a 32-bit value. */
export function withFeatureWord(features: bigint, sel: number, value: number): bigint {
  const shift = BigInt(32 * sel);
  const cleared = features & ~(0xffff_ffffn << shift) & U64;
  return cleared | (BigInt(value >>> 0) << shift);
}

export type FeatureCheck =
  | { ok: true }
  | { ok: false; reason: 'VERSION_1_MISSING' | 'NOT_OFFERED'; extra: bigint };

/** §2.2.1 and §6.1: accepted must be a subset of offered, and VERSION_1 must be accepted. */
export function checkAccepted(offered: bigint, accepted: bigint): FeatureCheck {
  const extra = accepted & ~offered;
  if (extra !== 0n) return { ok: false, reason: 'NOT_OFFERED', extra };
  if (!hasFeature(accepted, VERSION_1)) return { ok: false, reason: 'VERSION_1_MISSING', extra: 0n };
  return { ok: true };
}

/** `0x...` text for logs (bigint does not serialise to JSON). */
export function formatFeatures(features: bigint): string {
  return `0x${features.toString(16)}`;
}
