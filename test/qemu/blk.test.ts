// virtio-blk end to end in the Bao-equivalent guest: `baoctl run` serves two disks on bao-sim
// device models, and the guest's own, unmodified virtio_blk driver is their frontend. What a
// user of a Bao board does with a root disk, checked here: a filesystem made, filled, synced,
// unmounted and found intact again; a read-only disk the guest sees read-only; several queues;
// discard freeing space in the image; a driver unbind/bind under load (a device reset with
// requests in flight) leaving the filesystem clean; `baoctl status` naming each disk's engine.
// The writable disk runs on io_uring, the read-only one on the thread pool, so both engines
// serve the guest's own driver.

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { dmInfo, guestSkipReason, loadBaoSim, unloadBaoSim, waitFor } from './support/bao-sim.js';
import { blockConfig, diskBySerial, frontend, virtioOf } from './support/blk.js';
import { cpuSkipReason, FRONTEND_CPU, startDaemon, stopDaemon, type DaemonProcess } from './support/daemon-process.js';

if (guestSkipReason === undefined && cpuSkipReason !== undefined) console.warn(`skipped: ${cpuSkipReason}`);

const RW_DM = 0;
const RO_DM = 1;
const RW_IMAGE = '/tmp/blk-rw.img';
const RO_IMAGE = '/tmp/blk-ro.img';
const RO_CONTENT = '/tmp/blk-ro-content';
const CONFIG = '/tmp/node-bao-blk.yaml';
const STATUS_SOCKET = '/tmp/node-bao-blk-status.sock';
const MNT = '/mnt/blk';
const MKE2FS = '/usr/sbin/mke2fs';
const E2FSCK = '/usr/sbin/e2fsck';

function allocatedBytes(file: string): number {
  return fs.statSync(file).blocks * 512;
}

