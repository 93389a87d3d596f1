// virtio-net over a tap (virtio 1.2 §5.1).
export { NetDevice, DEFAULT_NET_QUEUE_SIZE, type NetDeviceOptions } from './device.js';
export * from './config.js';
export { NetMetrics } from './metrics.js';
export { openTap, TapError, ALL_TAP_OFFLOADS, type TapInterface, type TapQueue, type TapSyscalls, type FdWatch, type OpenTapOptions, type TapErrorCode } from './tap.js';
export { VNET_HDR_SIZE, tapOffloadsFor, checkTxHeader, checkRxHeader } from './header.js';
