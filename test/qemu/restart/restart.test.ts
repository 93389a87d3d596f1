// Restarts that keep the device models' kernel objects (lib/vmm/restart), with the guest's own
// virtio_rng driver reading /dev/hwrng the whole time:
//   - under a stand-in for systemd's fd store (test/native/fd-store-supervisor.ts; the guest
//     boots a plain init, systemd cannot run here): the daemon is stopped as `systemctl restart`
//     stops it and started again with LISTEN_FDS;
//   - `baoctl restart`: a new process takes the devices over from the running one.
// Either way the new process serves on the DM fd, irqfd and kick eventfd the first one
// registered: bao-sim counts no new ioeventfd or irqfd, and kicks arrive by ioeventfd again
// (counted in the status), not through the kick watchdog's polling.
//
// When the build has no device-state resume, the new process starts the device from reset and
// the frontend driver is reset (unbind/bind) before it is read again; the test says which.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { FdStoreSupervisor } from '../../native/fd-store-supervisor.js';
import { dmInfo, dmStats, guestSkipReason, loadBaoSim, unloadBaoSim } from '../support/bao-sim.js';
import { baoctlCommand, daemonStatus, readHwrng, resetFrontend, rngAvailable, rngDevice, spawnDaemon, startLoad, waitUntil, type DmStatus } from './guest.js';

const DIR = '/tmp/node-bao-restart';
const CONFIG = `${DIR}/config.yaml`;
const SOCKET = `${DIR}/status.sock`;
// This file's own state directory: no saved state from another test's device models.
const STATE = `${DIR}/state`;
const skip = guestSkipReason ?? (os.cpus().length < 2 ? 'the restart tests need 2 CPUs (the frontend\u2019s and the backend\u2019s)' : undefined);
if (guestSkipReason === undefined && skip !== undefined) console.warn(`skipped: ${skip}`);

async function serving(pid?: number): Promise<DmStatus> {
  let dm: DmStatus | undefined;
  await waitUntil(
    async () => {
      const s = await daemonStatus(SOCKET);
      dm = s?.devices[0]?.deviceModel;
      return s?.state === 'serving' && (pid === undefined || s.pid === pid) && dm !== undefined;
    },
    240_000,
    `the daemon${pid === undefined ? '' : ` (pid ${pid})`} serving on ${SOCKET}`,
  );
  return dm!;
}

async function dmStatus(): Promise<DmStatus> {
  const s = await daemonStatus(SOCKET);
  const dm = s?.devices[0]?.deviceModel;
  if (dm === undefined) throw new Error('no device model status');
  return dm;
}

/** After a restart: the frontend reads again, resumed or (without resume) after a driver reset. */
async function readsAgain(): Promise<'resumed' | 'reset'> {
  if ((await readHwrng(64, 20_000)) === 64) return 'resumed';
  await resetFrontend();
  await waitUntil(() => rngAvailable(), 60_000, 'virtio_rng back in hw_random');
  expect(await readHwrng(256, 60_000)).toBe(256);
  return 'reset';
}

/** Kicks go by ioeventfd and no trapped access is left waiting. */
async function kicksByIoeventfd(before: { ioeventfds: number; irqfds: number }): Promise<DmStatus> {
  // Enough reads that kicks are counted whatever the path taken above.
  expect(await readHwrng(1024, 60_000)).toBe(1024);
  const dm = await dmStatus();
  expect(dm.server.keptKernelObjects ?? 0).toBeGreaterThanOrEqual(2); // the irqfd and queue 0's kick
  expect(dm.server.ioeventfdKicks).toBeGreaterThan(0);
  expect(dm.server.ioeventfdKicks).toBeGreaterThan(dm.transport.missedKicks);
  const stats = dmStats(0);
  // The kernel holds what the first process registered, nothing new (bao-abi.md §3.7, §3.8).
  expect(stats.ioeventfds).toBe(before.ioeventfds);
  expect(stats.irqfds).toBe(before.irqfds);
  await waitUntil(() => dmStats(0).inflight === 0, 30_000, 'no trapped access left in flight');
  return dm;
}

