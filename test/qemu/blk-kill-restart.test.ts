// A daemon killed with SIGKILL under load and restarted, on a disk holding an ext4 filesystem
// the guest's own virtio_blk is writing to: the guest writes file after file, each fsync'ed
// (dd conv=fsync: the file's data and the journal commit that names it, then FLUSH), and notes
// a file's checksum, on its tmpfs, only once its fsync has returned. The daemon is killed in
// the middle of that, with the writer's requests in flight, and a new one is started on the
// same config and state directory; the writer must carry on through it without an I/O error.
// Then the frontend resets the device (unmount, virtio_blk unbind and bind, as a rebooted
// frontend VM would), the new daemon serves the disk again, e2fsck finds the filesystem clean,
// and every file whose fsync returned, before the kill or after it, reads back intact.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { dmInfo, guestSkipReason, loadBaoSim, unloadBaoSim, waitFor } from './support/bao-sim.js';
import { blockConfig, diskBySerial, frontend, rebind } from './support/blk.js';
import { cpuSkipReason, FRONTEND_CPU, startDaemon, stopDaemon, type DaemonProcess } from './support/daemon-process.js';

const skip = guestSkipReason ?? cpuSkipReason;
if (guestSkipReason === undefined && skip !== undefined) console.warn(`skipped: ${skip}`);

const IMAGE = '/tmp/blk-kill.img';
const CONFIG = '/tmp/node-bao-blk-kill.yaml';
const SERIAL = 'nb-kill';
const MNT = '/mnt/blk-kill';
/** The writer's record of fsync'ed files, "name sha256" per line, on the guest's tmpfs (not the disk). */
const LOG = '/tmp/blk-kill-fsynced';
const STOP = '/tmp/blk-kill-stop';
const MKE2FS = '/usr/sbin/mke2fs';
const E2FSCK = '/usr/sbin/e2fsck';

/** File after file, 64 to 512 KiB each, fsync'ed, recorded once the fsync returned; stops at STOP. */
const WRITER = `
i=0
while [ ! -e ${STOP} ]; do
  i=$((i + 1))
  dd if=/dev/urandom of=/tmp/blk-kill-src bs=64k count=$((1 + i % 8)) status=none || exit 2
  sum=$(sha256sum /tmp/blk-kill-src | cut -d' ' -f1)
  dd if=/tmp/blk-kill-src of=${MNT}/f$i bs=64k conv=fsync status=none || exit 3
  echo "f$i $sum" >> ${LOG}
done
`;

function fsynced(): { name: string; sum: string }[] {
  if (!fs.existsSync(LOG)) return [];
  return fs
    .readFileSync(LOG, 'utf8')
    .split('\n')
    .filter((l) => l.includes(' '))
    .map((l) => {
      const [name = '', sum = ''] = l.split(' ');
      return { name, sum };
    });
}

describe.skipIf(skip !== undefined)('virtio-blk: a daemon killed with SIGKILL while the guest writes and fsyncs', () => {
  let daemon: DaemonProcess | undefined;
  let writer: ChildProcess | undefined;
  let disk = '';

  beforeAll(async () => {
    for (const m of ['virtio_blk', 'crc32c_generic', 'ext4']) execFileSync('modprobe', [m]);
    loadBaoSim({ ndms: 1, frontends: [0] });
    for (const f of [IMAGE, LOG, STOP]) fs.rmSync(f, { force: true });
    fs.writeFileSync(IMAGE, '');
    fs.truncateSync(IMAGE, 64 << 20);
    fs.writeFileSync(CONFIG, blockConfig({ id: 0, mmioAddr: dmInfo(0).mmio_base, file: IMAGE, serial: SERIAL }));
    // No --state-dir: both daemons keep their state in this file's own directory (state-dir.ts).
    daemon = startDaemon(CONFIG, ['--status-socket', 'none']);
    const d = daemon;
    await waitFor(() => diskBySerial(SERIAL) !== undefined, 180_000, 'the disk to probe (node starts slowly under TCG)').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${d.output()}`);
    });
    disk = diskBySerial(SERIAL)!;
    frontend(`${MKE2FS} -q -F -t ext4 /dev/${disk}`);
    fs.mkdirSync(MNT, { recursive: true });
    frontend(`mount -t ext4 /dev/${disk} ${MNT}`);
  }, 240_000);

  afterAll(async () => {
    fs.writeFileSync(STOP, '');
    if (writer !== undefined && writer.exitCode === null && writer.signalCode === null) writer.kill('SIGKILL');
    try {
      execFileSync('umount', [MNT], { stdio: 'ignore', timeout: 60_000 });
    } catch {
      // not mounted
    }
    const code = await stopDaemon(daemon).catch(() => -1);
    if (code !== 0) console.log(daemon?.output());
    unloadBaoSim();
  }, 120_000);

  it('is restarted, the writer carries on, and after a frontend reset every fsync\u2019ed file is intact', async () => {
    writer = spawn('taskset', ['-c', FRONTEND_CPU, 'sh', '-c', WRITER], { stdio: ['ignore', 'ignore', 'pipe'] });
    let writerErr = '';
    writer.stderr?.on('data', (d: Buffer) => (writerErr += d.toString()));
    const writerExit = new Promise<number | null>((resolve) => writer!.on('exit', (code) => resolve(code)));
    await waitFor(() => fsynced().length >= 4, 120_000, 'the writer to fsync its first files');

    // Anywhere in a file's write or fsync: the writer never pauses.
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 800)));
    const first = daemon!;
    first.child.kill('SIGKILL');
    await first.exited;
    const atKill = fsynced().length;

    daemon = startDaemon(CONFIG, ['--status-socket', 'none']);
    const second = daemon;
    await waitFor(() => fsynced().length >= atKill + 4, 240_000, 'the writer to fsync more files through the restarted daemon').catch((err: unknown) => {
      throw new Error(`${String(err)} (${fsynced().length} fsync'ed, ${atKill} at the kill; writer: ${writerErr})\nkilled daemon:\n${first.output().slice(-3000)}\nrestarted daemon:\n${second.output()}`);
    });
    fs.writeFileSync(STOP, '');
    const code = await Promise.race([writerExit, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 120_000))]);
    // 0: no write and no fsync failed, across the kill.
    expect(code, writerErr).toBe(0);
    const files = fsynced();
    const resumed = second.output().includes('device resumed from saved state');
    console.log(`blk-kill-restart: ${files.length} files fsync'ed, ${atKill} of them before the kill; the restarted daemon ${resumed ? 'resumed the device (its driver kept it)' : 'started it from reset'}`);

    // The frontend resets the device; the restarted daemon serves it from reset.
    frontend(`umount ${MNT}`);
    rebind(disk);
    await waitFor(() => diskBySerial(SERIAL) !== undefined, 60_000, 'the disk to come back after the reset');
    disk = diskBySerial(SERIAL)!;
    frontend('echo 3 > /proc/sys/vm/drop_caches');
    frontend(`${E2FSCK} -f -n /dev/${disk}`);
    frontend(`mount -t ext4 -o ro /dev/${disk} ${MNT}`);
    const sums = frontend(`cd ${MNT} && sha256sum ${files.map((f) => f.name).join(' ')}`)
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/).reverse().join(' '));
    expect(sums).toEqual(files.map((f) => `${f.name} ${f.sum}`));
    frontend(`umount ${MNT}`);
  }, 600_000);

  it('stops cleanly afterwards (SIGTERM, exit 0)', async () => {
    expect(await stopDaemon(daemon), daemon?.output()).toBe(0);
  }, 60_000);
});
