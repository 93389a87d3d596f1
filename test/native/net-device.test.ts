// The virtio-net device on a real tap: the mock frontend driver transmits an ARP request through
// the transmit queue, the kernel (in a network namespace the test makes) answers, and the reply
// lands in the driver's receive buffers through readv, with num_buffers filled in. The whole
// data path of lib/devices/net with the addon's syscalls and libuv polling, no guest needed.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { tapSyscalls } from '../../lib/dispatcher/tap-syscalls.js';
import { NET_F_MAC, NET_F_MRG_RXBUF, NetDevice, openTap, parseMac } from '../../lib/devices/net/index.js';
import { acceptOnly, MockDriver } from '../../lib/virtio/testing/mock-driver.js';
import { arpReplySender, arpRequest } from './frames.js';
import { skipBecause } from './skip.js';

const ns = `nbnet${process.pid}`;
const name = `nbd${process.pid % 100000}`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');

describe('NetDevice on a real tap', () => {
  beforeAll(() => {
    if (canRun) ip('netns', 'add', ns);
  });
  afterAll(() => {
    if (canRun) ip('netns', 'del', ns);
  });

  it('sends a frame from a transmit chain and receives the kernel reply into merged receive buffers', async (ctx) => {
    if (!canRun) skipBecause(ctx, 'needs root and /dev/net/tun to create a tap and a network namespace');
    const tap = openTap({ name, queuePairs: 1, create: true }, tapSyscalls());
    ip('link', 'set', name, 'netns', ns);
    ip('-n', ns, 'addr', 'add', '10.78.0.1/24', 'dev', name);
    ip('-n', ns, 'link', 'set', name, 'up');
    const device = new NetDevice({ tap, mac: parseMac('02:00:00:00:00:02')!, queueSize: 64 });
    const driver = MockDriver.create(device, { size: 1 << 20 });
    driver.init({ features: acceptOnly(NET_F_MAC | NET_F_MRG_RXBUF) });
    const rx = driver.queue(0);
    const heads = Array.from({ length: 8 }, () => rx.add([{ length: 1536, writable: true }]));
    driver.kick(0);
    const frame = arpRequest('10.78.0.2', '10.78.0.1');
    driver.queue(1).add([{ data: new Uint8Array(12) }, { data: frame }]);
    driver.kick(1);
    expect(driver.queue(1).used()).toHaveLength(1);
    let sender: string | undefined;
    const deadline = Date.now() + 3000;
    while (sender === undefined && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      for (const u of rx.used()) {
        const buf = rx.buffers(u.id)[0]!;
        expect(buf[10]! | (buf[11]! << 8)).toBe(1); // num_buffers
        sender ??= arpReplySender(buf.subarray(12, u.len));
      }
    }
    expect(sender).toBe('10.78.0.1');
    expect(heads.length).toBe(8);
    expect(device.metrics.txFrames).toBe(1);
    expect(device.metrics.rxFrames).toBeGreaterThan(0);
    expect(driver.guardsIntact()).toBe(true);
    device.close();
  });
});
