// PtyMaster: the addon's openpty gives a non-blocking, close-on-exec master in raw mode and a
// slave path; bytes cross untouched (no echo, no CR/LF translation).

import * as fs from 'node:fs';

import { describe, expect, it } from 'vitest';

import { PtyMaster } from '../../lib/dispatcher/index.js';

describe('PtyMaster', () => {
  it('opens a master with a /dev/pts slave, raw: bytes cross unchanged and nothing echoes', async () => {
    const pty = PtyMaster.open();
    expect(pty.path).toMatch(/^\/dev\/pts\/\d+$/);
    const slave = fs.openSync(pty.path, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    fs.writeSync(slave, 'a\nb\r');
    await new Promise((r) => setTimeout(r, 20));
    const buf = Buffer.alloc(16);
    const n = fs.readSync(pty.fd, buf, 0, 16, null);
    expect(buf.subarray(0, n).toString()).toBe('a\nb\r');
    fs.writeSync(pty.fd, 'x\r');
    await new Promise((r) => setTimeout(r, 20));
    const m = fs.readSync(slave, buf, 0, 16, null);
    expect(buf.subarray(0, m).toString()).toBe('x\r');
    // raw mode: no echo came back to the master
    expect(() => fs.readSync(pty.fd, buf, 0, 16, null)).toThrow(expect.objectContaining({ code: 'EAGAIN' }));
    fs.closeSync(slave);
    pty.close();
    pty.close();
    expect(() => pty.fd).toThrow(expect.objectContaining({ code: 'HANDLE_CLOSED' }));
  });
});
