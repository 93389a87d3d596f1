// PtyMaster: a pseudo-terminal for the console device's pty backend (created by lib/vmm and
// injected into lib/devices/console, which must not import the addon). Master non-blocking,
// close-on-exec, raw line discipline; `path` is the slave for users (screen, minicom).

import * as fs from 'node:fs';

import { loadAddon, type NativeAddon } from '../native.js';
import { HandleClosedError } from './errors.js';

export class PtyMaster {
  readonly path: string;
  private fd_: number | undefined;

  private constructor(fd: number, path: string) {
    this.fd_ = fd;
    this.path = path;
  }

  static open(addon: NativeAddon = loadAddon()): PtyMaster {
    const { fd, path } = addon.openpty();
    return new PtyMaster(fd, path);
  }

  get fd(): number {
    if (this.fd_ === undefined) throw new HandleClosedError('PtyMaster');
    return this.fd_;
  }

  get closed(): boolean {
    return this.fd_ === undefined;
  }

  close(): void {
    const fd = this.fd_;
    this.fd_ = undefined;
    if (fd !== undefined) fs.closeSync(fd);
  }
}
