// Power loss as one running machine can play it: what the guest fsync'ed through virtio-blk must
// have left the backend's page cache for the device below when fsync returns, so that the
// backend VM losing its memory could not take it. The real power cut, in which the whole
// machine dies and the host reads the disk afterwards, is test/qemu-host/blk-power-cut.test.ts.
//
// The disk's backing is a block device, /dev/loop0, over a file (the "store"). The daemon writes
// into loop0's page cache (cache: writeback, FLUSH negotiated), so a write reaches the store only
// when that cache is written back: here only by the daemon's own flush, since the test turns
// periodic and background writeback off and holds loop0 open (its last close would sync it).
// The guest writes A and fsyncs it (virtio_blk sends FLUSH), writes B without fsync, and the
// daemon is killed with SIGKILL the moment the guest's dd returns. The store, read as a file,
// then must hold A; B is the control: it must not be there yet, which shows the check can tell
// "durable" from "accepted". Then a new daemon serves the disk again (the driver unbound and
// bound: a device reset) and the guest reads A back through it.
//
// What it proves: a completed FLUSH means fdatasync on the backing ordered after every write
// completed before it (the data left the backend's page cache for the device below), and no
// fsync'ed data lives only in the killed process; and a daemon started on bao-virtio-dm's own
// YAML (no FLUSH offered) serves the disk again after the reset, write-through. What it does
// not: the machine losing its memory (the store is a file in this same guest's RAM, and the
// kernel keeps running, so nothing here is lost that a power cut would take: that is the
// host-side test's part), QEMU's disk cache modes, the host's own disk cache, and data the
// guest did not fsync (it may be lost, as on any disk with a write cache).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { serialFromPath } from '../../lib/devices/blk/backing.js';
import { dmInfo, guestSkipReason, loadBaoSim, unloadBaoSim, waitFor } from './support/bao-sim.js';
import { blockConfig, diskBySerial, frontend, rebind } from './support/blk.js';
import { cpuSkipReason, startDaemon, type DaemonProcess } from './support/daemon-process.js';

const skip = guestSkipReason ?? cpuSkipReason;
if (guestSkipReason === undefined && skip !== undefined) console.warn(`skipped: ${skip}`);

const STORE = '/tmp/blk-pl-store.img';
const LOOP = '/dev/loop0';
const CONFIG = '/tmp/node-bao-blk-pl.yaml';
/** The second daemon's config: bao-virtio-dm's own block entry, as bao-demos ships it. */
const BVD_CONFIG = '/tmp/bao-virtio-dm-blk-pl.yaml';
const A = '/tmp/blk-pl-a';
const B = '/tmp/blk-pl-b';
const A_BYTES = 4 << 20;
const B_OFFSET = 16 << 20;
const B_BYTES = 1 << 20;
const SYSCTLS = ['dirty_writeback_centisecs', 'dirty_expire_centisecs', 'dirty_background_ratio', 'dirty_ratio'] as const;

