// Builds a virtio-blk device from its config entry: opens and locks the backing, picks the I/O
// engine, and hands back the one close() that drains the device and releases the backing.

import { openBacking, serialFromPath } from '../devices/blk/backing.js';
import { BlkDevice } from '../devices/blk/device.js';
import type { BlockHostOps, Backing } from '../devices/blk/backing.js';
import type { BlkEngine } from '../devices/blk/engine.js';
import { IoUringEngine } from '../devices/blk/engines/io-uring.js';
import { ThreadPoolEngine } from '../devices/blk/engines/thread-pool.js';
import type { Logger } from '../virtio/logger.js';
import { currentThreadPoolSize } from './block-threadpool.js';
import type { BlockDeviceConfig, DeviceConfig } from './config/types.js';
import type { BuildContext, BuiltDevice } from './device-builder.js';

export async function buildBlockDevice(entry: DeviceConfig, context: BuildContext): Promise<BuiltDevice> {
  if (entry.type !== 'block' || entry.dataPlane === 'vhost_user') throw new TypeError(`block builder given a ${entry.type} entry over ${entry.dataPlane}`);
  const config: BlockDeviceConfig = entry;
  const log = context.log.child({ module: 'block' });
  const host = context.blockHost;
  if (host === undefined) log.warn({ path: config.filePath }, 'no native addon: the image is not locked against other processes');
  const backing = await openBacking({ path: config.filePath, readOnly: config.readOnly, ...(host === undefined ? {} : { host }) });
  try {
    const engine = chooseEngine(config, backing, host, log);
    if (config.discard && !engine.canDiscard) {
      throw Object.assign(new Error(`discard needs fallocate on a regular file (${backing.isBlockDevice ? 'this is a block device' : 'the native addon is missing'}); set discard: false`), { field: 'discard' });
    }
    const serial = config.serial ?? serialFromPath(config.filePath);
    const device = new BlkDevice({
      engine,
      capacityBytes: backing.sizeBytes,
      serial,
      readOnly: config.readOnly,
      flush: config.advertiseFlush,
      cache: config.cache,
      queues: config.queues,
      queueSize: config.queueSize,
      physicalBlockSize: backing.physicalBlockSize,
      discard: config.discard,
      log,
    });
    log.info(
      {
        path: backing.path,
        engine: engine.name,
        sizeBytes: backing.sizeBytes,
        readOnly: config.readOnly,
        queues: config.queues,
        queueSize: config.queueSize,
        cache: config.cache,
        serial,
        locked: backing.locked,
        threadpool: currentThreadPoolSize(),
      },
      `block device on ${backing.path} (${engine.name} engine)`,
    );
    if (engine.name === 'thread-pool' && currentThreadPoolSize() < Math.min(8, config.queues * config.queueSize)) {
      log.warn(
        { threadpool: currentThreadPoolSize(), queues: config.queues, queueSize: config.queueSize },
        "libuv's thread pool bounds this disk's I/O in flight; start the daemon through bin/baoctl (it sizes the pool from the config) or set UV_THREADPOOL_SIZE",
      );
    }
    const metrics = (): Record<string, number> => device.metrics.snapshot();
    const info = { engine: engine.name, backing: backing.path, cache: config.cache, mode: config.readOnly ? 'read-only' : 'read-write' };
    return {
      device,
      metrics,
      describe: () => info,
      close: async () => {
        await device.close();
        await backing.close();
        log.info({ metrics: metrics() }, 'block device closed');
      },
    };
  } catch (err) {
    await backing.close();
    throw err;
  }
}

/**
 * io_uring when the kernel offers it (engine auto or io_uring), else libuv's thread pool, which
 * works everywhere. Asking for io_uring where it cannot be set up refuses the start.
 */
function chooseEngine(config: BlockDeviceConfig, backing: Backing, host: BlockHostOps | undefined, log: Logger): BlkEngine {
  if (config.engine !== 'thread-pool') {
    try {
      if (host?.openUring === undefined) throw new Error('the native addon is not available');
      const { ring, watch } = host.openUring(Math.min(4096, config.queues * config.queueSize));
      return new IoUringEngine({ ring, watch, fd: backing.fd, canFallocate: !backing.isBlockDevice });
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      if (config.engine === 'io_uring') {
        throw Object.assign(new Error(`io_uring cannot be set up here (${why}); use engine: auto or thread-pool`), { field: 'engine', cause: err });
      }
      log.warn({ reason: why }, 'io_uring is not available; using the thread-pool engine');
    }
  }
  return new ThreadPoolEngine({
    fd: backing.fd,
    ...(backing.dsyncFd === undefined ? {} : { dsyncFd: backing.dsyncFd }),
    ...(host === undefined || backing.isBlockDevice ? {} : { fallocate: host.fallocate }),
  });
}
