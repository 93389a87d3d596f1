// From a validated `data_plane: vhost_user` entry to a connected VhostUserDevice.

import type { Logger } from '../../virtio/logger.js';
import { defaultConfig, VHOST_USER_TYPES, type VhostUserType, type VhostUserTypeInfo } from './device-types.js';
import { VhostUserDevice } from './device.js';

export interface VhostUserEntry {
  readonly type: VhostUserType;
  readonly socket: string;
  readonly tag: string | undefined;
  readonly guestCid: bigint | undefined;
}

export function openVhostUserDevice(entry: VhostUserEntry, log: Logger): Promise<VhostUserDevice> {
  const info: VhostUserTypeInfo = VHOST_USER_TYPES[entry.type];
  const config = defaultConfig(entry.type, {
    ...(entry.tag === undefined ? {} : { tag: entry.tag }),
    ...(entry.guestCid === undefined ? {} : { guestCid: entry.guestCid }),
  });
  return VhostUserDevice.open({
    name: entry.type,
    deviceId: info.deviceId,
    socketPath: entry.socket,
    queueMaxSizes: Array.from({ length: info.queues }, () => info.queueSize),
    configSize: info.configSize,
    ...(config === undefined ? {} : { defaultConfig: config }),
    log,
  });
}
