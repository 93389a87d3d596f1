// virtio-blk: a raw image file or block device as the frontend's disk (virtio 1.2 §5.2).
export { BlkDevice, BLK_CACHE_MODES, DEFAULT_BLK_QUEUE_SIZE, MAX_BLK_QUEUES, type BlkCacheMode, type BlkDeviceOptions } from './device.js';
export * from './config.js';
export type { BlkEngine, IoDone } from './engine.js';
export { IoVector } from './io-vector.js';
export { ThreadPoolEngine, type ThreadPoolEngineOptions } from './engines/thread-pool.js';
export { BlkMetrics } from './metrics.js';
export { parseRequest, encodeSerial, type ParsedRequest, type RequestLimits, type MalformedKind } from './request.js';
export { openBacking, serialFromPath, type Backing, type BlockHostOps, type OpenBackingOptions } from './backing.js';
export { BlkBackingError, type BlkBackingErrorCode } from './errors.js';
export { IoUringEngine, type IoUringEngineOptions, type UringRing } from './engines/io-uring.js';
