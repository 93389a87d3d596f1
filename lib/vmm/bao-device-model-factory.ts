// The real DeviceModelFactory: opens device models through the Bao driver this kernel offers
// (lib/dispatcher detects the revision) and serves each device on its own DeviceModelServer.
// The daemon only knows the DeviceModelFactory interface (device-model.ts); this module is what
// `baoctl run` plugs in when it runs on a Bao backend VM.

import { BaoDriver, DeviceModelConfigMissingError, DeviceModelNotFoundError, openBaoDriver, type OpenBaoDriverOptions } from '../dispatcher/index.js';
import type { Logger } from '../virtio/logger.js';
import { SharedDeadlines, type KickClock } from './kick-clock.js';
import { DeviceModelServer } from './device-model-server.js';
import type { DeviceModelFactory, OpenDeviceModelRequest, ServedDevice } from './device-model.js';
import { DEFAULT_STATE_DIR, DeviceStateFile } from './state/index.js';
import type { TraceHub } from './trace/hub.js';
import { formatFdName } from './restart/fd-names.js';
import type { KeptFds } from './restart/kept-fds.js';
import { causeMessage } from './errors.js';

/** An error that names the config key the user must fix (the daemon prints `devices[i].<field>`). */
class FieldError extends Error {
  readonly code: string;
  constructor(
    readonly field: string,
    cause: Error & { code?: string },
  ) {
    super(cause.message, { cause });
    this.name = 'DeviceModelOpenError';
    this.code = cause.code ?? 'BAO_DM_OPEN_FAILED';
  }
}

export interface BaoDeviceModelFactoryOptions {
  readonly log: Logger;
  readonly driver?: OpenBaoDriverOptions;
  /** Where `baoctl trace` subscribes (the status socket's GET /trace). */
  readonly trace?: TraceHub;
  /** State directory (lib/vmm/state); default env NODE_BAO_STATE_DIR, then /run/node-bao; 'none': no state kept. */
  readonly stateDir?: string;
  /** Kernel objects kept across restarts (lib/vmm/restart): taken when a DM opens, published as they are made. */
  readonly kept?: KeptFds;
  /** The kick watchdogs' timer of every device model this factory opens (default: one made here, shared by them). */
  readonly kickClock?: KickClock;
}

/** The device model's state file, or undefined (none wanted, or it cannot be had: said once per device). */
function openStateFile(dir: string, request: OpenDeviceModelRequest, log: Logger): DeviceStateFile | undefined {
  if (dir === 'none' || dir === '') return undefined;
  const { entry } = request;
  try {
    return DeviceStateFile.open(dir, { dmId: entry.id, mmioAddr: entry.mmioAddr.toString(16), type: request.device.name });
  } catch (err) {
    log.warn(
      { err, dir },
      `cannot keep this device's state in ${dir} (${(err as Error).message}); it is served, but a restarted daemon cannot resume it without a frontend reset. Give a writable --state-dir, or 'none'`,
    );
    return undefined;
  }
}

export function createDeviceModelFactory(options: BaoDeviceModelFactoryOptions): DeviceModelFactory {
  let driver: BaoDriver | undefined;
  const log = options.log;
  // One timer for the kick watchdogs of all device models: idle ones wake the process together.
  const kickClock = options.kickClock ?? new SharedDeadlines();
  return {
    async open(request: OpenDeviceModelRequest): Promise<ServedDevice> {
      // Opened on first use so that `config check` and a config error never touch /dev.
      if (driver === undefined) {
        driver = openBaoDriver(options.driver);
        if (driver.flavour === 'oot-or-v1' && options.kept?.storing === true) {
          // systemd's fd store holds a copy of each DM fd: a restart no longer closes the last one.
          log.warn(
            { revision: driver.revision, flavour: driver.flavour },
            "this is the out-of-tree or v1 Bao driver: the device-model fds are kept in systemd's fd store, so restarts are safe; " +
              'a `systemctl stop` empties the store and closes them, which crashes the backend kernel with this driver, ' +
              'unless the unit has FileDescriptorStorePreserve=yes (systemd 254 or later)',
          );
        } else if (driver.flavour === 'oot-or-v1') {
          // Said once, when the driver is found: the one restart hazard a user cannot see coming.
          log.warn(
            { revision: driver.revision, flavour: driver.flavour },
            'this is the out-of-tree or v1 Bao driver: do not restart or kill this daemon while the backend VM runs ' +
              '(when its device-model fds close, that driver frees device models that stay registered, which crashes the backend kernel); ' +
              'stop it only to reboot, and keep Restart= and WatchdogSec= off in systemd',
          );
        }
      }
      const { entry } = request;
      const kept = options.kept;
      let handle;
      const keptDm = kept?.takeDm(entry.id);
      if (keptDm !== undefined) {
        try {
          handle = driver.adoptDeviceModel(entry.id, keptDm.fd, keptDm.info);
        } catch (err) {
          kept!.refuse(keptDm.fd, formatFdName({ kind: 'dm', dm: entry.id, ...keptDm.info }), causeMessage(err));
        }
      }
      try {
        handle ??= driver.openDeviceModel(entry.id, entry.createDm ?? {});
      } catch (err) {
        if (err instanceof DeviceModelNotFoundError) throw new FieldError('id', err);
        if (err instanceof DeviceModelConfigMissingError) throw new FieldError('shmem_addr', err);
        throw err;
      }
      try {
        const dm = entry.id;
        const keptObjects =
          kept === undefined
            ? undefined
            : {
                irq: kept.takeIrq(dm),
                kicks: kept.takeKicks(dm, request.device.queueMaxSizes.length),
                publish: (what: { kind: 'irq' } | { kind: 'kick'; queue: number }, fd: number) => kept.publish({ ...what, dm }, fd),
              };
        kept?.publish({ kind: 'dm', dm, ...handle.info }, handle.fd);
        const stateFile = openStateFile(options.stateDir ?? process.env['NODE_BAO_STATE_DIR'] ?? DEFAULT_STATE_DIR, request, request.log);
        let server: DeviceModelServer;
        try {
          server = DeviceModelServer.start({
            handle,
            device: request.device,
            mmioAddr: Number(entry.mmioAddr),
            log: request.log,
            kickClock,
            ...(stateFile === undefined ? {} : { stateFile }),
            ...(options.trace === undefined ? {} : { trace: options.trace }),
            ...(keptObjects === undefined ? {} : { kept: keptObjects }),
          });
        } catch (err) {
          stateFile?.close();
          throw err;
        }
        const dmInfo = handle.info;
        const unregister = kept?.register({
          dm,
          fds: () => {
            const now = server.keptFds();
            return [
              { name: formatFdName({ kind: 'dm', dm, ...dmInfo }), fd: now.dm },
              { name: formatFdName({ kind: 'irq', dm }), fd: now.irq },
              ...[...now.kicks].map(([queue, fd]) => ({ name: formatFdName({ kind: 'kick', dm, queue }), fd })),
            ];
          },
          detach: () => server.detach(),
        });
        log.debug({ id: entry.id, revision: driver.revision, shmemAddr: `0x${handle.info.shmemAddr.toString(16)}`, shmemSize: Number(handle.info.shmemSize) }, 'device model open');
        return {
          stopped: server.stopped,
          snapshot: () => server.snapshot(),
          completePending: () => server.completePending(),
          close: () => {
            unregister?.();
            return server.close();
          },
        };
      } catch (err) {
        await handle.close();
        throw err;
      }
    },
    async close(): Promise<void> {
      await driver?.close();
      driver = undefined;
    },
  };
}
