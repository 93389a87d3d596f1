// The Bao factory warns, once, when the driver is the out-of-tree/v1 one, where a daemon that
// exits (closing its device-model fds) crashes the backend kernel; the v2 driver gets no warning.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import type { NativeAddon } from '../../../lib/native.js';
import type { Logger } from '../../../lib/virtio/logger.js';
import { createDeviceModelFactory } from '../../../lib/vmm/bao-device-model-factory.js';
import type { DeviceConfig } from '../../../lib/vmm/config/types.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function machine(flavour: 'oot-or-v1' | 'v2'): { devRoot: string; sysRoot: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-fac-'));
  dirs.push(root);
  const devRoot = path.join(root, 'dev');
  const sysRoot = path.join(root, 'sys');
  fs.mkdirSync(devRoot);
  fs.writeFileSync(path.join(devRoot, 'bao-io-dispatcher'), '');
  fs.mkdirSync(path.join(sysRoot, flavour === 'v2' ? 'class/misc/bao-io-dispatcher' : 'class/bao-io-dispatcher'), { recursive: true });
  return { devRoot, sysRoot };
}

function recorder(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const log: Logger = { debug() {}, info() {}, error() {}, warn: (_o, m) => warnings.push(m ?? ''), child: () => log };
  return { log, warnings };
}

const addon = {
  dmGetInfo: () => {
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT', errno: -2, syscall: 'ioctl(BAO_IOCTL_DM_GET_INFO)' });
  },
} as unknown as NativeAddon;

const entry = { index: 0, id: 0, type: 'rng', mmioAddr: 0xa000000n, dataPlane: 'virtio', createDm: undefined } as unknown as DeviceConfig;

describe('the Bao device-model factory', () => {
  for (const flavour of ['oot-or-v1', 'v2'] as const) {
    it(`${flavour === 'v2' ? 'does not warn' : 'warns once that restarting is unsafe'} on the ${flavour} driver`, async () => {
      const { log, warnings } = recorder();
      const factory = createDeviceModelFactory({ log, driver: { ...machine(flavour), addon } });
      for (let i = 0; i < 2; i++) {
        await expect(factory.open({ entry, device: {} as never, log })).rejects.toThrow();
      }
      const restart = warnings.filter((w) => w.includes('do not restart'));
      expect(restart).toHaveLength(flavour === 'v2' ? 0 : 1);
      if (flavour !== 'v2') expect(restart[0]).toMatch(/crashes the backend kernel/);
      await factory.close?.();
    });
  }
});
