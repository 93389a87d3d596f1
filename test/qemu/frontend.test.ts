// The frontend side of bao-sim (qemu/bao-sim/README.md): a virtio device on the guest's own
// virtio bus probed through register accesses queued to the device model, as on Bao. Smoke test:
// a small responder (MagicValue "virt", Version 2, DeviceID 0) ends the probe with "no device".
// Also: probing waits for a backend without blocking insmod, rmmod always works, the round-trip
// timer, and the module parameters' limits.

import * as fs from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { noDeviceResponder, openDispatcher, TestDm } from './support/backend.js';
import {
  benchRoundTrips,
  dmesg,
  dmInfo,
  dmStats,
  guestSkipReason,
  isLoaded,
  loadBaoSim,
  unloadBaoSim,
  waitFor,
} from './support/bao-sim.js';

const base = (dm: number): number => 0xa000000 + dm * 0x200;

describe.skipIf(guestSkipReason !== undefined)('the frontend transport and module lifecycle', () => {
  let disp = -1;
  let dms: TestDm[] = [];

  afterEach(async () => {
    await Promise.all(dms.map((d) => d.close()));
    dms = [];
    if (disp >= 0) fs.closeSync(disp);
    disp = -1;
  });
  afterAll(() => unloadBaoSim());

  it('loads without waiting for a backend while the frontend probe stalls on its first register read', async () => {
    const t0 = Date.now();
    loadBaoSim({ frontends: [3] });
    expect(Date.now() - t0).toBeLessThan(10_000);
    await waitFor(() => dmStats(3).queued === 1, 5000, 'the MagicValue read to be queued');
    expect(dmInfo(3).frontend).toBe('probing');
    expect(dmInfo(2).frontend).toBe('none');
  });

  it('finishes the probe with "no device" when a backend answers MagicValue, Version 2 and DeviceID 0', async () => {
    loadBaoSim({ frontends: [3] });
    disp = openDispatcher();
    const seen: string[] = [];
    const respond = noDeviceResponder(base(3));
    const dm = new TestDm(disp, 3).attach((r) => {
      seen.push(`${r.op === 1 ? 'R' : 'W'}${(r.addr - base(3)).toString(16)}/${r.accessWidth}`);
      return respond(r);
    });
    dms.push(dm);
    await waitFor(() => dmInfo(3).frontend === 'no-device', 15_000, 'the probe to end');
    expect(seen).toEqual(['R0/4', 'R4/4', 'R8/4']);
    expect(dmesg()).toContain('bao-sim: dm3: device ID 0, no device');
    const bus = '/sys/bus/virtio/devices';
    const onBus = fs.existsSync(bus) ? fs.readdirSync(bus) : [];
    expect(onBus).toEqual([]);
  });

  it('shares guest RAM as the region of a DM with a frontend (descriptor GPAs translate by gpa - shmem_addr)', () => {
    loadBaoSim({ frontends: [0] });
    const info = dmInfo(0);
    expect(info.shmem_addr).toBe('0x100000');
    const memTotalKb = Number(/MemTotal:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
    expect(Number(info.shmem_size)).toBeGreaterThan(memTotalKb * 1024 * 0.9);
  });

  it('unloads while a frontend access waits for a backend that never comes (reads complete as all-ones)', async () => {
    loadBaoSim({ frontends: [0, 5] });
    await waitFor(() => dmStats(0).queued === 1 && dmStats(5).queued === 1, 5000, 'stalled probes');
    unloadBaoSim();
    expect(isLoaded()).toBe(false);
    expect(dmesg()).toMatch(/bao-sim: dm0: wrong magic value 0xffffffff/);
  });

  it('times frontend round trips through a backend (debugfs bench)', async () => {
    loadBaoSim({ ndms: 2 });
    disp = openDispatcher();
    dms.push(new TestDm(disp, 1).attach(() => 0x74726976));
    const r = await benchRoundTrips(1, 200);
    expect(r.count).toBe(200);
    expect(r.min).toBeGreaterThan(0);
    expect(r.min).toBeLessThanOrEqual(r.avg);
    expect(r.avg).toBeLessThanOrEqual(r.max);
    console.log(`bao-sim round trip through the addon under this guest: min ${r.min} ns, avg ${r.avg} ns, max ${r.max} ns`);
  });

  it('refuses more than 16 device models and out-of-range frontends', () => {
    expect(() => loadBaoSim({ ndms: 17 })).toThrow();
    expect(() => loadBaoSim({ ndms: 4, frontends: [4] })).toThrow();
    expect(isLoaded()).toBe(false);
  });
});
