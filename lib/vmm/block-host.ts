// The block device's host syscalls (BlockHostOps) from the addon: a block device's size and
// physical block size, the advisory lock on the backing, fallocate. lib/devices gets them
// through injection only (BuildContext.blockHost).

import type { BlockHostOps } from '../devices/blk/backing.js';
import { loadAddon, type NativeAddon } from '../native.js';

type BlockAddon = Pick<NativeAddon, 'blockDeviceSize' | 'blockDevicePhysicalBlockSize' | 'lockFile' | 'fallocate' | 'Uring' | 'Poller' | 'constants'>;

export function createAddonBlockHost(load: () => BlockAddon): BlockHostOps {
  let addon: BlockAddon | undefined;
  const get = (): BlockAddon => (addon ??= load());
  return {
    blockDeviceSize: (fd) => get().blockDeviceSize(fd),
    blockDevicePhysicalBlockSize: (fd) => get().blockDevicePhysicalBlockSize(fd),
    lockFile: (fd, exclusive) => get().lockFile(fd, exclusive),
    fallocate: (fd, mode, offset, length, done) => get().fallocate(fd, mode, offset, length, done),
    openUring: (entries) => {
      const a = get();
      const ring = new a.Uring(entries);
      return {
        ring,
        watch: (fd, onReadable) => {
          const poller = new a.Poller(fd, () => onReadable());
          poller.start(a.constants.POLL_READABLE);
          return { close: () => poller.close() };
        },
      };
    },
  };
}

export function defaultBlockHost(): BlockHostOps {
  return createAddonBlockHost(loadAddon);
}
