// `baoctl devices`: without Bao it says so plainly and exits 0 (--json: empty lists); with
// nodes it names the revision, and a node that does not answer is an error with exit 1.
// The dev root and the addon are injected.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { runDevices } from '../../../lib/cli/cmds/devices/handler.js';
import type { NativeAddon } from '../../../lib/native.js';

let dev: string;
beforeEach(() => {
  dev = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-cli-'));
});
afterEach(() => fs.rmSync(dev, { recursive: true, force: true }));

function capture() {
  let text = '';
  return { out: { write: (s: string) => (text += s) }, text: () => text };
}

const enotty = (syscall: string) => Object.assign(new Error(`ENOTTY: inappropriate ioctl for device, ${syscall}`), { code: 'ENOTTY', errno: -25, syscall });

/** A fake addon: DM ids 1 and 4 exist, every other id is ENOENT (v2). */
function fakeAddon(): NativeAddon {
  let nextFd = 0;
  const fake: Partial<NativeAddon> = {
    dmGetInfo: (_fd, id) => {
      if (id !== 1 && id !== 4) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT', errno: -2, syscall: 'ioctl(BAO_IOCTL_DM_GET_INFO)' });
      // a real fd the handle can close
      nextFd = fs.openSync('/dev/null', 'r');
      return { id, shmemAddr: 0xd000_0000n + BigInt(id) * 0x100_0000n, shmemSize: 0x100_0000n, irq: 40 + id, fd: nextFd };
    },
    dmGetInfoRevA: () => {
      throw enotty('ioctl(BAO_IOCTL_DM_GET_INFO)');
    },
  };
  return fake as NativeAddon;
}

describe('baoctl devices without Bao', () => {
  it('says there are no Bao device nodes and exits 0', () => {
    const c = capture();
    expect(runDevices({ json: false, devRoot: dev, probe: false }, { out: c.out })).toBe(0);
    expect(c.text()).toContain(`No Bao device nodes under ${dev}`);
    expect(c.text()).toMatch(/not a Bao backend VM, or the Bao drivers are not loaded/);
  });

  it('--json gives empty lists and a null revision', () => {
    const c = capture();
    expect(runDevices({ json: true, devRoot: dev, probe: false }, { out: c.out })).toBe(0);
    expect(JSON.parse(c.text())).toMatchObject({ devRoot: dev, revision: null, nodes: [], deviceModels: [], ipc: [], errors: [] });
  });

  it('does not need the addon', () => {
    const c = capture();
    const addon = () => {
      throw new Error('must not load');
    };
    expect(runDevices({ json: false, devRoot: dev, probe: false }, { out: c.out, addon })).toBe(0);
  });
});

describe('baoctl devices with Bao nodes', () => {
  it('primary: probes ids 0..15 and prints each device model found', () => {
    fs.writeFileSync(path.join(dev, 'bao-io-dispatcher'), '');
    fs.writeFileSync(path.join(dev, 'baoipc0'), '');
    const sys = path.join(dev, 'sys');
    fs.mkdirSync(path.join(sys, 'class/misc/bao-io-dispatcher'), { recursive: true });
    const c = capture();
    expect(runDevices({ json: false, devRoot: dev, probe: false }, { out: c.out, addon: fakeAddon, sysRoot: sys })).toBe(0);
    expect(c.text()).toContain('I/O dispatcher ABI revision: primary');
    expect(c.text()).toContain('device model 1: shared memory 0xd1000000 size 0x1000000 (16777216 bytes), irq 41');
    expect(c.text()).toContain('device model 4: shared memory 0xd4000000');
    expect(c.text()).toContain(`IPC shared memory 0: ${path.join(dev, 'baoipc0')}`);
  });

  it('primary --json: device models with hex addresses', () => {
    fs.writeFileSync(path.join(dev, 'bao-io-dispatcher'), '');
    const c = capture();
    runDevices({ json: true, devRoot: dev, probe: false }, { out: c.out, addon: fakeAddon, sysRoot: dev });
    const report = JSON.parse(c.text());
    expect(report.revision).toBe('primary');
    expect(report.deviceModels).toEqual([
      { id: 1, shmemAddr: '0xd1000000', shmemSize: '0x1000000', irq: 41 },
      { id: 4, shmemAddr: '0xd4000000', shmemSize: '0x1000000', irq: 44 },
    ]);
  });

  it('does not query an OOT/v1 dispatcher (closing DM fds is fatal there) unless --probe', () => {
    fs.writeFileSync(path.join(dev, 'bao-io-dispatcher'), '');
    fs.mkdirSync(path.join(dev, 'class/bao-io-dispatcher'), { recursive: true });
    const c = capture();
    expect(runDevices({ json: false, devRoot: dev, probe: false }, { out: c.out, addon: fakeAddon, sysRoot: dev })).toBe(0);
    expect(c.text()).toMatch(/note: the dispatcher is the out-of-tree or v1 driver, .*device models are not listed here \(pass --probe/);
    expect(c.text()).not.toContain('device model 1');
  });

  it('a node that answers ENOTTY is reported as BAO_WRONG_DEVICE and exits 1', () => {
    fs.writeFileSync(path.join(dev, 'bao-dm0'), '');
    const c = capture();
    expect(runDevices({ json: false, devRoot: dev, probe: false }, { out: c.out, addon: fakeAddon })).toBe(1);
    expect(c.text()).toContain('I/O dispatcher ABI revision: revA');
    expect(c.text()).toMatch(/error \(BAO_WRONG_DEVICE\): .*bao-dm0 does not answer the Bao revA ioctls \(ENOTTY\)/);
  });

  it('revB: explains that device models are created on demand', () => {
    fs.writeFileSync(path.join(dev, 'bao'), '');
    const c = capture();
    expect(runDevices({ json: false, devRoot: dev, probe: false }, { out: c.out, addon: fakeAddon })).toBe(0);
    expect(c.text()).toMatch(/revB creates device models on demand/);
  });
});
