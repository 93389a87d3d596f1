// `baoctl ipc` against the IPC devices of the Bao-equivalent machine: list finds /dev/baoipc0
// and /dev/baoipc1 with the channel size, what `write` puts on one side `read` and `watch` see on
// the other, and a range past the channel is refused before any access.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runIpcList, runIpcRead, runIpcWatch, runIpcWrite } from '../../lib/cli/cmds/ipc/handler.js';
import { guestSkipReason, ipcStats, loadBaoSim, unloadBaoSim } from './support/bao-sim.js';

function sink() {
  const s = { text: '', write: (t: string | Uint8Array) => (s.text += typeof t === 'string' ? t : Buffer.from(t).toString('latin1')) };
  return s;
}

describe.skipIf(guestSkipReason !== undefined)('baoctl ipc on /dev/baoipc0 and /dev/baoipc1', () => {
  let half = 0;
  beforeAll(() => {
    loadBaoSim({ ipc_size: 0x4000 });
    half = ipcStats().regionSize / 2;
  });
  afterAll(() => unloadBaoSim());

  it('lists both devices with the size of their read channel', () => {
    const out = sink();
    expect(runIpcList({ devRoot: '/dev', json: true }, { out })).toBe(0);
    expect(JSON.parse(out.text)).toEqual([
      { id: 0, path: '/dev/baoipc0', size: half },
      { id: 1, path: '/dev/baoipc1', size: half },
    ]);
  });

  it('what write puts on baoipc0, read shows on baoipc1', async () => {
    expect(await runIpcWrite({ devRoot: '/dev', device: '0', offset: '0x40', data: 'hello bao' }, { out: sink(), err: sink() })).toBe(0);
    const out = sink();
    expect(await runIpcRead({ devRoot: '/dev', device: '1', offset: '0x40', length: '9', format: 'raw' }, { out, err: sink() })).toBe(0);
    expect(out.text).toBe('hello bao');
  });

  it('refuses a range past the channel (exit 2) and writes nothing', async () => {
    const err = sink();
    expect(await runIpcWrite({ devRoot: '/dev', device: '0', offset: String(half - 2), data: 'xyz' }, { out: sink(), err })).toBe(2);
    expect(err.text).toMatch(/run past the end of the channel/);
  });

  it('watch on baoipc1 shows a row that baoipc0 changes', async () => {
    const out = sink();
    let n = 0;
    const sleep = async (): Promise<void> => {
      if (++n === 1) await runIpcWrite({ devRoot: '/dev', device: '0', offset: '0x100', data: 'tick' }, { out: sink(), err: sink() });
    };
    expect(await runIpcWatch({ devRoot: '/dev', device: '1', offset: '0x100', length: '0x10', format: 'hex', interval: 1, count: 1 }, { out, sleep })).toBe(0);
    expect(out.text).toMatch(/changed:\n00000100  74 69 63 6b/);
  });
});
