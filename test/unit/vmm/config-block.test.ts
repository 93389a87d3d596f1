// Block devices in the config: bao-virtio-dm's entry read unchanged, node-bao's additions
// validated with their field, and the builder refusing a backing that cannot be a disk.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { BlockHostOps } from '../../../lib/devices/blk/backing.js';
import { BlkDevice } from '../../../lib/devices/blk/device.js';
import { buildBlockDevice } from '../../../lib/vmm/block-builder.js';
import { parseConfigText } from '../../../lib/vmm/config/index.js';
import type { BlockDeviceConfig } from '../../../lib/vmm/config/types.js';
import { ConfigInvalidError } from '../../../lib/vmm/errors.js';
import { silentLogger } from '../../../lib/virtio/logger.js';

function issuesOf(text: string): { field: string; message: string }[] {
  try {
    parseConfigText(text, 'test.yaml');
  } catch (err) {
    if (err instanceof ConfigInvalidError) return err.issues.map((i) => ({ field: i.field, message: i.message }));
    throw err;
  }
  throw new Error('expected the config to be refused');
}

const block = (extra: string): string => `devices:
  - id: 2
    type: "block"
    mmio_addr: 0xa003c00
    data_plane: virtio
    file_path: "/images/disk.img"
${extra
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => `    ${l.trim()}`)
  .join('\n')}
`;

describe('block devices in the config', () => {
  it("reads bao-virtio-dm's block entry unchanged, with node-bao's defaults", () => {
    const { config, warnings } = parseConfigText(block('read_only: false\nroot_device: true\nadvertise_flush: false'), 'a.yaml');
    expect(warnings).toEqual([]);
    expect(config.devices).toEqual([
      {
        index: 0,
        id: 2,
        type: 'block',
        mmioAddr: 0xa003c00n,
        dataPlane: 'virtio',
        createDm: undefined,
        filePath: '/images/disk.img',
        readOnly: false,
        rootDevice: true,
        advertiseFlush: false,
        serial: undefined,
        queues: 1,
        queueSize: 256,
        discard: false,
        engine: 'auto',
        cache: 'writeback',
      },
    ]);
  });

  it('reads the additions: serial, queues, queue_size, discard, engine, cache', () => {
    const { config } = parseConfigText(block('serial: "disk0"\nqueues: 4\nqueue_size: 128\ndiscard: true\nengine: thread-pool\ncache: writethrough'), 'a.yaml');
    expect(config.devices[0]).toMatchObject({ serial: 'disk0', queues: 4, queueSize: 128, discard: true, engine: 'thread-pool', cache: 'writethrough' });
  });

  it('refuses each bad value naming its field', () => {
    expect(issuesOf(block('serial: "this serial is much too long"\nqueues: 0\nqueue_size: 100\nengine: turbo\ncache: none'))).toEqual([
      { field: 'devices[0].serial', message: 'must be 1 to 20 bytes (the guest reads at most 20), got 28' },
      { field: 'devices[0].queues', message: 'must be between 1 and 64, got 0' },
      { field: 'devices[0].queue_size', message: 'must be a power of two between 2 and 32768, got 100' },
      { field: 'devices[0].engine', message: "unknown I/O engine 'turbo'; expected one of auto, io_uring, thread-pool" },
      { field: 'devices[0].cache', message: "unknown cache mode 'none'; expected one of writeback, writethrough, unsafe" },
    ]);
    expect(issuesOf(block('read_only: true\ndiscard: true'))).toEqual([
      { field: 'devices[0].discard', message: 'a read-only disk cannot discard; remove discard or set read_only: false' },
    ]);
    expect(issuesOf('devices:\n  - {id: 0, type: block, mmio_addr: 0x1000}\n')).toEqual([
      { field: 'devices[0].file_path', message: 'required for a block device: the path of its disk image or block device' },
    ]);
  });

  it('refuses two writable devices on one image, but lets read-only ones share it', () => {
    const two = (ro: string) => `devices:
  - {id: 0, type: block, mmio_addr: 0x1000, file_path: /d.img, read_only: ${ro}}
  - {id: 1, type: block, mmio_addr: 0x2000, file_path: /d.img, read_only: ${ro}}
`;
    expect(issuesOf(two('false'))).toEqual([
      { field: 'devices[1].file_path', message: "'/d.img' is already the disk of devices[0]; two devices may share an image only if both are read_only" },
    ]);
    expect(parseConfigText(two('true'), 'a.yaml').config.devices).toHaveLength(2);
  });
});

