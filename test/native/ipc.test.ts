// IpcDevice over a plain file standing in for /dev/baoipcN: reads and writes go at explicit
// offsets (pread/pwrite, the drivers have no llseek), mmap at an offset, close cascades.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { IpcDevice, listIpcDevices } from '../../lib/ipc/index.js';

let dev: string;
beforeEach(() => {
  dev = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-ipc-'));
  fs.writeFileSync(path.join(dev, 'baoipc0'), Buffer.alloc(8192));
  fs.writeFileSync(path.join(dev, 'baoipc2'), '');
});
afterEach(() => fs.rmSync(dev, { recursive: true, force: true }));

describe('IPC shared-memory devices', () => {
  it('lists /dev/baoipc<N> nodes by id', () => {
    expect(listIpcDevices(dev)).toEqual([
      { id: 0, path: path.join(dev, 'baoipc0') },
      { id: 2, path: path.join(dev, 'baoipc2') },
    ]);
  });

  it('reads and writes at explicit offsets without moving a shared position', () => {
    const ipc = IpcDevice.open(0, { devRoot: dev });
    expect(ipc.write('hello', 100)).toBe(5);
    expect(ipc.write(Buffer.from([1, 2]), 0)).toBe(2);
    expect(ipc.read(100, 5).toString()).toBe('hello');
    expect([...ipc.read(0, 2)]).toEqual([1, 2]);
    expect(ipc.read(8190, 10).length).toBe(2);
    ipc.close();
  });

  it('maps at an offset relative to the region start; close unmaps and is idempotent', () => {
    const ipc = IpcDevice.open(path.join(dev, 'baoipc0'));
    ipc.write('peer', 4096 + 8);
    const m = ipc.map({ offset: 4096, length: 4096 });
    expect(Buffer.from(m.view(8, 4)).toString()).toBe('peer');
    ipc.close();
    ipc.close();
    expect(m.closed).toBe(true);
    expect(() => ipc.read(0, 1)).toThrow(expect.objectContaining({ code: 'HANDLE_CLOSED' }));
  });
});
