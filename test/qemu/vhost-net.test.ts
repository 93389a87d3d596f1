// The kernel vhost-net data plane end to end in the Bao-equivalent guest: `baoctl run` serves
// bao-virtio-dm's net entry with `data_plane: vhost` on a tap it creates (the net device's own
// tap setup), and the guest's own virtio_net driver is the frontend. As in test/qemu/net.test.ts
// the frontend interface and the tap live in two network namespaces, so traffic can only cross
// through the device: ping both ways and a 64 MiB TCP transfer each way, checked by hash. The
// frames move between the shared region and the tap in the kernel: the kicks reach vhost through
// the ioeventfds, the interrupts leave through the irqfd, and the daemon's own counters show it
// neither forwarded a kick nor raised a used-buffer interrupt.

import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { DaemonStatus } from '../../lib/vmm/status.js';
import { dmInfo, dmStats, guestSkipReason, loadBaoSim, unloadBaoSim } from './support/bao-sim.js';
import { BACKEND_CPU, FRONTEND_CPU, boundTo, stuckFrontend, vhostOptInReason, closedMetrics, rebind, startBackend, startDaemon, stopProc, tail, virtioDevice, waitForOutput, waitWhile, type Proc } from './support/vhost.js';

const IP = '/usr/local/bin/ip';
const DM = 0;
const TAP = 'nbvtap0';
const GUEST_NS = 'nbvguest';
const TAP_NS = 'nbvtap';
const GUEST_IP = '10.51.0.2';
const TAP_IP = '10.51.0.1';
const CONFIG = '/tmp/node-bao-vhost-net.yaml';
const MAC = '52:54:00:12:34:57';
const TRANSFER = 'test/qemu/support/net-transfer.mjs';
const DRIVER = 'virtio_net';
const NET_ID = 1;

const skipReason =
  guestSkipReason ??
  vhostOptInReason ??
  (os.cpus().length < 2 ? 'the guest needs 2 CPUs (frontend and backend)' : undefined) ??
  (fs.existsSync(IP) ? undefined : `${IP} is not in the image (qemu/build-image.sh copies iproute2's ip)`);
if (guestSkipReason === undefined && skipReason !== undefined) console.warn(`skipped: ${skipReason}`);

const ip = (...args: string[]): string => execFileSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });

/** Runs in a namespace (the guest side on the frontend CPU, the tap side on the backend CPU), with a deadline. */
async function runInNs(ns: string, argv: string[], ms = 120_000): Promise<string> {
  const cpu = ns === GUEST_NS ? FRONTEND_CPU : BACKEND_CPU;
  const p = startBackend([IP, 'netns', 'exec', ns, 'taskset', '-c', cpu, ...argv]);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([p.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))]);
  clearTimeout(timer);
  if (code === 'timeout') {
    p.child.kill('SIGKILL');
    throw new Error(`${argv.join(' ')} in ${ns} did not finish within ${ms} ms:\n${tail(p.output())}`);
  }
  if (code !== 0) throw new Error(`${argv.join(' ')} in ${ns} exited ${String(code)}:\n${tail(p.output())}`);
  return p.stdout().toString();
}

function netIfname(dev: string): string {
  const dir = `/sys/bus/virtio/devices/${dev}/net`;
  return fs.existsSync(dir) ? (fs.readdirSync(dir)[0] ?? '') : '';
}

/** Moves the guest's new interface into its namespace and brings it up. */
async function setUpGuestSide(daemon: Proc): Promise<string> {
  let dev = '';
  await waitWhile(daemon, () => { dev = virtioDevice(NET_ID) ?? ''; return dev !== '' && boundTo(DRIVER, dev) && netIfname(dev) !== ''; }, 120_000, 'the virtio_net interface');
  const ifname = netIfname(dev);
  ip('link', 'set', ifname, 'netns', GUEST_NS);
  ip('-n', GUEST_NS, 'addr', 'add', `${GUEST_IP}/24`, 'dev', ifname);
  execFileSync('taskset', ['-c', FRONTEND_CPU, IP, '-n', GUEST_NS, 'link', 'set', ifname, 'up'], { timeout: 60_000 });
  return ifname;
}

function expectedHash(seed: string, mib: number): string {
  const base = Buffer.alloc(1 << 20);
  let at = 0;
  let counter = 0;
  while (at < base.length) at += createHash('sha256').update(`${seed}:0:${counter++}`).digest().copy(base, at);
  const h = createHash('sha256');
  for (let i = 0; i < mib; i += 1) {
    base.writeUInt32LE(i, 0);
    h.update(base);
  }
  return h.digest('hex');
}

/** Both directions at once: `mib` MiB from the tap side and from the guest, hashes checked. */
async function transfer(mib: number, port: number): Promise<void> {
  const server = startBackend([IP, 'netns', 'exec', TAP_NS, 'taskset', '-c', BACKEND_CPU, process.execPath, TRANSFER, 'listen', TAP_IP, String(port), String(mib), 'from-tap']);
  try {
    await waitForOutput(server, 'listening', 120_000, 'the transfer listener');
    const c = await runInNs(GUEST_NS, [process.execPath, TRANSFER, 'connect', TAP_IP, String(port), String(mib), 'from-guest'], 600_000);
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([server.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 120_000)))]);
    clearTimeout(timer);
    expect(code, server.output()).toBe(0);
    const atServer = JSON.parse(server.stdout().toString().trim().split('\n').pop()!) as { received: number; sha256: string };
    const atClient = JSON.parse(c.trim().split('\n').pop()!) as { received: number; sha256: string };
    expect(atServer.received).toBe(mib << 20);
    expect(atClient.received).toBe(mib << 20);
    expect(atServer.sha256).toBe(expectedHash('from-guest', mib));
    expect(atClient.sha256).toBe(expectedHash('from-tap', mib));
  } finally {
    await stopProc(server, 'SIGKILL').catch(() => {});
  }
}

