// The virtio-net device on a real tap: the mock frontend driver transmits an ARP request through
// the transmit queue, the kernel (in a network namespace the test makes) answers, and the reply
// lands in the driver's receive buffers through readv, with num_buffers filled in; at MTU 9000 a
// jumbo echo request crosses whole and the kernel's reply is merged across receive buffers; the
// kernel's answer, queued on the tap inside the write, is delivered before the transmit interrupt. The
// whole data path of lib/devices/net with the addon's syscalls and libuv polling, no guest needed.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { tapSyscalls } from '../../lib/dispatcher/tap-syscalls.js';
import { NET_F_MAC, NET_F_MRG_RXBUF, NET_F_MTU, NetDevice, openTap, parseMac } from '../../lib/devices/net/index.js';
import { acceptOnly, MockDriver } from '../../lib/virtio/testing/mock-driver.js';
import { GUEST_MAC, arpReplySender, arpRequest } from './frames.js';
import { skipBecause } from './skip.js';

const ns = `nbnet${process.pid}`;
const name = `nbd${process.pid % 100000}`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An ICMP echo request from GUEST_MAC/`src` to `dstMac`/`dst` with `payload` bytes, DF set. */
function icmpEcho(dstMac: number[], src: string, dst: string, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(14 + 20 + 8 + payload.length);
  const v = new DataView(frame.buffer);
  frame.set(dstMac, 0);
  frame.set(GUEST_MAC, 6);
  v.setUint16(12, 0x0800);
  const ipHdr = frame.subarray(14, 34);
  ipHdr.set([0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, ...src.split('.').map(Number), ...dst.split('.').map(Number)]);
  v.setUint16(16, 20 + 8 + payload.length);
  v.setUint16(24, checksum(ipHdr));
  const icmp = frame.subarray(34);
  icmp.set([8, 0, 0, 0, 0x77, 0x01, 0, 1]);
  icmp.set(payload, 8);
  v.setUint16(36, checksum(icmp));
  return frame;
}

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

  it('takes the kernel’s answer to a transmitted frame along with its completion: both are in the rings at the first interrupt', async (ctx) => {
    if (!canRun) skipBecause(ctx, 'needs root and /dev/net/tun to create a tap and a network namespace');
    const tapName = `${name}r`;
    const tap = openTap({ name: tapName, queuePairs: 1, create: true }, tapSyscalls());
    ip('link', 'set', tapName, 'netns', ns);
    ip('-n', ns, 'addr', 'add', '10.77.0.1/24', 'dev', tapName);
    ip('-n', ns, 'link', 'set', tapName, 'up');
    const device = new NetDevice({ tap, mac: parseMac('02:00:00:00:00:02')!, queueSize: 64 });
    const driver = MockDriver.create(device, { size: 1 << 20 });
    driver.init({ features: acceptOnly(NET_F_MAC) });
    const rx = driver.queue(0);
    for (let i = 0; i < 16; i += 1) rx.add([{ length: 1600, writable: true }]);
    driver.kick(0);
    const atInterrupt: { rx: number; tx: number }[] = [];
    const signal = driver.interrupts.signal.bind(driver.interrupts);
    driver.interrupts.signal = () => {
      atInterrupt.push({ rx: rx.usedIdx(), tx: driver.queue(1).usedIdx() });
      signal();
    };
    driver.queue(1).add([{ data: new Uint8Array(12) }, { data: arpRequest('10.77.0.2', '10.77.0.1') }]);
    driver.kick(1); // the kernel answers inside the tap write; the device reads it before interrupting
    expect(atInterrupt.length).toBeGreaterThan(0);
    expect(atInterrupt[0]!.tx).toBe(1);
    // Frames the interface sent on its own as it came up (IPv6 neighbour discovery) may come first.
    const senders = rx.used().map((u, i) => ({ i, sender: arpReplySender(rx.buffers(u.id)[0]!.subarray(12, u.len)) }));
    const reply = senders.find((f) => f.sender === '10.77.0.1');
    expect(reply).toBeDefined();
    expect(reply!.i).toBeLessThan(atInterrupt[0]!.rx);
    expect(device.metrics.txReplyFrames).toBeGreaterThan(0);
    device.close();
  });

  it('at MTU 9000 sends a jumbo echo request whole and merges the kernel’s jumbo reply across receive buffers', async (ctx) => {
    if (!canRun) skipBecause(ctx, 'needs root and /dev/net/tun to create a tap and a network namespace');
    const jumbo = `${name}j`;
    const tap = openTap({ name: jumbo, queuePairs: 1, create: true }, tapSyscalls());
    ip('link', 'set', jumbo, 'netns', ns);
    ip('-n', ns, 'link', 'set', jumbo, 'mtu', '9000');
    ip('-n', ns, 'addr', 'add', '10.79.0.1/24', 'dev', jumbo);
    ip('-n', ns, 'link', 'set', jumbo, 'up');
    ip('-n', ns, 'neigh', 'replace', '10.79.0.2', 'lladdr', GUEST_MAC.map((b) => b.toString(16).padStart(2, '0')).join(':'), 'dev', jumbo);
    const tapMac = (JSON.parse(ip('-n', ns, '-j', 'link', 'show', jumbo)) as { address: string }[])[0]!.address.split(':').map((h) => parseInt(h, 16));
    const device = new NetDevice({ tap, mac: parseMac('02:00:00:00:00:02')!, queueSize: 64, mtu: 9000 });
    const driver = MockDriver.create(device, { size: 1 << 20 });
    driver.init({ features: acceptOnly(NET_F_MAC | NET_F_MRG_RXBUF | NET_F_MTU) });
    const rx = driver.queue(0);
    for (let i = 0; i < 16; i += 1) rx.add([{ length: 1536, writable: true }]);
    driver.kick(0);
    const payload = Uint8Array.from({ length: 8900 }, (_, i) => (i * 7 + 3) & 0xff);
    const frame = icmpEcho(tapMac, '10.79.0.2', '10.79.0.1', payload);
    expect(frame.length).toBe(8942);
    driver.queue(1).add([{ data: new Uint8Array(12) }, { data: frame }]);
    driver.kick(1);
    expect(driver.queue(1).used()).toHaveLength(1);
    expect(device.metrics).toMatchObject({ txFrames: 1, txOversize: 0 });
    // The reply: 12 + 8942 bytes over ceil(8954 / 1536) = 6 buffers, num_buffers in the first.
    let reply: Uint8Array | undefined;
    const used: { id: number; len: number }[] = [];
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 10_000;
      const poll = (): void => {
        used.push(...rx.used());
        for (let i = 0; i < used.length && reply === undefined; i += 1) {
          const first = rx.buffers(used[i]!.id)[0]!;
          const count = first[10]! | (first[11]! << 8);
          if (i + count > used.length) break; // the rest of this frame is not in yet
          const whole = new Uint8Array(used.slice(i, i + count).reduce((n, u) => n + u.len, 0));
          let at = 0;
          for (const u of used.slice(i, i + count)) {
            whole.set(rx.buffers(u.id)[0]!.subarray(0, u.len), at);
            at += u.len;
          }
          const eth = whole.subarray(12);
          if (eth[12] === 0x08 && eth[13] === 0x00 && eth[23] === 1 && eth[34] === 0) {
            expect(count).toBe(6);
            reply = eth;
          }
          i += count - 1;
        }
        if (reply !== undefined) resolve();
        else if (Date.now() > deadline) reject(new Error(`no echo reply within 10 s: ${JSON.stringify(device.metrics.snapshot())}`));
        else setTimeout(poll, 20);
      };
      poll();
    });
    expect(reply!.length).toBe(8942);
    expect(reply!.subarray(42)).toEqual(payload);
    expect(device.metrics.rxTruncated).toBe(0);
    expect(driver.guardsIntact()).toBe(true);
    device.close();
  });
});
