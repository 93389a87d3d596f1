// Counters of the virtio-rng device, read by the daemon's metrics endpoint and by tests.

export interface RngMetrics {
  /** Chains filled with entropy. */
  requests: number;
  /** Random bytes written into guest buffers. */
  bytes: number;
  /** Malformed chains (guest fault; each one put the device in NEEDS_RESET). */
  invalidChains: number;
  /** Requests whose first descriptor is device-readable, returned with length 0 (guest fault). */
  readableRequests: number;
  /** Chains without any device-writable byte, returned with length 0 (guest fault). */
  noWritableBuffer: number;
  /** Times serving stopped on the per-run budget and continued after a yield. */
  queueYields: number;
  /** Times requests waited for the byte rate limit. */
  rateLimitWaits: number;
  activations: number;
  resets: number;
}

export function newRngMetrics(): RngMetrics {
  return {
    requests: 0,
    bytes: 0,
    invalidChains: 0,
    readableRequests: 0,
    noWritableBuffer: 0,
    queueYields: 0,
    rateLimitWaits: 0,
    activations: 0,
    resets: 0,
  };
}