function deviceStatus(): { metrics: Record<string, number>; usedInterrupts: number } {
  const status = JSON.parse(execFileSync('bin/baoctl', ['status', '--json'], { encoding: 'utf8', timeout: 60_000 })) as DaemonStatus;
  const d = status.devices[0];
  return { metrics: { ...(d?.metrics ?? {}) }, usedInterrupts: Number(d?.deviceModel?.transport['usedInterrupts'] ?? -1) };
}

function tapBytes(): { rx: number; tx: number } {
  const read = (what: string): number => Number(execFileSync(IP, ['netns', 'exec', TAP_NS, 'cat', `/sys/class/net/${TAP}/statistics/${what}_bytes`], { encoding: 'utf8', timeout: 60_000 }).trim());
  return { rx: read('rx'), tx: read('tx') };
}

describe.skipIf(skipReason !== undefined)('vhost: kernel vhost-net serving the guest’s virtio_net through baoctl run', () => {
  let daemon: Proc | undefined;

  beforeAll(async () => {
    for (const m of ['tun', 'vhost_net', DRIVER]) execFileSync('modprobe', [m]);
    for (const ns of [GUEST_NS, TAP_NS]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // not there
      }
      ip('netns', 'add', ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    loadBaoSim({ ndms: 1, frontends: [DM] });
    fs.writeFileSync(
      CONFIG,
      ['devices:', `  - id: ${DM}`, '    type: net', `    mmio_addr: ${dmInfo(DM).mmio_base}`, '    data_plane: vhost', `    tap_name: ${TAP}`, `    mac_addr: "${MAC}"`, '    create_tap: true', ''].join('\n'),
    );
    daemon = await startDaemon(CONFIG);
    const ifname = await setUpGuestSide(daemon);
    expect(ip('-n', GUEST_NS, 'link', 'show', ifname)).toContain(`link/ether ${MAC}`);
    ip('link', 'set', TAP, 'netns', TAP_NS);
    ip('-n', TAP_NS, 'addr', 'add', `${TAP_IP}/24`, 'dev', TAP);
    ip('-n', TAP_NS, 'link', 'set', TAP, 'up');
  }, 480_000);

  afterAll(async () => {
    await stopProc(daemon).catch(() => {});
    for (const ns of [GUEST_NS, TAP_NS]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    // A frontend task stuck in a driver would block the unload (and the guest) forever.
    const stuck = stuckFrontend();
    if (stuck === undefined) unloadBaoSim();
    else console.warn(`bao_sim left loaded: the frontend command '${stuck}' is stuck in the kernel`);
  }, 120_000);

  it('answers ping both ways', async () => {
    expect(await runInNs(GUEST_NS, ['ping', '-c', '3', '-W', '10', TAP_IP])).toMatch(/3 packets received/);
    expect(await runInNs(TAP_NS, ['ping', '-c', '3', '-W', '10', GUEST_IP])).toMatch(/3 packets received/);
  }, 240_000);

  it('carries 64 MiB each way over TCP, intact, through the kernel: the daemon never touched the data', async () => {
    const before = { status: deviceStatus(), dm: dmStats(DM), tap: tapBytes() };
    await transfer(64, 5101);
    const after = { status: deviceStatus(), dm: dmStats(DM), tap: tapBytes() };
    console.log(`vhost-net: tap rx ${after.tap.rx - before.tap.rx} B, tx ${after.tap.tx - before.tap.tx} B; kicks via ioeventfd ${after.dm.ioeventfd_signals - before.dm.ioeventfd_signals}, irqfd ${after.dm.irqfd_notifications - before.dm.irqfd_notifications}; daemon ${JSON.stringify(after.status)}`);
    expect(after.tap.rx - before.tap.rx).toBeGreaterThan(64 << 20);
    expect(after.tap.tx - before.tap.tx).toBeGreaterThan(64 << 20);
    expect(after.dm.ioeventfd_signals).toBeGreaterThan(before.dm.ioeventfd_signals);
    expect(after.dm.irqfd_notifications).toBeGreaterThan(before.dm.irqfd_notifications);
    // No kick reached the daemon, and it raised no used-buffer interrupt: the rings were the kernel's.
    expect(after.status.metrics.forwardedKicks).toBe(0);
    expect(after.status.usedInterrupts).toBe(before.status.usedInterrupts);
  }, 900_000);

  it('stops and restarts vhost-net across the driver’s unbind and bind', async () => {
    const d = daemon!;
    await rebind(DRIVER, virtioDevice(NET_ID)!, d);
    await setUpGuestSide(d);
    expect(await runInNs(GUEST_NS, ['ping', '-c', '3', '-W', '10', TAP_IP])).toMatch(/3 packets received/);
    expect(deviceStatus().metrics).toMatchObject({ activations: 2, stops: 1, failedActivations: 0 });
  }, 400_000);

  it('stops cleanly on SIGTERM, and the tap it created goes with it', async () => {
    expect(await stopProc(daemon)).toBe(0);
    expect(closedMetrics(daemon!, 'vhost device closed')).toMatchObject({ activations: 2, stops: 2 });
    await waitWhile(undefined, () => !ip('-n', TAP_NS, 'link', 'show').includes(TAP), 60_000, 'the tap to disappear');
  }, 120_000);
});
