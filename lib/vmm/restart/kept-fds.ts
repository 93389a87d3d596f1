// KeptFds: the kernel objects of the device models (DM fds, irqfds, queue ioeventfds) that
// outlive one daemon process. Going in, it holds what the previous process left (systemd's fd
// store through LISTEN_FDS, or a hand-over over a unix socket), checked before anything uses it:
// a name that is not ours, an fd of the wrong kind or of another DM, a duplicate, is closed and
// ignored with a warning. The device models take theirs by DM id; whatever is left when every
// device is open (a DM no longer in the config, a queue the device does not have) is closed with
// a warning. Going out, it publishes each new kernel object to the fd store as soon as it exists
// and keeps the list of serving device models a hand-over collects from.
//
// Why keeping them matters (bao-abi.md §3.7, §3.8, §3.5): an ioeventfd stays registered until
// the DM is destroyed, so only the very eventfd a previous process registered ever gets the
// kicks; an irqfd lives as long as its eventfd is open; on the out-of-tree and v1 drivers the DM
// itself is freed when its last fd closes.

import * as fs from 'node:fs';

import type { Logger } from '../../virtio/logger.js';
import { causeMessage } from '../errors.js';
import { formatFdName, parseFdName, type KeptFdRole } from './fd-names.js';

export type KeptFdSource = 'systemd' | 'handover';

export interface NamedFd {
  readonly name: string;
  readonly fd: number;
}

/** What a device model that is serving hands over: its fds by role, and how to let go of the DM. */
export interface KeptDeviceModel {
  readonly dm: number;
  /** Current kernel objects (the DM fd, the irqfd, each registered queue kick), named. */
  fds(): NamedFd[];
  /**
   * Stops taking requests and kicks, lets in-flight accesses complete, and leaves the device as
   * it is (no reset, nothing deassigned, fds left open): the next process takes over from here.
   */
  detach(): Promise<void>;
}

export interface DmInfoClaim {
  readonly shmemAddr: bigint;
  readonly shmemSize: bigint;
  readonly irq: number;
}

interface Entry {
  readonly fd: number;
  readonly name: string;
  readonly role: KeptFdRole;
  readonly source: KeptFdSource;
}

export interface KeptFdsOptions {
  readonly log: Logger;
  /** Stores one fd in systemd's fd store (FDSTORE=1); absent outside systemd. */
  readonly store?: (name: string, fd: number) => void;
  /** What /proc/self/fd/<fd> links to (tests may stand in); default fs.readlinkSync. */
  readonly describeFd?: (fd: number) => string;
  readonly close?: (fd: number) => void;
}

const EVENTFD_LINK = 'anon_inode:[eventfd]';

export class KeptFds {
  private readonly log: Logger;
  private readonly pool = new Map<string, Entry>();
  /** fds that came from systemd's store: they stay there, never stored again. */
  private readonly fromStore = new Set<number>();
  private readonly storeFd: ((name: string, fd: number) => void) | undefined;
  private readonly describeFd: (fd: number) => string;
  private readonly closeFd: (fd: number) => void;
  private readonly serving = new Set<KeptDeviceModel>();
  /** Counts for the log line and tests. */
  readonly counts = { received: 0, rejected: 0, taken: 0, unused: 0, stored: 0 };

  constructor(options: KeptFdsOptions) {
    this.log = options.log;
    this.storeFd = options.store;
    this.describeFd = options.describeFd ?? ((fd) => fs.readlinkSync(`/proc/self/fd/${fd}`));
    this.closeFd = options.close ?? ((fd) => fs.closeSync(fd));
  }

  /** Whether new kernel objects are published to systemd's fd store. */
  get storing(): boolean {
    return this.storeFd !== undefined;
  }

  /** Takes in fds a previous process left; each is checked, and closed if it is not what its name says. */
  receive(fds: readonly NamedFd[], source: KeptFdSource): void {
    for (const { fd, name } of fds) {
      this.counts.received += 1;
      const why = this.check(fd, name);
      if (why !== undefined) {
        this.reject(fd, name, why, source);
        continue;
      }
      if (source === 'systemd') this.fromStore.add(fd);
      this.pool.set(name, { fd, name, role: parseFdName(name)!, source });
    }
  }

