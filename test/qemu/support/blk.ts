// What the virtio-blk QEMU tests share: commands run as the frontend runs them (its CPU), the
// guest's disks found by their serial (GET_ID), as virtio_blk shows them in sysfs, and the
// config text that serves those disks.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

import { FRONTEND_CPU } from './daemon-process.js';

/** A command as the frontend runs it (its CPU), failing loudly with its output. */
export function frontend(cmd: string, timeout = 120_000): string {
  try {
    return execFileSync('taskset', ['-c', FRONTEND_CPU, 'sh', '-c', cmd], { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; status?: number };
    throw new Error(`'${cmd}' failed (${e.status}): ${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** The vdX whose serial (GET_ID) is `serial`, once the driver has probed it. */
export function diskBySerial(serial: string): string | undefined {
  if (!fs.existsSync('/sys/block')) return undefined;
  for (const name of fs.readdirSync('/sys/block')) {
    if (!name.startsWith('vd')) continue;
    try {
      if (fs.readFileSync(`/sys/block/${name}/serial`, 'utf8').trim() === serial) return name;
    } catch {
      // not probed yet
    }
  }
  return undefined;
}

/** The virtioN device behind /sys/block/<disk>. */
export function virtioOf(disk: string): string {
  return fs.realpathSync(`/sys/block/${disk}/device`).split('/').pop()!;
}

/** Unbinds and binds virtio_blk on `disk`'s device (a device reset); the disk may come back under a new name. */
export function rebind(disk: string): void {
  const dev = virtioOf(disk);
  frontend(`echo ${dev} > /sys/bus/virtio/drivers/virtio_blk/unbind`);
  frontend(`echo ${dev} > /sys/bus/virtio/drivers/virtio_blk/bind`);
}

/** One block device of a bao-virtio-dm config: what the tests set besides the defaults. */
export interface BlockDeviceYaml {
  readonly id: number;
  /** As bao-sim reports it (dmInfo(id).mmio_base); undefined fails loudly. */
  readonly mmioAddr: string | number | undefined;
  readonly file: string;
  readonly serial: string;
  /** Further keys as the YAML spells them (read_only, cache, engine, queues...). */
  readonly extra?: Readonly<Record<string, string | number | boolean>>;
}

/** A config's text serving `disks` over the virtio data plane, each offering FLUSH unless `extra` says otherwise. */
export function blockConfig(...disks: readonly BlockDeviceYaml[]): string {
  const lines = ['devices:'];
  for (const d of disks) {
    if (d.mmioAddr === undefined) throw new Error(`device model ${d.id} has no MMIO window in bao-sim's info: was the module loaded with it?`);
    const keys: Record<string, string | number | boolean> = { advertise_flush: true, ...d.extra, serial: d.serial };
    lines.push(`  - id: ${d.id}`, '    type: block', `    mmio_addr: ${d.mmioAddr}`, '    data_plane: virtio', `    file_path: ${d.file}`);
    for (const [k, v] of Object.entries(keys)) lines.push(`    ${k}: ${v}`);
  }
  return [...lines, ''].join('\n');
}
