// lib/vmm: the daemon. Config (schema, loading, rendering), logging, the lifecycle over an
// injected DeviceModelFactory, the default device builders and the addon-backed PTY opener.

export * from './config/index.js';
export * from './errors.js';
export { Daemon, serve, type DaemonOptions, type ServeResult, type ShutdownReport } from './daemon.js';
export type { DeviceModelFactory, DeviceModelFactoryModule, OpenDeviceModelRequest, ServedDevice } from './device-model.js';
export type { BuildContext, BuiltDevice, DeviceBuilder, DeviceBuilders } from './device-builder.js';
export { defaultDeviceBuilders } from './device-builders.js';
export { createRootLogger, resolveLogFormat, resolveLogLevel, type LoggerOptions, type RootLogger } from './logger.js';
export { createAddonPtyOpener, defaultPtyOpener } from './pty-opener.js';
