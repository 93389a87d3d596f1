// The console against a real unix-socket client that stops reading: the device must keep
// returning transmit chains at once (Linux's hvc output spins, interrupts off, until it gets
// them back), hold a bounded amount for the client, and drop and count the rest. Previously it
// held the chains, and emerg_wr writes grew the daemon's memory without bound.

import { mkdtemp, rm } from 'node:fs/promises';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ConsoleDevice, openSocketBackend } from '../../../../lib/devices/console/index.js';
import { MockDriver } from '../../../../lib/virtio/testing/mock-driver.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const LIMIT = 64 * 1024;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'node-bao-slow-peer-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function stalledClient(path: string): Promise<Socket> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.once('error', reject);
  });
  socket.pause(); // connected, never reads
  await new Promise((r) => setTimeout(r, 20)); // the backend accepts it
  return socket;
}

describe('console with a client that stops reading', () => {
  it('returns every transmit chain at once, holds at most txBufferLimit, drops and counts the rest', async () => {
    const backend = await openSocketBackend({ path: join(dir, 'c.sock') });
    const device = new ConsoleDevice({ backend, queueSize: 64, txBufferLimit: LIMIT, txBytesPerSecond: Number.POSITIVE_INFINITY });
    const driver = MockDriver.create(device, { size: 4 << 20 }).init({ queueSizes: [64, 64] });
    const client = await stalledClient(join(dir, 'c.sock'));
    const tx = driver.queue(1);
    const chunk = new Uint8Array(4096).fill(0x41);
    let sent = 0;
    for (let round = 0; round < 64; round += 1) {
      for (let i = 0; i < 32; i += 1) tx.add([{ data: chunk }]);
      driver.kick(1);
      for (let t = 0; t < 3; t += 1) await turn();
      // Every chain posted so far has come back, whatever the client does.
      sent += tx.used().length;
      expect(sent).toBe(32 * (round + 1));
      expect(device.txHeldBytes).toBeLessThanOrEqual(LIMIT);
      driver.allocator.reset(); // reuse the buffer memory: the device no longer needs it
    }
    expect(device.metrics.txDroppedBytes).toBeGreaterThan(0);
    expect(device.metrics.txBytes + device.metrics.txDroppedBytes).toBe(64 * 32 * 4096);
    client.destroy();
    await device.close();
  });

  it('bounds emerg_wr output the same way (it used to grow without bound)', async () => {
    const backend = await openSocketBackend({ path: join(dir, 'e.sock') });
    const device = new ConsoleDevice({ backend, txBufferLimit: LIMIT });
    const driver = MockDriver.create(device);
    const client = await stalledClient(join(dir, 'e.sock'));
    for (let i = 0; i < 300_000; i += 1) driver.writeConfig(8, 4, 0x41);
    await turn();
    expect(device.metrics.emergWrites).toBe(300_000);
    expect(device.txHeldBytes).toBeLessThanOrEqual(LIMIT);
    expect(device.metrics.txDroppedBytes).toBeGreaterThan(0);
    client.destroy();
    await device.close();
  });
});
