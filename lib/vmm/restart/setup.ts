// The daemon's start-up side of keeping kernel objects: a KeptFds that takes what systemd hands
// back (LISTEN_FDS) and, when systemd runs the daemon, stores each new kernel object in its fd
// store. The addon is loaded only when one of the two is in play.

import type { Logger } from '../../virtio/logger.js';
import type { NativeAddon } from '../../native.js';
import { systemdFdStore } from './fd-store.js';
import { KeptFds } from './kept-fds.js';
import { listenFds } from './listen-fds.js';

export interface SetupKeptFdsOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly log: Logger;
  readonly addon: () => NativeAddon;
  readonly pid?: number;
}

export function setupKeptFds(options: SetupKeptFdsOptions): KeptFds {
  const { env, log } = options;
  const store = systemdFdStore(env, () => {
    const addon = options.addon();
    return (path: string, data: Buffer, fds: readonly number[]) => addon.sendUnixDatagramFds(path, data, fds);
  });
  const kept = new KeptFds({ log, ...(store === undefined ? {} : { store }) });
  const listened = listenFds({
    env,
    ...(options.pid === undefined ? {} : { pid: options.pid }),
    setCloexec: (fd) => options.addon().setCloexec(fd),
  });
  if (listened.ignored !== undefined) log.warn({}, `descriptors from the service manager not used: ${listened.ignored}`);
  if (listened.fds.length > 0) {
    kept.receive(listened.fds, 'systemd');
    log.info({ fds: listened.fds.length, rejected: kept.counts.rejected }, `${listened.fds.length} kept descriptor(s) from systemd's fd store`);
  }
  return kept;
}
