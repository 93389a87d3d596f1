// Builds a virtio-blk device from its config entry: opens and locks the backing, picks the I/O
// engine, and hands back the one close() that drains the device and releases the backing.

import { openBacking, serialFromPath } from '../devices/blk/backing.js';
import { BlkDevice } from '../devices/blk/device.js';
import { ThreadPoolEngine } from '../devices/blk/engines/thread-pool.js';
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
    // io_uring is not built yet: 'auto' is the thread pool, which works on every kernel.
    const engine = new ThreadPoolEngine({
      fd: backing.fd,
      ...(backing.dsyncFd === undefined ? {} : { dsyncFd: backing.dsyncFd }),
      ...(host === undefined || backing.isBlockDevice ? {} : { fallocate: host.fallocate }),
    });
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
        threadpool: process.env['UV_THREADPOOL_SIZE'] ?? '4',
      },
      `block device on ${backing.path} (${engine.name} engine)`,
    );
    const metrics = (): Record<string, number> => device.metrics.snapshot();
    return {
      device,
      metrics,
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
