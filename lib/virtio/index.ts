// The virtio core's public surface: what devices, the dispatcher and the daemon import.
// Transport-independent and free of Bao and the addon (ARCHITECTURE.md, lib/virtio/).

export type { DeviceActivation, VirtioDevice } from './device.js';
export { bufferCount, bufferView, chainFromSpans, copyFromReadable, copyToWritable, type DescriptorChain } from './descriptor-chain.js';
export * from './errors.js';
export * as features from './features.js';
export { GuestMemory } from './guest-memory.js';
export { silentLogger, worthLogging, type Logger } from './logger.js';
export { rateLimitedLogger, type LogLimitOptions } from './log-limiter.js';
export * as registers from './mmio-registers.js';
export {
  MmioTransport,
  type ActivationInfo,
  type MmioTransportOptions,
  type TransportFaultCode,
  type TransportStats,
} from './mmio-transport.js';
export {
  QueueWorker,
  eventLoopScheduler,
  type Admission,
  type ChainHandler,
  type QueueCounters,
  type QueueWorkerBudget,
  type QueueWorkerOptions,
  type QueueWorkerStats,
  type WorkerScheduler,
} from './queue-worker.js';
export { SplitQueue, type SplitQueueConfig } from './split-queue.js';
export * as status from './status.js';
export { takeChain, type ChainFaultCounters } from './take-chain.js';
export { TokenBucket, type TokenBucketOptions } from './token-bucket.js';
