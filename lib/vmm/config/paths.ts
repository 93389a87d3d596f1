// Relative paths in a config file (a console's socket_path and pty_alias, a block device's
// file_path, a vhost-user backend's socket) are resolved against
// the directory of the config file, never against the working directory, which under systemd is
// `/`. A device type with a path of its own adds it here.

import { dirname, isAbsolute, resolve } from 'node:path';

import type { DaemonConfig, DeviceConfig } from './types.js';

function resolveDevice(entry: DeviceConfig, base: string): DeviceConfig {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  if (entry.dataPlane === 'vhost_user') return { ...entry, socket: abs(entry.socket) };
  if (entry.type === 'block') return { ...entry, filePath: abs(entry.filePath) };
  if (entry.type === 'console') {
    const b = entry.backend;
    if (b.kind === 'socket') return { ...entry, backend: { ...b, path: abs(b.path) } };
    if (b.kind === 'pty' && b.alias !== undefined) return { ...entry, backend: { ...b, alias: abs(b.alias) } };
  }
  return entry;
}

/** The config with every relative path made absolute against `configPath`'s directory. */
export function resolveConfigPaths(config: DaemonConfig, configPath: string): DaemonConfig {
  const base = dirname(resolve(configPath));
  return { ...config, devices: config.devices.map((d) => resolveDevice(d, base)) };
}