  private check(fd: number, name: string): string | undefined {
    const role = parseFdName(name);
    if (role === undefined) return 'not a name node-bao gives its fds';
    if (this.pool.has(name)) return 'a second fd under the same name';
    let link: string;
    try {
      link = this.describeFd(fd);
    } catch (err) {
      return `not an open descriptor (${causeMessage(err)})`;
    }
    if (role.kind === 'dm') {
      // Primary and revB DM fds are anonymous files named after their DM (bao-abi.md §2.1); a
      // revA DM fd is its own node, /dev/bao-dm<N>. The driver checks further (GET_INFO) when adopting it.
      const anon = /^anon_inode:bao-dm(\d+)$/.exec(link);
      const node = /\/bao-dm(\d+)$/.exec(link);
      const id = anon?.[1] ?? node?.[1];
      if (id === undefined) return `not a Bao device-model fd (it is ${link})`;
      if (Number(id) !== role.dm) return `the fd is device model ${id}'s, the name says ${role.dm}`;
      return undefined;
    }
    if (link !== EVENTFD_LINK) return `not an eventfd (it is ${link})`;
    return undefined;
  }

  private reject(fd: number, name: string, why: string, source: KeptFdSource): void {
    this.counts.rejected += 1;
    this.log.warn({ fd, name, source }, `kept fd '${name}' from ${source === 'systemd' ? "systemd's fd store" : 'the previous daemon'} ignored and closed: ${why}`);
    this.safeClose(fd);
  }

  private safeClose(fd: number): void {
    try {
      this.closeFd(fd);
    } catch {
      // already closed: nothing held
    }
  }

  private take(name: string): Entry | undefined {
    const e = this.pool.get(name);
    if (e === undefined) return undefined;
    this.pool.delete(name);
    this.counts.taken += 1;
    return e;
  }

  /** The kept DM fd of device model `dm` and the info its name carries. */
  takeDm(dm: number): { fd: number; info: DmInfoClaim } | undefined {
    for (const e of this.pool.values()) {
      if (e.role.kind === 'dm' && e.role.dm === dm) {
        this.take(e.name);
        return { fd: e.fd, info: { shmemAddr: e.role.shmemAddr, shmemSize: e.role.shmemSize, irq: e.role.irq } };
      }
    }
    return undefined;
  }

  takeIrq(dm: number): number | undefined {
    return this.take(formatFdName({ kind: 'irq', dm }))?.fd;
  }

  /** Every kept queue kick of `dm` below `queueCount` (the others are stale: closed, with a warning). */
  takeKicks(dm: number, queueCount: number): Map<number, number> {
    const kicks = new Map<number, number>();
    for (const e of [...this.pool.values()]) {
      if (e.role.kind !== 'kick' || e.role.dm !== dm) continue;
      this.take(e.name);
      if (e.role.queue >= queueCount) {
        this.reject(e.fd, e.name, `device model ${dm} has ${queueCount} queue(s) now`, e.source);
        continue;
      }
      kicks.set(e.role.queue, e.fd);
    }
    return kicks;
  }

  /** Gives back a DM's kept fd that turned out not to fit (the driver refused it): closed. */
  refuse(fd: number, name: string, why: string): void {
    this.reject(fd, name, why, this.fromStore.has(fd) ? 'systemd' : 'handover');
  }

  /** Closes, with a warning each, what no device model took (the config no longer has that DM). */
  closeUnused(): void {
    for (const e of this.pool.values()) {
      this.counts.unused += 1;
      this.log.warn({ fd: e.fd, name: e.name, dm: e.role.dm }, `kept fd '${e.name}' closed: no device model with id ${e.role.dm} in the config (or it was not opened)`);
      this.safeClose(e.fd);
    }
    this.pool.clear();
  }

  /** Publishes a kernel object to systemd's fd store unless it came from there. Never throws. */
  publish(role: KeptFdRole, fd: number): void {
    if (this.storeFd === undefined || this.fromStore.has(fd)) return;
    const name = formatFdName(role);
    try {
      this.storeFd(name, fd);
      this.counts.stored += 1;
    } catch (err) {
      this.log.warn({ err, name }, `cannot keep '${name}' in systemd's fd store: ${causeMessage(err)}`);
    }
  }

  /** A device model that serves (a hand-over collects from it); returns the unregister call. */
  register(model: KeptDeviceModel): () => void {
    this.serving.add(model);
    return () => this.serving.delete(model);
  }

  get models(): readonly KeptDeviceModel[] {
    return [...this.serving];
  }
}