describe('building a block device', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-blkcfg-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const entry = (filePath: string, extra: Partial<BlockDeviceConfig> = {}): BlockDeviceConfig => ({
    index: 0,
    id: 2,
    type: 'block',
    mmioAddr: 0xa003c00n,
    dataPlane: 'virtio',
    createDm: undefined,
    filePath,
    readOnly: false,
    rootDevice: false,
    advertiseFlush: true,
    serial: undefined,
    queues: 2,
    queueSize: 64,
    discard: false,
    engine: 'auto',
    cache: 'writeback',
    ...extra,
  });

  function host(lockError?: string): BlockHostOps & { locks: [number, boolean][] } {
    const locks: [number, boolean][] = [];
    return {
      locks,
      blockDeviceSize: () => 0n,
      blockDevicePhysicalBlockSize: () => 512,
      lockFile: (fd, exclusive) => {
        if (lockError !== undefined) throw Object.assign(new Error(lockError), { code: lockError });
        locks.push([fd, exclusive]);
      },
      fallocate: (_fd, _mode, _offset, _length, done) => done(null),
    };
  }

  it('opens the image, locks it exclusively, sizes the disk from it and derives a stable serial', async () => {
    const image = path.join(dir, 'disk.img');
    fs.writeFileSync(image, Buffer.alloc(1 << 20));
    const h = host();
    const built = await buildBlockDevice(entry(image), { log: silentLogger, blockHost: h });
    const device = built.device as BlkDevice;
    expect(device.capacitySectors).toBe(2048);
    expect(device.queueMaxSizes).toEqual([64, 64]);
    expect(h.locks.map(([, exclusive]) => exclusive)).toEqual([true]);
    expect(built.metrics?.()).toMatchObject({ reads: 0, engineIoUring: 0 });
    // What `baoctl status` shows of it: no addon ring here, so the thread pool.
    expect(built.describe?.()).toEqual({ engine: 'thread-pool', backing: image, cache: 'writeback', mode: 'read-write' });
    await built.close();
    const again = await buildBlockDevice(entry(image, { readOnly: true }), { log: silentLogger, blockHost: h });
    expect(h.locks[1]![1]).toBe(false); // read-only: a shared lock
    await again.close();
  });

  const refusals: [string, (image: string) => void, RegExp, string][] = [
    ['is missing', () => {}, /does not exist/, 'BLK_BACKING_MISSING'],
    ['is a directory', (image) => fs.mkdirSync(image), /is a directory/, 'BLK_BACKING_NOT_A_FILE'],
    ['is smaller than a sector', (image) => fs.writeFileSync(image, Buffer.alloc(100)), /less than one 512-byte sector/, 'BLK_BACKING_TOO_SMALL'],
  ];
  for (const [name, prepare, message, code] of refusals) {
    it(`refuses an image that ${name}, naming file_path and the path`, async () => {
      const image = path.join(dir, 'disk.img');
      prepare(image);
      const err = (await buildBlockDevice(entry(image), { log: silentLogger, blockHost: host() }).catch((e: unknown) => e)) as Error & { field: string; code: string };
      expect(err.code).toBe(code);
      expect(err.field).toBe('file_path');
      expect(err.message).toMatch(message);
      expect(err.message).toContain(image);
    });
  }

  it('refuses an image another process holds locked', async () => {
    const image = path.join(dir, 'disk.img');
    fs.writeFileSync(image, Buffer.alloc(4096));
    const err = (await buildBlockDevice(entry(image), { log: silentLogger, blockHost: host('EAGAIN') }).catch((e: unknown) => e)) as Error & { field: string; code: string };
    expect(err.code).toBe('BLK_BACKING_LOCKED');
    expect(err.field).toBe('file_path');
    expect(err.message).toContain('in use by another process');
  });

  it('refuses discard without the addon, naming discard', async () => {
    const image = path.join(dir, 'disk.img');
    fs.writeFileSync(image, Buffer.alloc(4096));
    const err = (await buildBlockDevice(entry(image, { discard: true }), { log: silentLogger }).catch((e: unknown) => e)) as Error & { field: string };
    expect(err.field).toBe('discard');
  });
});
