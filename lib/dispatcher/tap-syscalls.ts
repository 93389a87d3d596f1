// The system side of a tap for lib/devices/net (and vhost-net): the addon's tap calls, fs's
// close, and a libuv poller per fd. Built here so that lib/devices never loads the addon.

import { closeSync } from 'node:fs';

import type { FdWatch, TapSyscalls } from '../devices/net/tap.js';
import { loadAddon, type NativeAddon } from '../native.js';

/** `addon` defaults to the loaded addon, loaded on first use (a config without net never needs it). */
export function tapSyscalls(given?: NativeAddon): TapSyscalls {
  let loaded = given;
  const a = (): NativeAddon => (loaded ??= loadAddon());
  return {
    tapOpen: (name, multiQueue) => a().tapOpen(name, multiQueue),
    tapSetVnetHdrSize: (fd, size) => a().tapSetVnetHdrSize(fd, size),
    tapSetOffload: (fd, flags) => a().tapSetOffload(fd, flags),
    tapSetOffloadAsync: (fd, flags, cb) => a().tapSetOffload(fd, flags, cb),
    readv: (fd, buffers) => a().readv(fd, buffers),
    writev: (fd, buffers) => a().writev(fd, buffers),
    close: (fd) => closeSync(fd),
    watch: (fd, onEvent, onError): FdWatch => {
      // One libuv poll handle per fd (libuv allows no second one), its mask changed in place.
      const addon = a();
      const c = addon.constants;
      const poller = new addon.Poller(fd, (err, events) => {
        if (err !== null) onError(err);
        else onEvent((events & c.POLL_READABLE) !== 0, (events & c.POLL_WRITABLE) !== 0);
      });
      let mask = 0;
      return {
        set: (readable, writable) => {
          const next = (readable ? c.POLL_READABLE : 0) | (writable ? c.POLL_WRITABLE : 0);
          if (next === mask) return;
          mask = next;
          if (next === 0) poller.stop();
          else poller.start(next);
        },
        close: () => poller.close(),
      };
    },
  };
}
