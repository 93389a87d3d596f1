// virtio-rng: entropy from the host OS for the frontend's /dev/hwrng.
export { RngDevice, VIRTIO_ID_RNG, type RngDeviceOptions } from './device.js';
export type { RngMetrics } from './metrics.js';
