// The kernel vhost data plane end to end in the Bao-equivalent guest: `baoctl run` serves
// bao-virtio-dm's vsock entry (`data_plane: vhost`, `guest_cid`) unchanged through
// /dev/vhost-vsock, and the guest's own virtio_vsock driver is the frontend.
//
// One kernel holds both transports here, and they can meet: virtio_vsock registers as the
// guest-to-host transport (its CID is the one our config space serves), vhost_vsock as the
// host-to-guest one. A frontend socket connecting to CID 2 (the host) leaves through the virtio
// device, vhost delivers it to a listener bound to any CID, and the accepted socket talks back
// through vhost because its peer's CID is the guest's. The one rule: vhost refuses a CID the
// guest transport already holds, so the daemon claims it before the frontend driver probes.

import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { dmInfo, dmStats, guestSkipReason, loadBaoSim, unloadBaoSim } from './support/bao-sim.js';
import { boundTo, closedMetrics, stuckFrontend, frontend, rebind, startBackend, startDaemon, stopProc, tail, virtioDevice, waitForOutput, waitWhile, type Proc } from './support/vhost.js';

const DM = 0;
const CID = 3;
const CONFIG = '/tmp/node-bao-vhost-vsock.yaml';
const TOOL = '/usr/bin/bao-vsock';
/** The virtio driver of vsock (its module's name). */
const DRIVER = 'vmw_vsock_virtio_transport';
const VSOCK_ID = 19;

const skipReason =
  guestSkipReason ??
  (!fs.existsSync(TOOL) ? `${TOOL} is not in the image` : os.cpus().length < 2 ? 'the guest needs 2 CPUs (frontend and backend)' : undefined);
if (skipReason !== undefined && guestSkipReason === undefined) console.warn(`skipped: ${skipReason}`);

/** One exchange: the frontend sends `size` random bytes to a backend listener, which answers. */
async function exchange(port: number, size: number): Promise<void> {
  const send = crypto.randomBytes(size);
  const reply = crypto.randomBytes(size);
  fs.writeFileSync('/tmp/vsock-send.bin', send);
  fs.writeFileSync('/tmp/vsock-reply.bin', reply);
  // Both ends give up after BAO_VSOCK_TIMEOUT seconds (alarm): a lost connection fails, never hangs.
  const listener = startBackend([TOOL, 'listen', String(port)], { ...process.env, REPLY_FILE: '/tmp/vsock-reply.bin', BAO_VSOCK_TIMEOUT: '150' });
  try {
    await waitForOutput(listener, 'listening', 60_000, 'the listener');
    await frontend(`BAO_VSOCK_TIMEOUT=120 ${TOOL} connect 2 ${port} < /tmp/vsock-send.bin > /tmp/vsock-got.bin`, 150_000);
    expect(await listener.exited).toBe(0);
  } catch (err) {
    throw new Error(`${String(err)}\nlistener: ${tail(listener.output(), 5)}`);
  } finally {
    await stopProc(listener, 'SIGKILL').catch(() => {});
  }
  // Backend saw the frontend's bytes, the frontend got the count and the backend's bytes.
  expect(listener.stdout().equals(send)).toBe(true);
  const got = fs.readFileSync('/tmp/vsock-got.bin');
  const header = `${size}\n`;
  expect(got.subarray(0, header.length).toString()).toBe(header);
  expect(got.subarray(header.length).equals(reply)).toBe(true);
}

describe.skipIf(skipReason !== undefined)('vhost: kernel vhost-vsock serving the guest’s virtio_vsock through baoctl run', () => {
  let daemon: Proc | undefined;

  beforeAll(async () => {
    execFileSync('modprobe', ['vhost_vsock']);
    execFileSync('modprobe', [DRIVER]);
    loadBaoSim({ ndms: 1, frontends: [DM] });
    fs.writeFileSync(
      CONFIG,
      ['devices:', `  - id: ${DM}`, '    type: vsock', `    mmio_addr: ${dmInfo(DM).mmio_base}`, '    data_plane: vhost', `    guest_cid: ${CID}`, ''].join('\n'),
    );
    daemon = await startDaemon(CONFIG);
    const d = daemon;
    await waitWhile(d, () => { const dev = virtioDevice(VSOCK_ID); return dev !== undefined && boundTo(DRIVER, dev); }, 120_000, 'virtio_vsock to bind');
  }, 420_000);

  afterAll(async () => {
    await stopProc(daemon).catch(() => {});
    // A frontend task stuck in a driver would block the unload (and the guest) forever.
    const stuck = stuckFrontend();
    if (stuck === undefined) unloadBaoSim();
    else console.warn(`bao_sim left loaded: the frontend command '${stuck}' is stuck in the kernel`);
  }, 120_000);

  it('moves data both ways between a frontend socket and a backend listener, outside the daemon', async () => {
    const before = dmStats(DM);
    await exchange(5000, 256 * 1024);
    const after = dmStats(DM);
    // The frontend's kicks went to vhost through the ioeventfds, its interrupts through the irqfd.
    expect(after.ioeventfd_signals).toBeGreaterThan(before.ioeventfd_signals);
    expect(after.irqfd_notifications).toBeGreaterThan(before.irqfd_notifications);
  }, 300_000);

  it('stops and restarts the vhost device across the driver’s unbind and bind', async () => {
    const d = daemon!;
    const dev = virtioDevice(VSOCK_ID)!;
    await rebind(DRIVER, dev, d);
    await exchange(5001, 64 * 1024);
  }, 300_000);

  it('stops cleanly on SIGTERM', async () => {
    expect(await stopProc(daemon)).toBe(0);
    // Each activation (bind, rebind) was stopped once: at the unbind's reset, and at shutdown.
    const closed = closedMetrics(daemon!, 'vhost device closed');
    expect(closed).toMatchObject({ activations: 2, stops: 2, failedActivations: 0 });
  }, 120_000);
});
