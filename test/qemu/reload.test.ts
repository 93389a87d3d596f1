// SIGHUP reload end to end in the Bao-equivalent guest: `baoctl run` serves virtio-rng on DM 0 to
// the guest's own virtio_rng driver; a reload adds DM 1 (its frontend, waiting since the module
// loaded, probes and is served), a second removes it again and changes `log:` (which needs a
// restart: logged, not applied), a third is invalid (refused, nothing changes). DM 0 keeps
// serving throughout and is never reopened.
//
// systemd itself is not run here: the guest is a busybox initramfs with no systemd (and no unix
// datagram listener); the notify protocol against a real NOTIFY_SOCKET is tested on the host
// (test/native/systemd.test.ts), and the unit with `systemd-analyze verify` there too.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { dmInfo, dmStats, guestSkipReason, loadBaoSim, unloadBaoSim, waitFor } from './support/bao-sim.js';
import { boundVirtioDevices, cpuSkipReason, readHwrng, rngSources, selectRng, startDaemon, stopDaemon, type DaemonProcess } from './support/daemon-process.js';

const CONFIG = '/tmp/node-bao-reload.yaml';
const SOCKET = '/tmp/node-bao-reload-status.sock';

function rng(dm: number): string[] {
  return [`  - id: ${dm}`, '    type: rng', `    mmio_addr: ${dmInfo(dm).mmio_base}`, '    data_plane: virtio'];
}

/**
 * Reads /dev/hwrng until DM `dm` has answered more frontend accesses than before (virtio_rng
 * keeps a buffer filled ahead, so one read may need no device access at all); bounded.
 */
async function servedBy(dm: number): Promise<void> {
  const before = dmStats(dm).completions;
  for (let i = 0; i < 20 && dmStats(dm).completions <= before; i += 1) expect((await readHwrng(64)).length).toBe(64);
  expect(dmStats(dm).completions, `DM ${dm} answered nothing while /dev/hwrng was read`).toBeGreaterThan(before);
}

function writeConfig(dms: readonly number[], extra: readonly string[] = []): void {
  fs.writeFileSync(CONFIG, [...extra, 'devices:', ...dms.flatMap(rng), ''].join('\n'));
}

describe.skipIf(guestSkipReason !== undefined || cpuSkipReason !== undefined)('SIGHUP reloads the config of a running daemon', () => {
  let daemon: DaemonProcess | undefined;
  let first = '';

  const reloads = (): Record<string, unknown>[] => daemon?.lines().filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('reloaded:')) ?? [];
  const opened = (dm: number): number => daemon?.lines().filter((l) => l['msg'] === 'device model open' && l['id'] === dm).length ?? 0;

  async function hup(what: string, done: () => boolean): Promise<void> {
    daemon?.child.kill('SIGHUP');
    await waitFor(done, 60_000, what).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${daemon?.output()}`);
    });
  }

  beforeAll(async () => {
    fs.rmSync(SOCKET, { force: true });
    execFileSync('modprobe', ['virtio_rng']);
    loadBaoSim({ ndms: 2, frontends: [0, 1] });
    writeConfig([0]);
    daemon = startDaemon(CONFIG, ['--status-socket', SOCKET]);
    const d = daemon;
    await waitFor(() => boundVirtioDevices(4).length === 1 && rngSources().length === 1, 60_000, 'DM 0 served').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${d.output()}`);
    });
    first = rngSources()[0]!;
  }, 120_000);

  afterAll(async () => {
    await stopDaemon(daemon).catch(() => {});
    unloadBaoSim();
  }, 60_000);

  it('adds a device: DM 1 starts and its frontend probes, DM 0 is kept untouched', async () => {
    expect(dmInfo(1)['frontend']).toBe('probing'); // waiting for a backend since the module loaded
    writeConfig([0, 1]);
    await hup('the first reload', () => reloads().length === 1);
    expect(reloads()[0]).toMatchObject({ kept: 1, started: 1, stopped: 0, failed: 0 });
    await waitFor(() => boundVirtioDevices(4).length === 2 && rngSources().length === 2, 60_000, 'DM 1 probed and bound');
    const added = rngSources().find((s) => s !== first)!;
    selectRng(added);
    await servedBy(1);
    expect(opened(0)).toBe(1);
  }, 180_000);

  it('removes a device and logs a change that needs a restart; DM 0 keeps serving', async () => {
    selectRng(first);
    writeConfig([0], ['log:', '  level: warn']);
    await hup('the second reload', () => reloads().length === 2);
    expect(reloads()[1]).toMatchObject({ kept: 1, started: 0, stopped: 1, failed: 0 });
    const out = daemon!.output();
    expect(out).toMatch(/reload: the log: settings changed, which needs a restart/);
    expect(out).toMatch(/"msg":"device model closed"/);
    await servedBy(0);
    expect(opened(0)).toBe(1);
  }, 180_000);

  it('refuses an invalid config and changes nothing', async () => {
    fs.writeFileSync(CONFIG, 'devices:\n  - id: 0\n    type: rng\n    data_plane: virtio\n');
    await hup('the refusal', () => /reload refused, nothing changed/.test(daemon?.output() ?? ''));
    expect(reloads()).toHaveLength(2);
    await servedBy(0);
    expect(opened(0)).toBe(1);
  }, 120_000);

  it('stops cleanly on SIGTERM, exiting 0', async () => {
    expect(await stopDaemon(daemon)).toBe(0);
  }, 60_000);
});