describe.skipIf(skip !== undefined)('restarts that keep the kernel objects', () => {
  beforeAll(() => {
    fs.mkdirSync(DIR, { recursive: true });
    // The frontend's driver: loaded here, not left to whichever test ran before.
    execFileSync('modprobe', ['virtio_rng']);
  });
  // A fresh driver each time: an ioeventfd lives as long as the DM (bao-abi.md §3.7), so a daemon
  // started without the kept fds would find its kicks going to the previous test's eventfd.
  beforeEach(() => {
    fs.rmSync(STATE, { recursive: true, force: true });
    loadBaoSim({ ndms: 1, frontends: [0] });
    fs.writeFileSync(CONFIG, ['devices:', '  - id: 0', '    type: rng', `    mmio_addr: ${dmInfo(0).mmio_base}`, '    data_plane: virtio', ''].join('\n'));
  });
  afterAll(() => {
    try {
      unloadBaoSim();
    } catch {
      // a process still holds a DM fd; the next test reloads it
    }
  });

  it("systemd's fd store (stand-in): a restart under load keeps the DM fd, irqfd and kick eventfd, and kicks arrive by ioeventfd", async () => {
    let out = '';
    const supervisor = new FdStoreSupervisor({
      command: baoctlCommand(['run', CONFIG, '--log-format', 'json', '--status-socket', SOCKET, '--state-dir', STATE]),
      socketPath: `${DIR}/notify.sock`,
      onOutput: (t) => (out = (out + t).slice(-16_000)),
    });
    let stopLoad = (): void => {};
    try {
      supervisor.start();
      await supervisor.whenReady(240_000);
      await waitUntil(() => rngDevice() !== undefined && rngAvailable(), 240_000, 'the frontend to probe the rng');
      expect(await readHwrng(256, 60_000)).toBe(256);
      await waitUntil(() => supervisor.store.some((s) => s.name === 'dm0-kick0'), 60_000, 'the kick eventfd in the fd store');
      const names = supervisor.store.map((s) => s.name);
      expect(names).toHaveLength(3);
      expect(names).toEqual(expect.arrayContaining([expect.stringMatching(/^dm0-[0-9a-f]+-[0-9a-f]+-\d+$/), 'dm0-irq', 'dm0-kick0']));
      const before = dmStats(0);

      stopLoad = startLoad();
      await waitUntil(async () => ((await dmStatus()).server.ioeventfdKicks ?? 0) > 0, 60_000, 'kicks under load');
      // As `systemctl restart` does: SIGTERM, wait, start again with what the store holds.
      await supervisor.kill('SIGTERM');
      const child = supervisor.start();
      await supervisor.whenReady(240_000);
      await serving(child.pid);
      stopLoad(); // a driver reset under load could wait on the reader it interrupts
      const path = await readsAgain();
      const dm = await kicksByIoeventfd(before);
      console.log(`fd-store restart: ${path}; ioeventfd kicks ${dm.server.ioeventfdKicks}, missed kicks ${dm.transport.missedKicks}, kept kernel objects ${dm.server.keptKernelObjects}`);
      expect(out).toMatch(/3 kept descriptor\(s\) from systemd's fd store/);
      stopLoad();
      await supervisor.kill('SIGTERM');
    } catch (err) {
      console.log(out);
      throw err;
    } finally {
      stopLoad();
      await supervisor.close();
    }
  }, 900_000);

  it('baoctl restart under load: the new process takes the device over, the old exits without a reset, kicks by ioeventfd after', async () => {
    const old = spawnDaemon(['run', CONFIG, '--log-format', 'json', '--status-socket', SOCKET, '--state-dir', STATE]);
    let next: ReturnType<typeof spawnDaemon> | undefined;
    let stopLoad = (): void => {};
    try {
      await serving(old.child.pid);
      await waitUntil(() => rngDevice() !== undefined && rngAvailable(), 240_000, 'the frontend to probe the rng');
      expect(await readHwrng(256, 60_000)).toBe(256);
      const before = dmStats(0);
      stopLoad = startLoad();
      await waitUntil(async () => ((await dmStatus()).server.ioeventfdKicks ?? 0) > 0, 60_000, 'kicks under load');

      next = spawnDaemon(['restart', CONFIG, '--log-format', 'json', '--status-socket', SOCKET, '--state-dir', STATE]);
      expect(await old.exited).toBe(0);
      expect(old.output()).toMatch(/handed over; exiting without resetting them/);
      expect(old.output()).not.toMatch(/device model closed/);
      await serving(next.child.pid);
      expect(next.output()).toMatch(/took over 1 device model\(s\) from process/);
      stopLoad();
      // A planned restart is a non-event for the frontend: its driver keeps the device.
      expect(next.output()).toMatch(/the driver keeps it/);
      const path = await readsAgain();
      expect(path).toBe('resumed');
      const dm = await kicksByIoeventfd(before);
      console.log(`baoctl restart: ${path}; ioeventfd kicks ${dm.server.ioeventfdKicks}, missed kicks ${dm.transport.missedKicks}, kept kernel objects ${dm.server.keptKernelObjects}`);
      stopLoad();
      next.child.kill('SIGTERM');
      expect(await next.exited).toBe(0);
    } catch (err) {
      console.log(`old daemon:\n${old.output()}\nnew daemon:\n${next?.output() ?? '(not started)'}`);
      throw err;
    } finally {
      stopLoad();
      old.child.kill('SIGKILL');
      next?.child.kill('SIGKILL');
      await Promise.all([old.exited, next?.exited]);
    }
  }, 900_000);
});
