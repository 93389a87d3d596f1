// The real DeviceModelFactory: opens device models through the Bao driver this kernel offers
// (lib/dispatcher detects the revision) and serves each device on its own DeviceModelServer.
// The daemon only knows the DeviceModelFactory interface (device-model.ts); this module is what
// `baoctl run` plugs in when it runs on a Bao backend VM.

import { BaoDriver, DeviceModelConfigMissingError, DeviceModelNotFoundError, openBaoDriver, type OpenBaoDriverOptions } from '../dispatcher/index.js';
import type { Logger } from '../virtio/logger.js';
import { DeviceModelServer } from './device-model-server.js';
import type { DeviceModelFactory, OpenDeviceModelRequest, ServedDevice } from './device-model.js';
import { DEFAULT_STATE_DIR, DeviceStateFile } from './state/index.js';
import type { TraceHub } from './trace/hub.js';

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
  return {
    async open(request: OpenDeviceModelRequest): Promise<ServedDevice> {
      // Opened on first use so that `config check` and a config error never touch /dev.
      if (driver === undefined) {
        driver = openBaoDriver(options.driver);
        if (driver.flavour === 'oot-or-v1') {
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
      let handle;
      try {
        handle = driver.openDeviceModel(entry.id, entry.createDm ?? {});
      } catch (err) {
        if (err instanceof DeviceModelNotFoundError) throw new FieldError('id', err);
        if (err instanceof DeviceModelConfigMissingError) throw new FieldError('shmem_addr', err);
        throw err;
      }
      try {
        const stateFile = openStateFile(options.stateDir ?? process.env['NODE_BAO_STATE_DIR'] ?? DEFAULT_STATE_DIR, request, request.log);
        let server: DeviceModelServer;
        try {
          server = DeviceModelServer.start({ handle, device: request.device, mmioAddr: Number(entry.mmioAddr), log: request.log, ...(stateFile === undefined ? {} : { stateFile }), ...(options.trace === undefined ? {} : { trace: options.trace }) });
        } catch (err) {
          stateFile?.close();
          throw err;
        }
        log.debug({ id: entry.id, revision: driver.revision, shmemAddr: `0x${handle.info.shmemAddr.toString(16)}`, shmemSize: Number(handle.info.shmemSize) }, 'device model open');
        return { stopped: server.stopped, snapshot: () => server.snapshot(), completePending: () => server.completePending(), close: () => server.close() };
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
