// Revision detection from device node names, against a fake /dev made of plain files: the
// names decide the revision; opening them for ioctls then fails with ENOTTY, which must come
// back as a clear BAO_WRONG_DEVICE error.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  BaoNotPresentError,
  detectRevision,
  dispatcherFlavour,
  openBaoDriver,
  scanBaoNodes,
} from '../../lib/dispatcher/index.js';

let dev: string;
const touch = (...names: string[]) => {
  for (const n of names) fs.writeFileSync(path.join(dev, n), '');
};

beforeEach(() => {
  dev = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-dev-'));
});
afterEach(() => {
  fs.rmSync(dev, { recursive: true, force: true });
});

describe('revision detection', () => {
  it('reads /dev/bao-io-dispatcher as the primary ABI (OOT/v1/v2)', () => {
    touch('bao-io-dispatcher', 'baoipc0', 'null');
    expect(detectRevision(dev).revision).toBe('primary');
  });

  it('reads /dev/bao-dm<N> nodes as revA, sorted by id', () => {
    touch('bao-dm10', 'bao-dm2', 'bao-dmx');
    const { revision, nodes } = detectRevision(dev);
    expect(revision).toBe('revA');
    expect(nodes.deviceModels.map((n) => n.id)).toEqual([2, 10]);
  });

  it('reads /dev/bao as revB', () => {
    touch('bao');
    expect(detectRevision(dev).revision).toBe('revB');
  });

  it('lists IPC nodes but does not take them for a dispatcher', () => {
    touch('baoipc3', 'baoipc1');
    expect(scanBaoNodes(dev).ipc.map((n) => n.path)).toEqual([path.join(dev, 'baoipc1'), path.join(dev, 'baoipc3')]);
    expect(() => detectRevision(dev)).toThrow(BaoNotPresentError);
  });

  it('without any node throws BAO_NOT_PRESENT naming the nodes and what to do', () => {
    let err: unknown;
    try {
      detectRevision(dev);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BaoNotPresentError);
    expect(err).toMatchObject({ code: 'BAO_NOT_PRESENT', devRoot: dev });
    const msg = (err as Error).message;
    expect(msg).toContain(path.join(dev, 'bao-io-dispatcher'));
    expect(msg).toContain('bao-dm<N>');
    expect(msg).toContain(path.join(dev, 'bao'));
    expect(msg).toMatch(/load the Bao I\/O dispatcher driver/i);
  });

  it('treats a missing dev root as "no nodes"', () => {
    expect(() => detectRevision(path.join(dev, 'absent'))).toThrow(expect.objectContaining({ code: 'BAO_NOT_PRESENT' }));
  });
});

describe('opening device models on nodes that are not Bao drivers', () => {
  it('primary: DM_GET_INFO answers ENOTTY -> BAO_WRONG_DEVICE naming the node, ENOTTY as cause', async () => {
    touch('bao-io-dispatcher');
    const driver = openBaoDriver({ devRoot: dev });
    expect(driver.revision).toBe('primary');
    let err: unknown;
    try {
      driver.openDeviceModel(0);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'BAO_WRONG_DEVICE', path: path.join(dev, 'bao-io-dispatcher') });
    expect((err as Error).cause).toMatchObject({ code: 'ENOTTY', syscall: 'ioctl(BAO_IOCTL_DM_GET_INFO)' });
    await driver.close();
    await driver.close();
  });

  it('revA: an id without a node is BAO_DM_NOT_FOUND; a node answering ENOTTY is BAO_WRONG_DEVICE', async () => {
    touch('bao-dm1');
    const driver = openBaoDriver({ devRoot: dev });
    expect(() => driver.openDeviceModel(0)).toThrow(expect.objectContaining({ code: 'BAO_DM_NOT_FOUND' }));
    expect(() => driver.openDeviceModel(1)).toThrow(expect.objectContaining({ code: 'BAO_WRONG_DEVICE' }));
    await driver.close();
  });

  it('revB: without shmemAddr/shmemSize/irq says which are missing; with them, ENOTTY is BAO_WRONG_DEVICE', async () => {
    touch('bao');
    const driver = openBaoDriver({ devRoot: dev });
    expect(() => driver.openDeviceModel(0, { shmemAddr: 0xd000_0000n })).toThrow(
      expect.objectContaining({ code: 'BAO_DM_CONFIG_MISSING', message: expect.stringContaining('shmemSize, irq') }),
    );
    expect(() => driver.openDeviceModel(0, { shmemAddr: 0xd000_0000n, shmemSize: 0x100_0000n, irq: 40 })).toThrow(
      expect.objectContaining({ code: 'BAO_WRONG_DEVICE' }),
    );
    await driver.close();
  });

  it('a closed driver refuses to open device models', async () => {
    touch('bao-io-dispatcher');
    const driver = openBaoDriver({ devRoot: dev });
    await driver.close();
    expect(() => driver.openDeviceModel(0)).toThrow(expect.objectContaining({ code: 'HANDLE_CLOSED' }));
  });
});

describe('telling the primary driver builds apart (spec §3.5)', () => {
  it('sees v2 as a misc device and OOT/v1 as a class of their own', () => {
    fs.mkdirSync(path.join(dev, 'class/misc/bao-io-dispatcher'), { recursive: true });
    expect(dispatcherFlavour(dev)).toBe('v2');
    fs.rmSync(path.join(dev, 'class'), { recursive: true });
    fs.mkdirSync(path.join(dev, 'class/bao-io-dispatcher'), { recursive: true });
    expect(dispatcherFlavour(dev)).toBe('oot-or-v1');
    fs.rmSync(path.join(dev, 'class'), { recursive: true });
    expect(dispatcherFlavour(dev)).toBe('unknown');
  });
});
