// `baoctl ipc`: plain files stand in for /dev/baoipcN (pread/pwrite behave the same: a read at
// the end returns 0 bytes); ranges are checked against the channel before any access.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { channelSize, hexDump, parseHexBytes } from '../../../lib/cli/cmds/ipc/channel.js';
import { runIpcList, runIpcRead, runIpcWatch, runIpcWrite } from '../../../lib/cli/cmds/ipc/handler.js';
import { IpcDevice } from '../../../lib/ipc/index.js';

let dev = '';
beforeEach(() => {
  dev = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-ipc-'));
  fs.writeFileSync(path.join(dev, 'baoipc0'), Buffer.alloc(0x1000));
  fs.writeFileSync(path.join(dev, 'baoipc1'), Buffer.alloc(100, 0x41));
});
afterEach(() => fs.rmSync(dev, { recursive: true, force: true }));

function sink() {
  const s = { text: '', bytes: [] as Buffer[], write: (t: string | Uint8Array) => (typeof t === 'string' ? (s.text += t) : s.bytes.push(Buffer.from(t))) };
  return s;
}

describe('baoctl ipc', () => {
  it('finds the channel size with a few reads', () => {
    for (const size of [1, 2, 100, 0x1000, 12345]) {
      fs.writeFileSync(path.join(dev, 'x'), Buffer.alloc(size));
      const d = IpcDevice.open(path.join(dev, 'x'));
      expect(channelSize(d)).toBe(size);
      d.close();
    }
  });

  it('lists the devices with their channel sizes', () => {
    const out = sink();
    expect(runIpcList({ devRoot: dev, json: true }, { out })).toBe(0);
    expect(JSON.parse(out.text)).toEqual([
      { id: 0, path: path.join(dev, 'baoipc0'), size: 0x1000 },
      { id: 1, path: path.join(dev, 'baoipc1'), size: 100 },
    ]);
    const none = sink();
    runIpcList({ devRoot: path.join(dev, 'nothing'), json: false }, { out: none });
    expect(none.text).toMatch(/No IPC shared-memory devices/);
  });

  it('writes text or hex and reads it back as a hex dump or raw bytes', async () => {
    const out = sink();
    const err = sink();
    expect(await runIpcWrite({ devRoot: dev, device: '0', offset: '0x10', data: 'ping' }, { out, err })).toBe(0);
    expect(await runIpcWrite({ devRoot: dev, device: '0', offset: '20', hex: 'de ad be ef' }, { out, err })).toBe(0);
    const dump = sink();
    expect(await runIpcRead({ devRoot: dev, device: '0', offset: '0x10', length: '8', format: 'hex' }, { out: dump, err })).toBe(0);
    expect(dump.text).toBe('00000010  70 69 6e 67 de ad be ef                           |ping....|\n');
    const raw = sink();
    await runIpcRead({ devRoot: dev, device: path.join(dev, 'baoipc0'), offset: '0x10', length: '4', format: 'raw' }, { out: raw, err });
    expect(Buffer.concat(raw.bytes).toString()).toBe('ping');
    expect(err.text).toBe('');
  });

  it('refuses offsets and lengths outside the channel with exit 2, before touching it', async () => {
    const err = sink();
    expect(await runIpcRead({ devRoot: dev, device: '1', offset: '100', format: 'hex' }, { out: sink(), err })).toBe(2);
    expect(err.text).toMatch(/offset 0x64 is past the end of the channel \(0x64 bytes/);
    const err2 = sink();
    expect(await runIpcRead({ devRoot: dev, device: '1', offset: '90', length: '20', format: 'hex' }, { out: sink(), err: err2 })).toBe(2);
    expect(err2.text).toMatch(/20 bytes at 0x5a run past the end of the channel \(0x64 bytes\); at most 10 fit there/);
    const err3 = sink();
    expect(await runIpcWrite({ devRoot: dev, device: '1', offset: '98', data: 'abc' }, { out: sink(), err: err3 })).toBe(2);
    expect(fs.readFileSync(path.join(dev, 'baoipc1')).subarray(98).toString()).toBe('AA');
    expect(await runIpcRead({ devRoot: dev, device: '1', offset: 'x', format: 'hex' }, { out: sink(), err: sink() })).toBe(2);
    expect(await runIpcWrite({ devRoot: dev, device: '1', offset: '0', hex: 'xyz' }, { out: sink(), err: sink() })).toBe(2);
  });

  it('a missing device is a runtime failure (exit 1) that says what to load', async () => {
    const err = sink();
    expect(await runIpcRead({ devRoot: dev, device: '7', offset: '0', format: 'hex' }, { out: sink(), err })).toBe(1);
    expect(err.text).toMatch(/baoipc7 does not exist: load the Bao IPC shared-memory driver/);
  });

  it('watch prints the range, then each row that changes', async () => {
    const out = sink();
    const file = path.join(dev, 'baoipc0');
    let polls = 0;
    const sleep = async (): Promise<void> => {
      polls++;
      if (polls === 2) {
        const fd = fs.openSync(file, 'r+');
        fs.writeSync(fd, Buffer.from('hi'), 0, 2, 0x21);
        fs.closeSync(fd);
      }
    };
    expect(await runIpcWatch({ devRoot: dev, device: '0', offset: '0x20', length: '0x20', format: 'hex', interval: 1, count: 1 }, { out, sleep })).toBe(0);
    const parts = out.text.split(/changed:\n/);
    expect(parts[0]).toContain('00000020  00 00');
    expect(parts[1]).toBe('00000020  00 68 69 00 00 00 00 00  00 00 00 00 00 00 00 00  |.hi.............|\n');
  });

  it('parses hex bytes and dumps like hexdump -C', () => {
    expect(parseHexBytes('0xdeadbeef')).toEqual(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    expect(parseHexBytes('de:ad')).toEqual(Buffer.from([0xde, 0xad]));
    expect(parseHexBytes('abc')).toBeUndefined();
    expect(hexDump(Buffer.from('0123456789abcdefXY'))).toBe(
      '00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n00000010  58 59                                             |XY|\n',
    );
  });
});
