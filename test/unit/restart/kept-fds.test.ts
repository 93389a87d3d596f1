// What KeptFds trusts of the fds a previous process left: only what its name says and the fd
// confirms; everything else is closed with a warning, never used.
import { describe, expect, it } from 'vitest';

import { KeptFds } from '../../../lib/vmm/restart/kept-fds.js';
import type { Logger } from '../../../lib/virtio/logger.js';

function setup(links: Record<number, string>, store?: (name: string, fd: number) => void) {
  const warnings: string[] = [];
  const closed: number[] = [];
  const log: Logger = { debug() {}, info() {}, warn: (_o, m) => warnings.push(m ?? ''), error() {}, child: () => log };
  const kept = new KeptFds({
    log,
    ...(store === undefined ? {} : { store }),
    describeFd: (fd) => {
      const l = links[fd];
      if (l === undefined) throw Object.assign(new Error('EBADF: bad file descriptor'), { code: 'EBADF' });
      return l;
    },
    close: (fd) => closed.push(fd),
  });
  return { kept, warnings, closed };
}

describe('kept fds', () => {
  it('give a DM its fd with the info its name recorded, its irqfd and its queue kicks', () => {
    const { kept, closed } = setup({ 3: 'anon_inode:bao-dm2', 4: 'anon_inode:[eventfd]', 5: 'anon_inode:[eventfd]', 6: 'anon_inode:[eventfd]' });
    kept.receive(
      [
        { fd: 3, name: 'dm2-a0000000-100000-44' },
        { fd: 4, name: 'dm2-irq' },
        { fd: 5, name: 'dm2-kick0' },
        { fd: 6, name: 'dm2-kick1' },
      ],
      'systemd',
    );
    expect(kept.takeDm(2)).toEqual({ fd: 3, info: { shmemAddr: 0xa0000000n, shmemSize: 0x100000n, irq: 44 } });
    expect(kept.takeIrq(2)).toBe(4);
    expect(kept.takeKicks(2, 2)).toEqual(new Map([[0, 5], [1, 6]]));
    kept.closeUnused();
    expect(closed).toEqual([]);
  });

  it('accept a revA DM fd, which is its own node', () => {
    const { kept } = setup({ 3: '/dev/bao-dm1' });
    kept.receive([{ fd: 3, name: 'dm1-0-1000-0' }], 'handover');
    expect(kept.takeDm(1)?.fd).toBe(3);
  });

  it('close what is not what its name says, with a warning naming it', () => {
    const { kept, warnings, closed } = setup({ 3: 'anon_inode:bao-dm7', 4: 'socket:[123]', 5: 'anon_inode:[eventfd]', 6: 'anon_inode:[eventfd]', 7: 'anon_inode:[eventfd]' });
    kept.receive(
      [
        { fd: 3, name: 'dm2-a0000000-100000-44' }, // another DM's fd
        { fd: 4, name: 'dm2-irq' }, // not an eventfd
        { fd: 5, name: 'unknown' }, // not our name
        { fd: 6, name: 'dm2-kick0' },
        { fd: 7, name: 'dm2-kick0' }, // twice
        { fd: 9, name: 'dm2-kick1' }, // not open
      ],
      'systemd',
    );
    expect(closed.sort()).toEqual([3, 4, 5, 7, 9]);
    expect(warnings.join('\n')).toMatch(/'dm2-a0000000-100000-44'.*device model 7's, the name says 2/);
    expect(warnings.join('\n')).toMatch(/'dm2-irq'.*not an eventfd \(it is socket:\[123\]\)/);
    expect(warnings.join('\n')).toMatch(/'unknown'.*not a name node-bao gives/);
    expect(warnings.join('\n')).toMatch(/a second fd under the same name/);
    expect(warnings.join('\n')).toMatch(/'dm2-kick1'.*not an open descriptor/);
    expect(kept.takeDm(2)).toBeUndefined();
    expect(kept.takeIrq(2)).toBeUndefined();
    expect(kept.takeKicks(2, 1)).toEqual(new Map([[0, 6]]));
    expect(kept.counts).toMatchObject({ received: 6, rejected: 5 });
  });

  it('close a stale queue kick and what no device model took, with a warning', () => {
    const { kept, warnings, closed } = setup({ 4: 'anon_inode:[eventfd]', 5: 'anon_inode:[eventfd]' });
    kept.receive([{ fd: 4, name: 'dm0-kick3' }, { fd: 5, name: 'dm9-irq' }], 'systemd');
    expect(kept.takeKicks(0, 2).size).toBe(0);
    kept.closeUnused();
    expect(closed).toEqual([4, 5]);
    expect(warnings.join('\n')).toMatch(/'dm0-kick3'.*device model 0 has 2 queue\(s\) now/);
    expect(warnings.join('\n')).toMatch(/'dm9-irq' closed: no device model with id 9/);
  });

  it("store new objects in systemd's fd store, never again what came from it", () => {
    const stored: string[] = [];
    const { kept } = setup({ 4: 'anon_inode:[eventfd]' }, (name, fd) => stored.push(`${name}=${fd}`));
    kept.receive([{ fd: 4, name: 'dm0-irq' }], 'systemd');
    kept.publish({ kind: 'irq', dm: 0 }, kept.takeIrq(0)!);
    kept.publish({ kind: 'kick', dm: 0, queue: 0 }, 8);
    expect(stored).toEqual(['dm0-kick0=8']);
  });

  it('a store that refuses is a warning, not a failure', () => {
    const { kept, warnings } = setup({}, () => {
      throw new Error('ECONNREFUSED');
    });
    kept.publish({ kind: 'irq', dm: 0 }, 8);
    expect(warnings.join()).toMatch(/cannot keep 'dm0-irq' in systemd's fd store/);
  });
});
