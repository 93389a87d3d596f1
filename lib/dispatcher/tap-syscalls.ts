// The system side of a tap for lib/devices/net (and vhost-net): the addon's tap calls, fs's
// close, and a libuv poller per fd. Built here so that lib/devices never loads the addon.

import { closeSync } from 'node:fs';

import type { FdWatch, TapSyscalls } from '../devices/net/tap.js';
import { loadAddon, type NativeAddon } from '../native.js';

export function tapSyscalls(addon: NativeAddon = loadAddon()): TapSyscalls {
  const c = addon.constants;
  return {
    tapOpen: (name, multiQueue) => addon.tapOpen(name, multiQueue),
    tapSetVnetHdrSize: (fd, size) => addon.tapSetVnetHdrSize(fd, size),
    tapSetOffload: (fd, flags) => addon.tapSetOffload(fd, flags),
    tapSetOffloadAsync: (fd, flags, cb) => addon.tapSetOffloadAsync(fd, flags, cb),
    readv: (fd, buffers) => addon.readv(fd, buffers),
    writev: (fd, buffers) => addon.writev(fd, buffers),
    close: (fd) => closeSync(fd),
    watch: (fd, onEvent, onError): FdWatch => {
      // One libuv poll handle per fd (libuv allows no second one), its mask changed in place.
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
