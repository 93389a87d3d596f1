// The real PtyOpener: openpty from the addon (master non-blocking, raw), wrapped in a tty
// stream for both directions. We keep a slave fd open for the PTY's whole life: reading a master
// fails with EIO whenever no slave fd is open, which would end console input the first time a
// user detaches (or before anyone attaches). lib/devices gets this through injection only.

import { closeSync, constants, openSync } from 'node:fs';
import { ReadStream as TtyStream } from 'node:tty';

import type { OpenedPty, PtyOpener } from '../devices/console/backends/pty.js';
import type { NativeAddon } from '../native.js';
import { ComponentUnavailableError } from './errors.js';

export function createAddonPtyOpener(loadAddon: () => Pick<NativeAddon, 'openpty'>): PtyOpener {
  return async (): Promise<OpenedPty> => {
    let addon: Pick<NativeAddon, 'openpty'>;
    try {
      addon = loadAddon();
    } catch (cause) {
      throw new ComponentUnavailableError('PTY_UNAVAILABLE', `the native addon is not available to open a PTY (build it with npm run build:native): ${(cause as Error).message}`, { cause });
    }
    const { fd, path } = addon.openpty();
    let hold: number;
    try {
      hold = openSync(path, constants.O_RDWR | constants.O_NOCTTY);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    const stream = new TtyStream(fd);
    stream.on('error', () => {}); // EIO/EPIPE at teardown must not crash the daemon
    let closed = false;
    return {
      path,
      input: stream,
      output: stream,
      close: async () => {
        if (closed) return;
        closed = true;
        stream.destroy(); // closes the master fd
        closeSync(hold);
      },
    };
  };
}

/** The default opener: loads lib/native.js lazily so config check and tests never need the addon. */
export function defaultPtyOpener(): PtyOpener {
  let addon: Pick<NativeAddon, 'openpty'> | undefined;
  let loading: Promise<void> | undefined;
  const opener = createAddonPtyOpener(() => {
    if (addon === undefined) throw new Error('addon not loaded');
    return addon;
  });
  return async () => {
    loading ??= import('../native.js').then((m) => {
      addon = m.loadAddon();
    });
    try {
      await loading;
    } catch (cause) {
      loading = undefined;
      throw new ComponentUnavailableError('PTY_UNAVAILABLE', `the native addon is not available to open a PTY (build it with npm run build:native): ${(cause as Error).message}`, { cause });
    }
    return opener();
  };
}
