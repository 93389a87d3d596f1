// openTap with scripted syscalls: what it asks of the kernel (a vnet-header tap per queue pair,
// header size 12, no offloads until a driver negotiates), and how each failure is told to the
// user, naming tap_name, with every fd opened so far closed again.

import { describe, expect, it } from 'vitest';

import { openTap, TapError, type TapSyscalls } from '../../../../lib/devices/net/tap.js';
import { defaultDeviceBuilders } from '../../../../lib/vmm/device-builders.js';
import { silentLogger } from '../../../../lib/virtio/logger.js';
import { parseConfigText } from '../../../../lib/vmm/config/load.js';

function scripted(options: { exists?: boolean; failOpenAt?: number; code?: string } = {}) {
  const calls: string[] = [];
  let opened = 0;
  const sys: TapSyscalls = {
    interfaceExists: () => options.exists ?? true,
    tapOpen: (name, mq) => {
      if (options.failOpenAt === opened) throw Object.assign(new Error(options.code ?? 'EPERM'), { code: options.code ?? 'EPERM', errno: -1 });
      opened += 1;
      calls.push(`open ${name}${mq ? ' mq' : ''} -> ${opened + 10}`);
      return { fd: opened + 10, name };
    },
    tapSetVnetHdrSize: (fd, size) => void calls.push(`hdr ${fd} ${size}`),
    tapSetOffload: (fd, flags) => void calls.push(`offload ${fd} ${flags}`),
    tapSetOffloadAsync: (fd, flags, cb) => {
      calls.push(`offload-async ${fd} ${flags}`);
      queueMicrotask(() => cb(null));
    },
    readv: () => -1,
    writev: () => -1,
    close: (fd) => void calls.push(`close ${fd}`),
    watch: () => ({ set: () => {}, close: () => {} }),
  };
  return { sys, calls };
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('openTap', () => {
  it('opens one vnet-header fd per queue pair (multi-queue beyond one) and sets header size 12, no offloads', () => {
    const { sys, calls } = scripted();
    const tap = openTap({ name: 'tap0', queuePairs: 2, create: false }, sys);
    expect(tap.queues).toHaveLength(2);
    expect(calls).toEqual(['open tap0 mq -> 11', 'hdr 11 12', 'offload 11 0', 'open tap0 mq -> 12', 'hdr 12 12', 'offload 12 0']);
    tap.close();
    tap.close();
    expect(calls.slice(-2)).toEqual(['close 11', 'close 12']);
  });

  it('keeps the fds open until an offload change running on the thread pool has finished', async () => {
    const { sys, calls } = scripted();
    const tap = openTap({ name: 'tap0', queuePairs: 1, create: false }, sys);
    const done = new Promise((r) => tap.setOffload(1, r));
    tap.close();
    expect(calls).not.toContain('close 11');
    await done;
    expect(calls).toContain('close 11');
  });

  it.each([
    [{ exists: false }, 'TAP_NOT_FOUND', /does not exist; create it first \(ip tuntap add dev tap0 mode tap multi_queue\) or set create_tap: true/],
    [{ failOpenAt: 1, code: 'EPERM' }, 'TAP_PERMISSION', /no permission to open the tap 'tap0' through \/dev\/net\/tun/],
    [{ failOpenAt: 0, code: 'EACCES' }, 'TAP_PERMISSION', /CAP_NET_ADMIN/],
    [{ failOpenAt: 0, code: 'ENOENT' }, 'TUN_UNAVAILABLE', /modprobe tun/],
    [{ failOpenAt: 1, code: 'EINVAL' }, 'TAP_INCOMPATIBLE', /multi_queue/],
  ] as const)('%o -> %s, naming tap_name, with the fds opened before closed', (script, code, message) => {
    const { sys, calls } = scripted(script);
    const err = thrown(() => openTap({ name: 'tap0', queuePairs: 2, create: false }, sys));
    expect(err).toBeInstanceOf(TapError);
    expect(err).toMatchObject({ code, field: 'tap_name', message: expect.stringMatching(message) });
    const opens = calls.filter((c) => c.startsWith('open')).length;
    expect(calls.filter((c) => c.startsWith('close'))).toHaveLength(opens);
  });

  it('creates a missing tap only when allowed', () => {
    const { sys, calls } = scripted({ exists: false });
    openTap({ name: 'nb0', queuePairs: 1, create: true }, sys).close();
    expect(calls[0]).toBe('open nb0 -> 11');
  });
});

describe('the net builder', () => {
  it('opens the tap at build time and gives the configured MAC, or a stable derived one', async () => {
    const yaml = 'devices:\n  - {id: 1, type: net, mmio_addr: 0xa003e00, tap_name: tap0, mac_addr: "52:54:00:aa:bb:01"}\n  - {id: 2, type: net, mmio_addr: 0xa004000, tap_name: tap1}\n';
    const { config } = parseConfigText(yaml);
    const { sys, calls } = scripted();
    const log = silentLogger;
    const a = await defaultDeviceBuilders.net(config.devices[0]!, { log, tapSyscalls: sys });
    const b = await defaultDeviceBuilders.net(config.devices[1]!, { log, tapSyscalls: sys });
    const b2 = await defaultDeviceBuilders.net(config.devices[1]!, { log, tapSyscalls: scripted().sys });
    expect(calls.filter((c) => c.startsWith('open'))).toHaveLength(2);
    const mac = (d: typeof a) => Array.from(d.device.config.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');
    expect(mac(a)).toBe('52:54:00:aa:bb:01');
    expect(mac(b)).toBe(mac(b2));
    expect(mac(b)).not.toBe(mac(a));
    for (const d of [a, b, b2]) await d.close();
  });

  it('refuses to build without tap syscalls', async () => {
    const { config } = parseConfigText('devices:\n  - {id: 1, type: net, mmio_addr: 0xa003e00, tap_name: tap0}\n');
    await expect(defaultDeviceBuilders.net(config.devices[0]!, { log: silentLogger })).rejects.toMatchObject({ code: 'TAP_UNAVAILABLE' });
  });
});
