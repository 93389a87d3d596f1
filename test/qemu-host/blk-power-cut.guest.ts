// The guest half of blk-power-cut.test.ts, run in the Bao-equivalent guest by vite-node (the
// host's test boots that guest with qemu/run.sh --disk --power-cut). node-bao serves a disk over
// bao-sim whose backing is the disk QEMU provides (the host's image file, QEMU's cache off), the
// guest's own virtio_blk writes SYNCED and fsyncs it (FLUSH), writes UNSYNCED without a sync,
// then this prints CUT_MARKER and waits: the host kills QEMU the moment it sees the marker.
// Anything that fails before the marker exits non-zero with the daemon's log, and the host's
// test fails on the guest's status.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

import { dmInfo, loadBaoSim, waitFor } from '../qemu/support/bao-sim.js';
import { blockConfig, diskBySerial, frontend } from '../qemu/support/blk.js';
import { startDaemon, type DaemonProcess } from '../qemu/support/daemon-process.js';
import { CUT_MARKER, FRONTEND_SERIAL, pattern, STORE_BYTES, STORE_SERIAL, SYNCED, UNSYNCED } from './blk-power-cut-plan.js';

const CONFIG = '/tmp/node-bao-power-cut.yaml';
const SYNCED_FILE = '/tmp/power-cut-synced';
const UNSYNCED_FILE = '/tmp/power-cut-unsynced';
const BS = 64 << 10;
/** How long to wait for the cut before giving up (the host kills QEMU within milliseconds). */
const CUT_WAIT_MS = 120_000;

function say(what: string): void {
  process.stdout.write(`blk-power-cut: ${what}\n`);
}

async function main(): Promise<void> {
  for (const m of ['virtio_pci', 'virtio_blk']) execFileSync('modprobe', [m]);
  await waitFor(() => diskBySerial(STORE_SERIAL) !== undefined, 30_000, `QEMU's disk (serial ${STORE_SERIAL}) to probe`);
  const store = diskBySerial(STORE_SERIAL)!;
  const storeBytes = Number(fs.readFileSync(`/sys/block/${store}/size`, 'utf8')) * 512;
  if (storeBytes !== STORE_BYTES) throw new Error(`/dev/${store} has ${storeBytes} bytes, not the ${STORE_BYTES} of the host's image`);
  say(`backing store /dev/${store} (QEMU's disk, ${storeBytes >> 20} MiB, guest-side cache: ${fs.readFileSync(`/sys/block/${store}/queue/write_cache`, 'utf8').trim()})`);

  // Nothing but an explicit flush writes the store's page cache back: the unsynced control then
  // stays in this guest's memory, and the cut takes it (the check can tell durable from accepted).
  fs.writeFileSync('/proc/sys/vm/dirty_writeback_centisecs', '0');
  fs.writeFileSync('/proc/sys/vm/dirty_expire_centisecs', '360000');
  fs.writeFileSync('/proc/sys/vm/dirty_background_ratio', '90');
  fs.writeFileSync('/proc/sys/vm/dirty_ratio', '95');

  loadBaoSim({ ndms: 1, frontends: [0] });
  // A root disk as a user configures one: FLUSH offered, the default cache mode (writeback) and
  // engine (auto).
  fs.writeFileSync(CONFIG, blockConfig({ id: 0, mmioAddr: dmInfo(0).mmio_base, file: `/dev/${store}`, serial: FRONTEND_SERIAL }));
  const daemon: DaemonProcess = startDaemon(CONFIG, ['--status-socket', 'none', '--state-dir', 'none']);
  try {
    await waitFor(() => diskBySerial(FRONTEND_SERIAL) !== undefined, 180_000, 'node-bao\u2019s disk to probe (node starts slowly under TCG)');
    const disk = diskBySerial(FRONTEND_SERIAL)!;
    const engine = /\((io_uring|thread-pool) engine\)/.exec(daemon.output())?.[1] ?? 'unknown';
    say(`node-bao serves /dev/${disk} over /dev/${store} (${engine} engine; frontend cache: ${fs.readFileSync(`/sys/block/${disk}/queue/write_cache`, 'utf8').trim()})`);

    fs.writeFileSync(SYNCED_FILE, pattern(SYNCED));
    fs.writeFileSync(UNSYNCED_FILE, pattern(UNSYNCED));
    // conv=fsync: dd fsyncs the disk before it exits, which virtio_blk sends as FLUSH.
    frontend(`dd if=${SYNCED_FILE} of=/dev/${disk} bs=${BS} seek=${SYNCED.offset / BS} oflag=direct conv=fsync status=none`);
    frontend(`dd if=${UNSYNCED_FILE} of=/dev/${disk} bs=${BS} seek=${UNSYNCED.offset / BS} oflag=direct status=none`);
  } catch (err) {
    say(`failed before the cut: ${String(err)}\n${daemon.output().slice(-4000)}`);
    daemon.child.kill('SIGKILL');
    process.exit(1);
  }
  process.stdout.write(`${CUT_MARKER}\n`);
  // The daemon keeps running (and its store open) until the power goes.
  setTimeout(() => {
    say(`the power was not cut within ${CUT_WAIT_MS / 1000} s of the marker`);
    process.exit(1);
  }, CUT_WAIT_MS);
}

main().catch((err: unknown) => {
  say(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
