// Printing a normalized DaemonConfig: as a JSON-safe document (bao-virtio-dm's snake_case keys,
// addresses as 0x strings because JSON numbers cannot hold a u64) and as text for people.
// `baoctl config check` prints one of these; the daemon logs the JSON form at startup.

import type { ConfigIssue } from '../errors.js';
import { formatIssue } from '../errors.js';
import type { DaemonConfig, DeviceConfig } from './types.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

const hex = (v: bigint): string => `0x${v.toString(16)}`;

export function deviceToJson(device: DeviceConfig): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {
    id: device.id,
    type: device.type,
    mmio_addr: hex(device.mmioAddr),
    data_plane: device.dataPlane,
  };
  if (device.type === 'console') {
    out['backend'] = device.backend.kind;
    if (device.backend.kind === 'pty' && device.backend.alias !== undefined) out['pty_alias'] = device.backend.alias;
    if (device.backend.kind === 'socket') out['socket_path'] = device.backend.path;
  }
  if (device.type === 'block' && device.dataPlane !== 'vhost_user') {
    Object.assign(out, {
      file_path: device.filePath,
      read_only: device.readOnly,
      root_device: device.rootDevice,
      advertise_flush: device.advertiseFlush,
      ...(device.serial === undefined ? {} : { serial: device.serial }),
      queues: device.queues,
      queue_size: device.queueSize,
      discard: device.discard,
      engine: device.engine,
      cache: device.cache,
    });
  }
  if (device.type === 'net') {
    out['tap_name'] = device.tapName;
    if (device.mac !== undefined) out['mac_addr'] = device.mac;
    out['create_tap'] = device.createTap;
    out['mtu'] = device.mtu;
    out['queue_pairs'] = device.queuePairs;
    out['queue_size'] = device.queueSize;
  }
  if (device.dataPlane === 'vhost' && device.type === 'vsock') out['guest_cid'] = device.guestCid.toString();
  if (device.dataPlane === 'vhost_user') {
    out['socket'] = device.socket;
    if (device.tag !== undefined) out['tag'] = device.tag;
    if (device.guestCid !== undefined) out['guest_cid'] = device.guestCid.toString();
  }
  if (device.createDm !== undefined) {
    out['shmem_addr'] = hex(device.createDm.shmemAddr);
    out['shmem_size'] = hex(device.createDm.shmemSize);
    out['irq'] = device.createDm.irq;
  }
  return out;
}

export function configToJson(config: DaemonConfig): { [key: string]: JsonValue } {
  const log: { [key: string]: JsonValue } = {};
  if (config.log.level !== undefined) log['level'] = config.log.level;
  if (config.log.format !== undefined) log['format'] = config.log.format;
  return {
    devices: config.devices.map(deviceToJson),
    log,
    shutdown_timeout_ms: config.shutdownTimeoutMs,
  };
}

function describeBackend(device: DeviceConfig): string {
  if (device.type === 'block' && device.dataPlane !== 'vhost_user') {
    const queues = device.queues === 1 ? '' : `, ${device.queues} queues`;
    return `, ${device.readOnly ? 'read-only ' : ''}image ${device.filePath}${queues}, cache ${device.cache}`;
  }
  if (device.type === 'net') {
    return `, tap ${device.tapName}${device.createTap ? ' (created if missing)' : ''}, mac ${device.mac ?? 'derived'}, mtu ${device.mtu}, ${device.queuePairs} queue pair(s) of ${device.queueSize}`;
  }
  if (device.dataPlane === 'vhost_user') return `, backend socket ${device.socket}`;
  if (device.type !== 'console') return '';
  const b = device.backend;
  if (b.kind === 'pty') return b.alias === undefined ? ', backend pty' : `, backend pty (alias ${b.alias})`;
  if (b.kind === 'socket') return `, backend socket ${b.path}`;
  return ', backend stdio';
}

/** One line per device, then the daemon settings: what `config check` shows a person. */
export function configToText(config: DaemonConfig, warnings: readonly ConfigIssue[] = []): string {
  const lines: string[] = [];
  lines.push(`${config.source ?? 'config'}: OK, ${config.devices.length} device(s)`);
  for (const d of config.devices) {
    const window = `${hex(d.mmioAddr)}..${hex(d.mmioAddr + 0x1ffn)}`;
    const dm = d.createDm === undefined
      ? ''
      : `, CREATE_DM shmem ${hex(d.createDm.shmemAddr)}+${hex(d.createDm.shmemSize)} irq ${d.createDm.irq}`;
    lines.push(`  devices[${d.index}]: ${d.type} id ${d.id}, mmio ${window}, data plane ${d.dataPlane}${describeBackend(d)}${dm}`);
  }
  lines.push(`  log: level ${config.log.level ?? '(default)'}, format ${config.log.format ?? '(default)'}`);
  lines.push(`  shutdown timeout: ${config.shutdownTimeoutMs} ms`);
  for (const w of warnings) lines.push(`warning: ${formatIssue(w)}`);
  return lines.join('\n');
}

export function issueToJson(issue: ConfigIssue): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = { field: issue.field, message: issue.message };
  if (issue.position) out['line'] = issue.position.line, out['column'] = issue.position.column;
  return out;
}