function sha(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** `length` bytes of the store at `offset`, read as a plain file (not through loop0). */
function storeBytes(offset: number, length: number): Buffer {
  const fd = fs.openSync(STORE, 'r');
  try {
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

describe.skipIf(skip !== undefined)('virtio-blk power loss: fsync’ed data is on the backing store', () => {
  let daemon: DaemonProcess | undefined;
  let holdFd: number | undefined;
  const saved = new Map<string, string>();
  let disk = '';

  beforeAll(async () => {
    for (const m of ['virtio_blk', 'loop']) execFileSync('modprobe', [m]);
    for (const s of SYSCTLS) saved.set(s, fs.readFileSync(`/proc/sys/vm/${s}`, 'utf8').trim());
    // Nothing but an explicit sync writes loop0's page cache back to the store.
    fs.writeFileSync('/proc/sys/vm/dirty_writeback_centisecs', '0');
    fs.writeFileSync('/proc/sys/vm/dirty_expire_centisecs', '360000');
    fs.writeFileSync('/proc/sys/vm/dirty_background_ratio', '90');
    fs.writeFileSync('/proc/sys/vm/dirty_ratio', '95');
    fs.rmSync(STORE, { force: true });
    fs.writeFileSync(STORE, '');
    fs.truncateSync(STORE, 32 << 20);
    execFileSync('losetup', [LOOP, STORE]);
    holdFd = fs.openSync(LOOP, 'r');
    loadBaoSim({ ndms: 1, frontends: [0] });
    fs.writeFileSync(CONFIG, blockConfig({ id: 0, mmioAddr: dmInfo(0).mmio_base, file: LOOP, serial: 'nb-pl', extra: { cache: 'writeback', engine: 'io_uring' } }));
    fs.writeFileSync(A, Buffer.from(Array.from({ length: A_BYTES }, (_, i) => (i * 13 + (i >>> 12)) & 0xff)));
    fs.writeFileSync(B, Buffer.alloc(B_BYTES, 0x5b));
    daemon = startDaemon(CONFIG);
    const d = daemon;
    await waitFor(() => diskBySerial('nb-pl') !== undefined, 90_000, 'the disk to probe').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${d.output()}`);
    });
    disk = diskBySerial('nb-pl')!;
  }, 180_000);

  afterAll(async () => {
    if (daemon !== undefined && daemon.child.exitCode === null && daemon.child.signalCode === null) {
      daemon.child.kill('SIGTERM');
      await Promise.race([daemon.exited, new Promise((r) => setTimeout(r, 20_000))]);
    }
    unloadBaoSim();
    if (holdFd !== undefined) fs.closeSync(holdFd);
    try {
      execFileSync('losetup', ['-d', LOOP]);
    } catch {
      // not set up
    }
    for (const [s, v] of saved) fs.writeFileSync(`/proc/sys/vm/${s}`, v);
    fs.rmSync(STORE, { force: true });
  }, 60_000);

  it('holds every fsync’ed write after the daemon is killed; an unsynced write is not there yet (the control)', async () => {
    // A, then fsync (FLUSH); B, direct but never synced. The daemon dies as soon as dd returns.
    frontend(`dd if=${A} of=/dev/${disk} bs=64k oflag=direct conv=fsync status=none`);
    frontend(`dd if=${B} of=/dev/${disk} bs=64k seek=${B_OFFSET / 65536} oflag=direct status=none`);
    daemon!.child.kill('SIGKILL');
    await daemon!.exited;
    const out = daemon!.output();
    expect(out).toContain('(io_uring engine)');
    expect(sha(storeBytes(0, A_BYTES))).toBe(sha(fs.readFileSync(A)));
    // B was accepted (in loop0's page cache) but not flushed: not on the store.
    expect(storeBytes(B_OFFSET, B_BYTES).equals(fs.readFileSync(B)), 'the unsynced write reached the store: writeback was not held off, the check proves nothing').toBe(false);
  }, 180_000);

  it('a new daemon, given bao-virtio-dm\u2019s own YAML for the disk, serves it again after a driver reset, and the guest reads what it fsync\u2019ed', async () => {
    // bao-demos' config-virtio-demo-vm2.yaml block entry, unchanged but for the address and the
    // path (spec \u00a75.1): quoted strings, no node-bao key; the serial is derived from the path.
    fs.writeFileSync(
      BVD_CONFIG,
      [
        'devices:',
        '  - id: 0',
        '    type: "block"',
        `    mmio_addr: ${dmInfo(0).mmio_base}`,
        '    data_plane: virtio',
        `    file_path: "${LOOP}"`,
        '    read_only: false',
        '    root_device: true',
        '    advertise_flush: false',
        '',
      ].join('\n'),
    );
    daemon = startDaemon(BVD_CONFIG);
    const d = daemon;
    await waitFor(() => d.output().includes('block device on'), 90_000, 'the new daemon to serve the disk').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${d.output()}`);
    });
    rebind(disk);
    const serial = serialFromPath(LOOP);
    await waitFor(() => diskBySerial(serial) !== undefined, 60_000, 'the disk to come back');
    disk = diskBySerial(serial)!;
    // Not offered FLUSH, the guest sees a write-through disk.
    expect(fs.readFileSync(`/sys/block/${disk}/queue/write_cache`, 'utf8').trim()).toBe('write through');
    const back = frontend(`dd if=/dev/${disk} bs=64k count=${A_BYTES / 65536} iflag=direct status=none | sha256sum`).split(' ')[0];
    expect(back).toBe(sha(fs.readFileSync(A)));
  }, 180_000);
});
