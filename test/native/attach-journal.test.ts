// The ATTACH loop's request journal option (native/journal.h): accepted over a real mapping of a
// state file, refused when it does not fit its buffer; a slot armed as ATTACH's buffer, filled
// (as the kernel would) and then SIGKILLed, is a request the next process completes. What the
// thread records from real requests is exercised against bao-sim (test/qemu/crash).

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { AttachLoop } from '../../lib/dispatcher/index.js';
import { loadAddon } from '../../lib/native.js';
import { REVISION_ID } from '../../lib/uapi/index.js';
import { DeviceStateFile } from '../../lib/vmm/state/device-state-file.js';
import { encodeRequests } from '../../lib/dispatcher/request.js';

describe('an attach loop with a request journal', () => {
  it('runs with the journal of a memory-mapped state file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-journal-'));
    const file = DeviceStateFile.open(dir, { dmId: 0, mmioAddr: 'a000000', type: 'rng' });
    const fd = fs.openSync('/dev/null', 'r+');
    const loop = new AttachLoop(fd, REVISION_ID.primary, 0, () => {}, () => {}, undefined, { journal: file.journal.nativeTable });
    const end = await loop.ended;
    expect(end.error).toMatchObject({ code: 'ENOTTY' });
    // The slot the thread armed as its ATTACH buffer was freed when it ended.
    const table = file.journal.nativeTable;
    expect(Array.from(new Uint32Array(table.buffer, table.offset, (table.slots * 64) / 4).filter((_, i) => i % 16 === 0))).toEqual(new Array(table.slots).fill(0));
    expect(file.journal.takeLeftovers()).toEqual({ taken: [], uncertain: 0 });
    fs.closeSync(fd);
    file.close();
    // The thread was joined, so its pin on the mapping is gone and close() unmapped it.
    expect(fs.readFileSync('/proc/self/maps', 'utf8')).not.toContain(file.path);
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
    // Heap memory: it could not be kept mapped under a blocked ATTACH, nor survive the process.
    expect(start({ journal: new ArrayBuffer(8192), journalOffset: 64, journalSlots: 2 })).toThrow(/returned by mmap/);
    fs.closeSync(fd);
  });

  it('a request the kernel copied into the armed slot survives a SIGKILL right after, for the next process', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-journal-'));
    const identity = { dmId: 0, mmioAddr: 'a000000', type: 'rng' } as const;
    DeviceStateFile.open(dir, identity).close();
    const file = path.join(dir, 'dm0.state');
    const child = spawn(process.execPath, [path.join(import.meta.dirname, 'attach-journal-child.cjs')], {
      env: { ...process.env, JOURNAL_FILE: file },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    try {
      // Slot 0 (journal at byte 64): state ARMED (4), then the marker (op ASK = 2 at request byte 16).
      const fd = fs.openSync(file, 'r+');
      const slot = Buffer.alloc(64);
      const deadline = Date.now() + 60_000;
      for (;;) {
        fs.readSync(fd, slot, 0, 64, 64);
        if (slot.readUInt32LE(0) === 4 || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(slot.readUInt32LE(0)).toBe(4);
      const marker = Buffer.alloc(48);
      marker[16] = 2;
      expect(slot.subarray(8, 56)).toEqual(marker);
      // The kernel's copy_to_user into the MAP_SHARED page, then the kill before the thread marks it TAKEN.
      const req = { dmId: 0, addr: 0xa000050, op: 1, value: 0, accessWidth: 4, requestId: 2 };
      fs.writeSync(fd, new Uint8Array(encodeRequests([req])), 0, 48, 64 + 8);
      fs.closeSync(fd);
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      const next = DeviceStateFile.open(dir, identity);
      expect(next.journal.takeLeftovers()).toEqual({ taken: [req], uncertain: 0 });
      next.close();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
