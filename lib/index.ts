// The package's public API (`import ... from 'node-bao'`):
// - the daemon: config loading and validation, the lifecycle (serve, Daemon), logging, and the
//   Bao device-model factory that serves a VirtioDevice on a device model of the Bao driver;
// - the device model SDK, as namespaces: `virtio` (VirtioDevice, MmioTransport, SplitQueue,
//   GuestMemory, feature and status bits) to write a device, `devices` for the built-in ones;
// - `ipc` for the IPC shared-memory devices (/dev/baoipcN).
// Importing it loads no native code: the addon is loaded the first time a device node is opened.

export * from './vmm/index.js';
export { createDeviceModelFactory, type BaoDeviceModelFactoryOptions } from './vmm/bao-device-model-factory.js';
export { DEFAULT_STATUS_SOCKET, openStatusServer, type StatusServer } from './vmm/status-server.js';
export type { DaemonStatus, DeviceStatus, DeviceModelSnapshot } from './vmm/status.js';
export * as virtio from './virtio/index.js';
export * as devices from './devices/index.js';
export * as ipc from './ipc/index.js';
export { ABI } from './uapi/index.js';
