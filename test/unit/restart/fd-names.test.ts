// The names kept fds travel under (systemd FDNAME=, the hand-over manifest).
import { describe, expect, it } from 'vitest';

import { formatFdName, parseFdName } from '../../../lib/vmm/restart/fd-names.js';

describe('kept fd names', () => {
  it('name the DM fd with the info DM_GET_INFO gave, and read it back', () => {
    const role = { kind: 'dm', dm: 3, shmemAddr: 0x50000000n, shmemSize: 0x1000000n, irq: 45 } as const;
    expect(formatFdName(role)).toBe('dm3-50000000-1000000-45');
    expect(parseFdName('dm3-50000000-1000000-45')).toEqual(role);
  });

  it('name the irqfd and each queue kick by DM and queue', () => {
    expect(formatFdName({ kind: 'irq', dm: 0 })).toBe('dm0-irq');
    expect(formatFdName({ kind: 'kick', dm: 15, queue: 2 })).toBe('dm15-kick2');
    expect(parseFdName('dm15-kick2')).toEqual({ kind: 'kick', dm: 15, queue: 2 });
    expect(parseFdName('dm0-irq')).toEqual({ kind: 'irq', dm: 0 });
  });

  it('are valid systemd FDNAMEs (printable, no colon, at most 255 characters)', () => {
    const longest = formatFdName({ kind: 'dm', dm: 0xffff, shmemAddr: 0xffffffffffffffffn, shmemSize: 0xffffffffffffffffn, irq: 0xffffffff });
    expect(longest.length).toBeLessThanOrEqual(255);
    expect(longest).toMatch(/^[\x21-\x7e]+$/);
    expect(longest).not.toContain(':');
  });

  it('refuse what is not one of ours', () => {
    for (const name of ['unknown', 'stored', 'dm-irq', 'dm0-irq2', 'dm0-kick', 'dmx-kick0', 'dm0-50000000-1000000', 'dm0-5000000G-10-1', ' dm0-irq', 'dm0-irq\n']) {
      expect(parseFdName(name), name).toBeUndefined();
    }
  });
});
