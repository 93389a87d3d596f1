// Counters of the virtio-rng device, read by the daemon's metrics endpoint and by tests.

export interface RngMetrics {
  /** Chains filled with entropy. */
  requests: number;
  /** Random bytes written into guest buffers. */
  bytes: number;
  /** Malformed chains returned with length 0 (guest fault). */
  invalidChains: number;
  /** Chains without any device-writable buffer, returned with length 0 (guest fault). */
  noWritableBuffer: number;
  activations: number;
  resets: number;
}

export function newRngMetrics(): RngMetrics {
  return { requests: 0, bytes: 0, invalidChains: 0, noWritableBuffer: 0, activations: 0, resets: 0 };
}
