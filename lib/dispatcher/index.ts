// lib/dispatcher: the low level of the Bao I/O dispatcher (ARCHITECTURE.md): revision detection,
// device-model handles, the ATTACH request stream, COMPLETE, ioeventfd/irqfd, mappings, eventfds
// and fd pollers. The request router built on top lives elsewhere.
export * from './attach-loop.js';
export * from './device-model.js';
export * from './driver.js';
export * from './errors.js';
export * from './eventfd.js';
export * from './mapping.js';
export * from './nodes.js';
export * from './poller.js';
export * from './pty.js';
export * from './register-cells.js';
export * from './request.js';
export type { CreateDeviceModelParams, DeviceModelInfo, DmFdClosePolicy } from './revision-ops.js';
