// Which device types and data planes exist in bao-virtio-dm's vocabulary, and which of them
// node-bao serves today. SERVED_DEVICE_TYPES is the single list later issues extend (adding a
// type there forces a normalizer in normalize.ts and a builder in lib/vmm/device-builders.ts,
// because both are records keyed by it).

/** Types bao-virtio-dm itself serves (spec §5.1). */
export const BAO_VIRTIO_DM_TYPES = ['block', 'net', 'console', 'vsock', 'fs'] as const;

/** Every type name bao-virtio-dm's parser recognises (it maps the rest to Unknown). */
export const KNOWN_DEVICE_TYPES = [
  'net',
  'block',
  'console',
  'rng',
  'balloon',
  'fs9p',
  'gpu',
  'input',
  'vsock',
  'iommu',
  'mem',
  'fs',
  'pmem',
  'i2c',
  'watchdog',
  'gpio',
] as const;

/** The device types node-bao serves. Extend this list (and the records keyed by it) to add one. */
export const SERVED_DEVICE_TYPES = ['console', 'rng', 'block', 'net'] as const;
export type ServedDeviceType = (typeof SERVED_DEVICE_TYPES)[number];

export const KNOWN_DATA_PLANES = ['virtio', 'vhost', 'vhost_user'] as const;
export const SERVED_DATA_PLANES = ['virtio', 'vhost', 'vhost_user'] as const;
export type ServedDataPlane = (typeof SERVED_DATA_PLANES)[number];

export function isServedType(type: string): type is ServedDeviceType {
  return (SERVED_DEVICE_TYPES as readonly string[]).includes(type);
}

export function isServedDataPlane(plane: string): plane is ServedDataPlane {
  return (SERVED_DATA_PLANES as readonly string[]).includes(plane);
}

export function isKnownType(type: string): boolean {
  return (KNOWN_DEVICE_TYPES as readonly string[]).includes(type);
}

export function isKnownDataPlane(plane: string): boolean {
  return (KNOWN_DATA_PLANES as readonly string[]).includes(plane);
}
