// The ATTACH loop's request journal option (native/journal.h): accepted over a real mapping of a
// state file, refused when it does not fit its buffer. What the thread records is exercised
// against bao-sim (test/qemu/crash), where requests exist.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { AttachLoop } from '../../lib/dispatcher/index.js';
import { loadAddon } from '../../lib/native.js';
import { REVISION_ID } from '../../lib/uapi/index.js';
import { DeviceStateFile } from '../../lib/vmm/state/device-state-file.js';

describe('an attach loop with a request journal', () => {
  it('runs with the journal of a memory-mapped state file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-journal-'));
    const file = DeviceStateFile.open(dir, { dmId: 0, mmioAddr: 'a000000', type: 'rng' });
    const fd = fs.openSync('/dev/null', 'r+');
    const loop = new AttachLoop(fd, REVISION_ID.primary, 0, () => {}, () => {}, undefined, { journal: file.journal.nativeTable });
    const end = await loop.ended;
    expect(end.error).toMatchObject({ code: 'ENOTTY' });
    expect(file.journal.takeLeftovers()).toEqual({ taken: [], uncertain: 0 });
    fs.closeSync(fd);
    file.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a journal that does not fit its buffer, before starting a thread', () => {
    const addon = loadAddon();
    const fd = fs.openSync('/dev/null', 'r+');
    const start = (opts: Record<string, unknown>) => () => new addon.AttachLoop(fd, REVISION_ID.primary, () => {}, opts as never);
    expect(start({ journal: new ArrayBuffer(1024), journalOffset: 64, journalSlots: 64 })).toThrow(/does not fit/);
    expect(start({ journal: new ArrayBuffer(8192), journalOffset: 4, journalSlots: 2 })).toThrow(/aligned/);
    expect(start({ journal: new ArrayBuffer(8192), journalOffset: 0 })).toThrow(/numbers/);
    expect(start({ journal: 'x', journalOffset: 0, journalSlots: 1 })).toThrow(/ArrayBuffer/);
    fs.closeSync(fd);
  });
});
