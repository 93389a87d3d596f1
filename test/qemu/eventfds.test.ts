// Conformance of the ioeventfd kernel client (spec §3.7) and the irqfd server (spec §3.8) of
// bao-sim, through the addon: registration errors, routing, datamatch, inclusive ranges,
// notifications per wake-up, deassign and POLLHUP removal.

import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';

import { EventFd } from '../../lib/dispatcher/eventfd.js';
import { addon, PRIMARY, useDispatcher } from './support/backend.js';
import { dmStats, frontendAccess, guestSkipReason, waitFor } from './support/bao-sim.js';

const base = (dm: number): number => 0xa000000 + dm * 0x200;
const DATAMATCH = 0x2;

describe.skipIf(guestSkipReason !== undefined)('ioeventfd and irqfd (v2)', () => {
  const fixture = useDispatcher({ ndms: 8, shmem_size: 0x10000 });
  const { open, eventfd } = fixture;

  describe('ioeventfd', () => {
    it('refuses a length other than 1, 2, 4 or 8, and a range that wraps, with EINVAL', () => {
      const dm = open(0);
      const e = eventfd();
      expect(() => addon().ioeventfd(dm.fd, PRIMARY, e.fd, 0, base(0), 3, 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      expect(() => addon().ioeventfd(dm.fd, PRIMARY, e.fd, 0, 0xfffffffffffffffen, 4, 0)).toThrow(
        expect.objectContaining({ code: 'EINVAL' }),
      );
    });

    it('refuses a closed fd with EBADF and an fd that is not an eventfd with EINVAL', () => {
      const dm = open(0);
      expect(() => addon().ioeventfd(dm.fd, PRIMARY, 9999, 0, base(0), 4, 0)).toThrow(expect.objectContaining({ code: 'EBADF' }));
      const devnull = fs.openSync('/dev/null', 'r');
      try {
        expect(() => addon().ioeventfd(dm.fd, PRIMARY, devnull, 0, base(0), 4, 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      } finally {
        fs.closeSync(devnull);
      }
    });

    it('refuses the same eventfd on the same address with EEXIST unless both datamatch different values', () => {
      const dm = open(1);
      const e = eventfd();
      const a = addon();
      a.ioeventfd(dm.fd, PRIMARY, e.fd, DATAMATCH, base(1) + 0x50, 4, 0);
      a.ioeventfd(dm.fd, PRIMARY, e.fd, DATAMATCH, base(1) + 0x50, 4, 1);
      expect(() => a.ioeventfd(dm.fd, PRIMARY, e.fd, DATAMATCH, base(1) + 0x50, 4, 1)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
      expect(() => a.ioeventfd(dm.fd, PRIMARY, e.fd, 0, base(1) + 0x50, 4, 0)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
      const other = eventfd();
      a.ioeventfd(dm.fd, PRIMARY, other.fd, DATAMATCH, base(1) + 0x50, 4, 0);
      expect(dmStats(1).ioeventfds).toBe(3);
    });

    it('signals the matching eventfd for a QueueNotify write, which never reaches ATTACH', async () => {
      const dm = open(2).attach();
      const q0 = eventfd();
      const q1 = eventfd();
      addon().ioeventfd(dm.fd, PRIMARY, q0.fd, DATAMATCH, base(2) + 0x50, 4, 0);
      addon().ioeventfd(dm.fd, PRIMARY, q1.fd, DATAMATCH, base(2) + 0x50, 4, 1);
      await frontendAccess(2, 'write', 0x50, 4, 1);
      await frontendAccess(2, 'write', 0x50, 4, 1);
      await frontendAccess(2, 'write', 0x50, 4, 0);
      expect(q1.read()).toBe(2n);
      expect(q0.read()).toBe(1n);
      expect(dmStats(2).attached).toBe(0);
    });

    it('signals only the first of two eventfds registered for the same address and data', async () => {
      const dm = open(3);
      const first = eventfd();
      const second = eventfd();
      addon().ioeventfd(dm.fd, PRIMARY, first.fd, 0, base(3) + 0x50, 4, 0);
      addon().ioeventfd(dm.fd, PRIMARY, second.fd, 0, base(3) + 0x50, 4, 0);
      await frontendAccess(3, 'write', 0x50, 4, 5);
      expect(first.read()).toBe(1n);
      expect(second.read()).toBeNull();
    });

    it('treats the range as inclusive: a byte at its last address is swallowed, an access past its end reaches ATTACH', async () => {
      const dm = open(4).attach();
      const e = eventfd();
      addon().ioeventfd(dm.fd, PRIMARY, e.fd, 0, base(4) + 0x50, 4, 0);
      expect(await frontendAccess(4, 'read', 0x53, 1)).toBe(0n);
      expect(dmStats(4).attached).toBe(0);
      const straddling = frontendAccess(4, 'read', 0x52, 4);
      const req = await dm.next();
      expect(req.addr).toBe(base(4) + 0x52);
      dm.complete(req, 0xabcd);
      expect(await straddling).toBe(0xabcdn);
      // A wider write than the registered length is not a match, and not inside the range.
      const wide = frontendAccess(4, 'write', 0x50, 8, 0);
      dm.complete(await dm.next());
      await wide;
      expect(e.read()).toBeNull();
    });
  });

  describe('irqfd', () => {
    it('raises one frontend notification per eventfd write', async () => {
      const dm = open(5);
      const e = eventfd();
      addon().irqfd(dm.fd, PRIMARY, e.fd, 0);
      const before = dmStats(5).irqfd_notifications;
      e.signal();
      e.signal();
      e.signal();
      await waitFor(() => dmStats(5).irqfd_notifications - before === 3, 5000, '3 notifications');
    });

    it('does not notify at assign time when the eventfd is not readable', () => {
      const dm = open(5);
      const e = eventfd(0);
      const before = dmStats(5).irqfd_notifications;
      addon().irqfd(dm.fd, PRIMARY, e.fd, 0);
      expect(dmStats(5).irqfd_notifications).toBe(before);
    });

    it('stops notifying after deassign, and deassign of an unknown eventfd returns 0', () => {
      const dm = open(6);
      const e = eventfd();
      addon().irqfd(dm.fd, PRIMARY, e.fd, 0);
      addon().irqfd(dm.fd, PRIMARY, e.fd, 1);
      expect(dmStats(6).irqfds).toBe(0);
      const before = dmStats(6).irqfd_notifications;
      e.signal();
      expect(dmStats(6).irqfd_notifications).toBe(before);
      expect(() => addon().irqfd(dm.fd, PRIMARY, eventfd().fd, 1)).not.toThrow();
    });

    it('refuses a closed fd with EBADF and a non-eventfd with EINVAL; several irqfds per DM are fine', () => {
      const dm = open(7);
      expect(() => addon().irqfd(dm.fd, PRIMARY, 9999, 0)).toThrow(expect.objectContaining({ code: 'EBADF' }));
      const devnull = fs.openSync('/dev/null', 'r');
      try {
        expect(() => addon().irqfd(dm.fd, PRIMARY, devnull, 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      } finally {
        fs.closeSync(devnull);
      }
      addon().irqfd(dm.fd, PRIMARY, eventfd().fd, 0);
      addon().irqfd(dm.fd, PRIMARY, eventfd().fd, 0);
      expect(dmStats(7).irqfds).toBe(2);
    });

    it('removes the irqfd when its eventfd is released (POLLHUP)', async () => {
      const dm = open(0);
      const e = EventFd.create();
      addon().irqfd(dm.fd, PRIMARY, e.fd, 0);
      expect(dmStats(0).irqfds).toBe(1);
      e.close();
      await waitFor(() => dmStats(0).irqfds === 0, 5000, 'irqfd removal');
    });
  });
});