describe.skipIf(guestSkipReason !== undefined || cpuSkipReason !== undefined)('baoctl run serving virtio-blk to the guest’s own virtio_blk', () => {
  let daemon: DaemonProcess | undefined;
  let rw = '';
  let ro = '';

  beforeAll(async () => {
    for (const m of ['virtio_blk', 'crc32c_generic', 'ext4']) execFileSync('modprobe', [m]);
    loadBaoSim({ ndms: 2, frontends: [RW_DM, RO_DM] });
    fs.rmSync(RW_IMAGE, { force: true });
    fs.rmSync(RO_IMAGE, { force: true });
    fs.writeFileSync(RW_IMAGE, '');
    fs.truncateSync(RW_IMAGE, 64 << 20);
    // The read-only disk: an ext4 image made from a directory on the backend side.
    fs.rmSync(RO_CONTENT, { recursive: true, force: true });
    fs.mkdirSync(RO_CONTENT);
    fs.writeFileSync(`${RO_CONTENT}/hello.txt`, 'read-only hello\n');
    execFileSync(MKE2FS, ['-q', '-F', '-t', 'ext4', '-d', RO_CONTENT, RO_IMAGE, '8M'], { stdio: 'pipe' });
    fs.writeFileSync(
      CONFIG,
      blockConfig(
        { id: RW_DM, mmioAddr: dmInfo(RW_DM).mmio_base, file: RW_IMAGE, serial: 'nb-rw', extra: { read_only: false, root_device: true, queues: 2, discard: true, engine: 'io_uring' } },
        { id: RO_DM, mmioAddr: dmInfo(RO_DM).mmio_base, file: RO_IMAGE, serial: 'nb-ro', extra: { read_only: true, root_device: false, advertise_flush: false, engine: 'thread-pool' } },
      ),
    );
    fs.rmSync(STATUS_SOCKET, { force: true });
    daemon = startDaemon(CONFIG, ['--status-socket', STATUS_SOCKET]);
    const d = daemon;
    await waitFor(() => diskBySerial('nb-rw') !== undefined && diskBySerial('nb-ro') !== undefined, 180_000, 'both disks to probe (node starts slowly under TCG)').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${d.output()}`);
    });
    rw = diskBySerial('nb-rw')!;
    ro = diskBySerial('nb-ro')!;
    fs.mkdirSync(MNT, { recursive: true });
  }, 240_000);

  afterAll(async () => {
    try {
      execFileSync('umount', [MNT], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
    const code = await stopDaemon(daemon).catch(() => -1);
    if (code !== 0) console.log(daemon?.output());
    unloadBaoSim();
  }, 60_000);

  it('shows the configured capacity, serial and queues to the guest', () => {
    expect(Number(fs.readFileSync(`/sys/block/${rw}/size`, 'utf8'))).toBe((64 << 20) / 512);
    // virtio_blk makes one hardware queue per virtqueue (at most one per CPU): 2 here.
    expect(fs.readdirSync(`/sys/block/${rw}/mq`).sort()).toEqual(['0', '1']);
    expect(fs.readFileSync(`/sys/block/${rw}/ro`, 'utf8').trim()).toBe('0');
    expect(Number(fs.readFileSync(`/sys/block/${rw}/queue/discard_max_bytes`, 'utf8'))).toBeGreaterThan(0);
  });

  it('keeps a filesystem: mkfs.ext4, mount, write, sync, unmount, remount, same checksums', () => {
    frontend(`${MKE2FS} -q -F -t ext4 /dev/${rw}`);
    frontend(`mount -t ext4 /dev/${rw} ${MNT}`);
    frontend(`for i in 1 2 3 4; do dd if=/dev/urandom of=${MNT}/f$i bs=64k count=$((i * 8)) status=none; done; sync`);
    const before = frontend(`cd ${MNT} && sha256sum f1 f2 f3 f4`);
    frontend(`umount ${MNT}`);
    // Drop the guest's cache of the disk: the remount reads what the device stored.
    frontend('echo 3 > /proc/sys/vm/drop_caches');
    frontend(`${E2FSCK} -f -n /dev/${rw}`);
    frontend(`mount -t ext4 /dev/${rw} ${MNT}`);
    expect(frontend(`cd ${MNT} && sha256sum f1 f2 f3 f4`)).toBe(before);
  });

  it('frees blocks of the image when the guest trims', () => {
    frontend(`dd if=/dev/urandom of=${MNT}/big bs=1M count=16 status=none; sync`);
    const full = allocatedBytes(RW_IMAGE);
    frontend(`rm ${MNT}/big; sync; fstrim ${MNT}`);
    const trimmed = allocatedBytes(RW_IMAGE);
    expect(full - trimmed).toBeGreaterThan(8 << 20);
    frontend(`umount ${MNT}`);
  });

  it('serves a read-only disk the guest sees read-only', () => {
    expect(fs.readFileSync(`/sys/block/${ro}/ro`, 'utf8').trim()).toBe('1');
    expect(() => frontend(`dd if=/dev/zero of=/dev/${ro} bs=512 count=1 oflag=direct status=none`, 30_000)).toThrow();
    fs.mkdirSync('/mnt/ro', { recursive: true });
    frontend(`mount -t ext4 -o ro,noload /dev/${ro} /mnt/ro`);
    expect(frontend('cat /mnt/ro/hello.txt')).toBe('read-only hello\n');
    frontend('umount /mnt/ro');
  });

  it('survives an unbind and bind of virtio_blk under load, the filesystem intact', async () => {
    const before = (() => {
      frontend(`mount -t ext4 /dev/${rw} ${MNT}`);
      const sums = frontend(`cd ${MNT} && sha256sum f1 f2 f3 f4`);
      frontend(`umount ${MNT}`);
      return sums;
    })();
    const dev = virtioOf(rw);
    // Raw reads of the whole disk keep requests in flight while the driver goes away.
    const load = spawn('taskset', ['-c', FRONTEND_CPU, 'sh', '-c', `while true; do dd if=/dev/${rw} of=/dev/null bs=256k iflag=direct status=none || exit 0; done`], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 1500));
    frontend(`echo ${dev} > /sys/bus/virtio/drivers/virtio_blk/unbind`);
    load.kill('SIGTERM');
    frontend(`echo ${dev} > /sys/bus/virtio/drivers/virtio_blk/bind`);
    await waitFor(() => diskBySerial('nb-rw') !== undefined, 30_000, 'the disk to come back');
    rw = diskBySerial('nb-rw')!;
    frontend(`${E2FSCK} -f -n /dev/${rw}`);
    frontend(`mount -t ext4 /dev/${rw} ${MNT}`);
    expect(frontend(`cd ${MNT} && sha256sum f1 f2 f3 f4`)).toBe(before);
    frontend(`umount ${MNT}`);
  }, 120_000);

  it('shows each disk\u2019s I/O engine, backing and mode in `baoctl status`', () => {
    const out = execFileSync(process.execPath, ['bin/baoctl', 'status', '--socket', STATUS_SOCKET], { encoding: 'utf8', timeout: 60_000 });
    expect(out).toContain(`block ${RW_DM}: engine=io_uring backing=${RW_IMAGE} cache=writeback mode=read-write`);
    expect(out).toContain(`block ${RO_DM}: engine=thread-pool backing=${RO_IMAGE}`);
    expect(out).toMatch(new RegExp(`block ${RO_DM}: .*mode=read-only`));
  }, 60_000);

  it('stops cleanly, draining the disks (SIGTERM, exit 0), having served each with its engine', async () => {
    expect(await stopDaemon(daemon)).toBe(0);
    const out = daemon?.output() ?? '';
    expect(out).toContain('block device closed');
    expect(out).toContain('(io_uring engine)');
    expect(out).toContain('(thread-pool engine)');
  }, 60_000);
});
