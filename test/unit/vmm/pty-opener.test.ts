// The addon-backed PtyOpener with the console's PTY backend, on a real pseudo-terminal: a user
// on the slave sees guest output and types guest input, and detaching does not end the console
// (the opener holds the slave, so the master never reads EIO). Needs the built addon; without it
// the suite is reported as skipped with the reason.

import { closeSync, openSync, readSync, writeSync, constants } from 'node:fs';
import { lstat, mkdtemp, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { openPtyBackend } from '../../../lib/devices/console/backends/pty.js';
import { createAddonPtyOpener } from '../../../lib/vmm/pty-opener.js';

let skipReason: string | undefined;
let loadAddon: (() => { openpty(): { fd: number; path: string } }) | undefined;
try {
  const native = await import('../../../lib/native.js');
  native.loadAddon();
  loadAddon = native.loadAddon;
} catch (err) {
  skipReason = `native addon not built (${(err as Error).message.split('\n')[0]}); run npm run build:native`;
  console.warn(`skipping the real PTY opener tests: ${skipReason}`);
}

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Reads what is available on a (blocking) slave fd opened O_NONBLOCK. */
function drain(fd: number): string {
  const buf = Buffer.alloc(4096);
  try {
    const n = readSync(fd, buf);
    return buf.subarray(0, n).toString();
  } catch {
    return '';
  }
}

describe.skipIf(skipReason !== undefined)('addon PtyOpener + PTY backend', () => {
  it('bridges a terminal on the slave, survives the user detaching, and removes its alias', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'node-bao-pty-'));
    const alias = join(dir, 'console0');
    const backend = await openPtyBackend({ opener: createAddonPtyOpener(loadAddon!), alias });
    const typed: string[] = [];
    backend.start({ data: (c) => void typed.push(Buffer.from(c).toString()), drain: () => {} });
    const slavePath = await readlink(alias);
    expect(slavePath).toMatch(/^\/dev\/pts\/\d+$/);

    for (const round of ['first', 'second']) {
      const user = openSync(alias, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
      await new Promise<void>((resolve) => backend.write(Buffer.from(`guest ${round}\n`), () => resolve()));
      await tick();
      expect(drain(user)).toBe(`guest ${round}\n`); // raw mode: no \r\n translation, no echo
      writeSync(user, `user ${round}`);
      await tick();
      expect(typed.join('')).toContain(`user ${round}`);
      closeSync(user); // detach; the next round attaches again
      await tick();
    }
    expect(typed.join('')).toBe('user firstuser second');

    await backend.close();
    await expect(lstat(alias)).rejects.toMatchObject({ code: 'ENOENT' });
    await rm(dir, { recursive: true, force: true });
  });
});
