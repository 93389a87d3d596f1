// virtio-console: one port, backends stdio / unix socket / PTY (virtio 1.2 §5.3).

export { ConsoleDevice, DEFAULT_CONSOLE_QUEUE_SIZE, DEFAULT_RX_BUFFER_LIMIT, type ConsoleDeviceOptions } from './device.js';
export {
  CONSOLE_DEVICE_ID,
  RECEIVEQ,
  TRANSMITQ,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_F_SIZE,
  buildConfigSpace,
  type ConsoleGeometry,
} from './config.js';
export { ConsoleMetrics } from './metrics.js';
export { ConsoleBackendError, type ConsoleBackendErrorCode } from './errors.js';
export * from './backends/index.js';
