// The default builder of each served device type: config entry -> VirtioDevice (+ its host side).
// Keyed by SERVED_DEVICE_TYPES, so serving a new type means adding its builder here.

import { ConsoleDevice } from '../devices/console/device.js';
import type { ConsoleBackend } from '../devices/console/backends/backend.js';
import { openPtyBackend } from '../devices/console/backends/pty.js';
import { openSocketBackend } from '../devices/console/backends/socket.js';
import { openStdioBackend } from '../devices/console/backends/stdio.js';
import { RngDevice } from '../devices/rng/index.js';
import { buildBlockDevice } from './block-builder.js';
import { NetDevice, deriveMac, openTap, parseMac } from '../devices/net/index.js';
import { KernelNetDevice } from '../vhost/kernel/net-device.js';
import { KernelVsockDevice } from '../vhost/kernel/vsock-device.js';
import { openVhostUserDevice } from '../vhost/user/build.js';
import type { ConsoleDeviceConfig } from './config/types.js';
import type { BuildContext, DeviceBuilders } from './device-builder.js';
import { ComponentUnavailableError } from './errors.js';

async function openConsoleBackend(entry: ConsoleDeviceConfig, context: BuildContext): Promise<ConsoleBackend> {
  const log = context.log.child({ module: 'console-backend' });
  const backend = entry.backend;
  switch (backend.kind) {
    case 'stdio':
      return openStdioBackend({
        ...(context.stdin === undefined ? {} : { stdin: context.stdin }),
        ...(context.stdout === undefined ? {} : { stdout: context.stdout }),
      });
    case 'socket':
      // Held for the next client: output a resumed device takes before the client reconnects.
      return openSocketBackend({ path: backend.path, log, holdBytes: 64 * 1024 });
    case 'pty': {
      if (context.ptyOpener === undefined) {
        throw new ComponentUnavailableError('PTY_UNAVAILABLE', 'no PTY opener was given (the pty backend needs the native addon)');
      }
      return openPtyBackend({ opener: context.ptyOpener, alias: backend.alias, log });
    }
  }
}

export const defaultDeviceBuilders: DeviceBuilders = {
  console: async (entry, context) => {
    if (entry.type !== 'console') throw new TypeError(`console builder given a ${entry.type} entry`);
    const backend = await openConsoleBackend(entry, context);
    const log = context.log.child({ module: 'console' });
    const device = new ConsoleDevice({ backend, log });
    const metrics = () => ({ ...device.metrics.snapshot(), backendDiscardedBytes: backend.stats.discardedBytes });
    return {
      device,
      metrics,
      close: async () => {
        await device.close();
        log.info({ metrics: metrics() }, 'console closed');
      },
    };
  },
  net: async (entry, context) => {
    if (entry.type !== 'net') throw new TypeError(`net builder given a ${entry.type} entry`);
    if (context.tapSyscalls === undefined) {
      throw new ComponentUnavailableError('TAP_UNAVAILABLE', 'no tap syscalls were given (a net device needs the native addon)');
    }
    const log = context.log.child({ module: 'net' });
    // Opened now, before anything is served: see lib/devices/net/tap.ts on rtnl.
    const tap = openTap({ name: entry.tapName, queuePairs: entry.queuePairs, create: entry.createTap }, context.tapSyscalls);
    const mac = (entry.mac === undefined ? undefined : parseMac(entry.mac)) ?? deriveMac(`${entry.id} 0x${entry.mmioAddr.toString(16)}`);
    const device = new NetDevice({ tap, mac, mtu: entry.mtu, queueSize: entry.queueSize, log });
    log.info({ tap: tap.name, mac: device.mac, queuePairs: entry.queuePairs, mtu: entry.mtu }, 'tap opened');
    const metrics = () => device.metrics.snapshot();
    return {
      device,
      metrics,
      close: async () => {
        device.close();
        log.info({ metrics: metrics() }, 'net closed');
      },
    };
  },
  vhost_user: async (entry, context) => {
    if (entry.dataPlane !== 'vhost_user') throw new TypeError(`vhost_user builder given a ${entry.dataPlane} entry`);
    const log = context.log.child({ module: 'vhost-user' });
    const device = await openVhostUserDevice(entry, log);
    return {
      device,
      metrics: () => ({ ...device.metrics }),
      close: async () => {
        await device.close();
        log.info({ metrics: { ...device.metrics } }, 'vhost-user device closed');
      },
    };
  },
  vhost: async (entry, context) => {
    if (entry.dataPlane !== 'vhost') throw new TypeError(`vhost builder given a ${entry.dataPlane} entry`);
    const log = context.log.child({ module: 'vhost' });
    if (entry.type === 'net') {
      if (context.tapSyscalls === undefined) {
        throw new ComponentUnavailableError('TAP_UNAVAILABLE', 'no tap syscalls were given (a net device needs the native addon)');
      }
      // The net device's own tap setup; opened now, before anything is served (rtnl: lib/devices/net/tap.ts).
      const tap = openTap({ name: entry.tapName, queuePairs: 1, create: entry.createTap }, context.tapSyscalls);
      const mac = (entry.mac === undefined ? undefined : parseMac(entry.mac)) ?? deriveMac(`${entry.id} 0x${entry.mmioAddr.toString(16)}`);
      let net: KernelNetDevice;
      try {
        net = KernelNetDevice.open({ tap, mac, mtu: entry.mtu, queueSize: entry.queueSize, log });
      } catch (err) {
        tap.close();
        throw err;
      }
      return {
        device: net,
        metrics: () => ({ ...net.metrics }),
        close: async () => {
          net.close();
          log.info({ metrics: { ...net.metrics } }, 'vhost device closed');
        },
      };
    }
    const device = KernelVsockDevice.open({ guestCid: entry.guestCid, log });
    return {
      device,
      metrics: () => ({ ...device.metrics }),
      close: async () => {
        device.close();
        log.info({ metrics: { ...device.metrics } }, 'vhost device closed');
      },
    };
  },
  rng: async (_entry, context) => {
    const device = new RngDevice();
    return {
      device,
      metrics: () => ({ ...device.metrics }),
      close: async () => {
        await device.reset();
        context.log.child({ module: 'rng' }).info({ metrics: { ...device.metrics } }, 'rng closed');
      },
    };
  },
  block: buildBlockDevice,
};
