// The virtio-net device against the mock frontend driver and a tap double: what the driver is
// offered, frames in both directions (the guest's header passed through, num_buffers filled in,
// merged receive buffers), backpressure both ways, the control queue, and every malformed input
// dropped and counted while the queue keeps going.

import { describe, expect, it } from 'vitest';

import {
  CONFIG_MAX_PAIRS,
  CONFIG_MTU,
  CONFIG_STATUS,
  NET_F_CSUM,
  NET_F_CTRL_MAC_ADDR,
  NET_F_CTRL_RX,
  NET_F_CTRL_VQ,
  NET_F_GUEST_CSUM,
  NET_F_GUEST_TSO4,
  NET_F_HOST_TSO4,
  NET_F_MAC,
  NET_F_MQ,
  NET_F_MRG_RXBUF,
  NET_F_MTU,
  NET_F_STATUS,
  NetDevice,
  deriveMac,
  parseMac,
} from '../../../../lib/devices/net/index.js';
import { TUN_F_CSUM, TUN_F_TSO4 } from '../../../../lib/devices/net/header.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC, VERSION_1 } from '../../../../lib/virtio/features.js';
import { ManualScheduler } from '../../../../lib/virtio/testing/manual-scheduler.js';
import { MockDriver, acceptOnly } from '../../../../lib/virtio/testing/mock-driver.js';
import { FakeTap, pattern, withHeader } from './fake-tap.js';

const MAC = parseMac('52:54:00:aa:bb:01')!;
const settle = () => new Promise((r) => setImmediate(r));

function setup(options: { pairs?: number; features?: bigint | ((o: bigint) => bigint); queueSize?: number; mtu?: number; scheduler?: ManualScheduler; budget?: { chains?: number; bytes?: number } } = {}) {
  const tap = new FakeTap('tap0', options.pairs ?? 1);
  const device = new NetDevice({
    tap,
    mac: MAC,
    queueSize: options.queueSize ?? 64,
    ...(options.mtu ? { mtu: options.mtu } : {}),
    ...(options.scheduler ? { scheduler: options.scheduler } : {}),
    ...(options.budget ? { budget: options.budget } : {}),
  });
  const driver = MockDriver.create(device, { size: 4 << 20 });
  driver.init({ features: options.features ?? ((o) => o) });
  return { tap, device, driver };
}

function u16(bytes: Uint8Array, at: number): number {
  return bytes[at]! | (bytes[at + 1]! << 8);
}

describe('virtio-net: what the driver sees', () => {
  it('offers MAC, STATUS, MTU, checksum and TSO offloads, MRG_RXBUF, the control queue and ring features', () => {
    const { driver } = setup();
    const offered = driver.deviceFeatures();
    for (const bit of [NET_F_MAC, NET_F_STATUS, NET_F_CSUM, NET_F_GUEST_CSUM, NET_F_HOST_TSO4, NET_F_GUEST_TSO4, NET_F_MRG_RXBUF, NET_F_CTRL_VQ, NET_F_CTRL_RX, NET_F_CTRL_MAC_ADDR, RING_EVENT_IDX, RING_INDIRECT_DESC, VERSION_1]) {
      expect(offered & bit).toBe(bit);
    }
    expect(offered & NET_F_MQ).toBe(0n); // one queue pair: nothing to steer
    expect([0, 1, 2, 3, 4, 5].map((i) => driver.readConfig(i, 1))).toEqual([...MAC]);
    expect(driver.readConfig(CONFIG_STATUS, 2)).toBe(1);
    expect(driver.readConfig(CONFIG_MAX_PAIRS, 2)).toBe(1);
    expect(driver.readConfig(CONFIG_MTU, 2)).toBe(1500);
  });

  it('with several tap queues offers MQ, one rx/tx pair per tap queue and the control queue after them', () => {
    const tap = new FakeTap('tap0', 4);
    const device = new NetDevice({ tap, mac: MAC, mtu: 9000 });
    expect(device.features & NET_F_MQ).toBe(NET_F_MQ);
    expect(device.queueMaxSizes).toHaveLength(9);
    const driver = MockDriver.create(device);
    expect(driver.readConfig(CONFIG_MAX_PAIRS, 2)).toBe(4);
    expect(driver.readConfig(CONFIG_MTU, 2)).toBe(9000);
  });

  it('derives the same MAC from the same seed, a different one from another, locally administered and unicast', () => {
    const a = deriveMac('1 0xa003e00');
    expect(deriveMac('1 0xa003e00')).toEqual(a);
    expect(deriveMac('2 0xa003e00')).not.toEqual(a);
    expect(a[0]! & 0x03).toBe(0x02);
  });

  it('does not take config writes (the MAC changes through the control queue)', () => {
    const { driver } = setup();
    driver.writeConfig(0, 1, 0xee);
    expect(driver.readConfig(0, 1)).toBe(0x52);
  });

  it('asks the tap for the receive offloads the driver accepted, and for none again at reset', async () => {
    const { tap, driver } = setup({ features: acceptOnly(NET_F_GUEST_CSUM | NET_F_GUEST_TSO4) });
    await settle();
    expect(tap.offloads).toEqual([TUN_F_CSUM | TUN_F_TSO4]);
    driver.reset();
    await settle();
    expect(tap.offloads).toEqual([TUN_F_CSUM | TUN_F_TSO4, 0]);
    expect(tap.closed).toBe(0); // the tap outlives resets
  });
});

describe('virtio-net: transmit', () => {
  it('passes the guest header and frame to the tap as the guest laid them out, and returns the chain', () => {
    const { tap, driver, device } = setup();
    const frame = withHeader(pattern(1000));
    const head = driver.queue(1).add([{ data: frame.subarray(0, 12) }, { data: frame.subarray(12) }]);
    driver.kick(1);
    expect(tap.queues[0]!.outbound).toEqual([frame]);
    expect(driver.queue(1).used()).toEqual([{ id: head, len: 0 }]);
    expect(driver.interrupts.count).toBe(1);
    expect(device.metrics).toMatchObject({ txFrames: 1, txBytes: 1000 });
    expect(driver.guardsIntact()).toBe(true);
  });

  it('publishes a transmitted chain and interrupts the driver in the same turn it was written to the tap, each time the driver asks as Linux does', () => {
    const { tap, driver } = setup(); // EVENT_IDX accepted
    const q = driver.queue(1);
    const usedAtInterrupt: number[] = [];
    const signal = driver.interrupts.signal.bind(driver.interrupts);
    driver.interrupts.signal = () => {
      usedAtInterrupt.push(q.usedIdx());
      signal();
    };
    for (let i = 1; i <= 3; i += 1) {
      // virtqueue_enable_cb_delayed with nothing outstanding: interrupt me for the next one.
      q.setUsedEvent(i - 1);
      q.add([{ data: withHeader(pattern(200, i)) }]);
      driver.kick(1);
      expect(tap.queues[0]!.outbound).toHaveLength(i);
      expect(q.used()).toHaveLength(1);
      expect(usedAtInterrupt).toHaveLength(i);
    }
    expect(usedAtInterrupt).toEqual([1, 2, 3]);
  });

  it('delivers the reply the tap already holds after a transmit before raising the transmit interrupt, so one interrupt carries both', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC | RING_EVENT_IDX) });
    const tq = tap.queues[0]!;
    const ack = withHeader(pattern(54, 9));
    tq.onWrite = () => tq.inbound.push(ack); // the receiving stack answers inside the write
    const rxq = driver.queue(0);
    const rxHead = rxq.add([{ length: 2048, writable: true }]);
    driver.kick(0);
    const seen: { rx: number; tx: number }[] = [];
    const signal = driver.interrupts.signal.bind(driver.interrupts);
    driver.interrupts.signal = () => {
      seen.push({ rx: rxq.usedIdx(), tx: driver.queue(1).usedIdx() });
      signal();
    };
    driver.queue(1).add([{ data: withHeader(pattern(1000)) }]);
    driver.kick(1);
    expect(seen[0]).toEqual({ rx: 1, tx: 1 }); // the first interrupt finds both published
    expect(rxq.used()).toEqual([{ id: rxHead, len: ack.length }]);
    expect(tq.inbound).toHaveLength(0);
    expect(device.metrics).toMatchObject({ txReplyPolls: 1, txReplyFrames: 1, rxFrames: 1, txFrames: 1 });
  });

  it('leaves the replies to the next receive kick while the guest has no receive buffers', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC | RING_EVENT_IDX) });
    const tq = tap.queues[0]!;
    tq.onWrite = () => tq.inbound.push(withHeader(pattern(54)));
    for (let i = 0; i < 2; i += 1) {
      driver.queue(1).add([{ data: withHeader(pattern(100, i)) }]);
      driver.kick(1);
    }
    expect(device.metrics).toMatchObject({ txFrames: 2, rxNoBuffers: 1, txReplyPolls: 1, txReplyFrames: 0 });
    expect(tq.wantReadable).toBe(false);
    expect(tq.inbound).toHaveLength(2);
    driver.queue(0).add([{ length: 2048, writable: true }]);
    driver.queue(0).add([{ length: 2048, writable: true }]);
    driver.kick(0);
    tap.pollAll(1);
    expect(driver.queue(0).used()).toHaveLength(2);
  });

  it('reads the replies of the pair that transmitted (one tap queue per pair)', () => {
    const { tap, driver, device } = setup({ pairs: 2, features: acceptOnly(NET_F_MAC | NET_F_CTRL_VQ | NET_F_MQ) });
    driver.queue(4).add([{ data: Uint8Array.of(4, 0, 2, 0) }, { length: 1, writable: true }]); // VQ_PAIRS_SET 2
    driver.kick(4);
    expect(device.pairsInUse).toBe(2);
    const tq = tap.queues[1]!;
    tq.onWrite = () => tq.inbound.push(withHeader(pattern(54)));
    driver.queue(0).add([{ length: 2048, writable: true }]);
    driver.queue(2).add([{ length: 2048, writable: true }]);
    driver.kick(0);
    driver.kick(2);
    driver.queue(3).add([{ data: withHeader(pattern(100)) }]);
    driver.kick(3);
    expect(driver.queue(2).used()).toHaveLength(1);
    expect(driver.queue(0).used()).toHaveLength(0);
    expect(device.metrics.txReplyFrames).toBe(1);
  });

  it('takes TSO frames with a checksum request when HOST_TSO4 and CSUM were accepted', () => {
    const { tap, driver, device } = setup();
    const frame = withHeader(pattern(60000), { flags: 1, gsoType: 1, gsoSize: 1448, hdrLen: 54, csumStart: 34, csumOffset: 16 });
    driver.queue(1).add([{ data: frame }], { indirect: true });
    driver.kick(1);
    expect(tap.queues[0]!.outbound[0]).toEqual(frame);
    expect(device.metrics).toMatchObject({ txFrames: 1, txGsoFrames: 1 });
  });

  it('drops and counts malformed frames, returns their chains, and goes on with the next one', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC) });
    const q = driver.queue(1);
    q.add([{ data: new Uint8Array(8) }]); // shorter than the header
    q.add([{ data: withHeader(pattern(1600)) }]); // larger than MTU + Ethernet + VLAN
    q.add([{ data: withHeader(pattern(100), { flags: 1 }) }]); // NEEDS_CSUM without CSUM
    q.add([{ data: withHeader(pattern(100), { gsoType: 1 }) }]); // TSO4 without HOST_TSO4
    q.add([{ data: withHeader(pattern(100), { flags: 0x80 }) }]); // unknown flag
    q.add([{ data: withHeader(pattern(100)) }, { length: 10, writable: true }]); // writable part
    const good = withHeader(pattern(100, 7));
    q.add([{ data: good }]);
    driver.kick(1);
    expect(tap.queues[0]!.outbound).toEqual([good]);
    expect(q.used()).toHaveLength(7);
    expect(device.metrics).toMatchObject({ txShortHeader: 1, txOversize: 1, txBadOffload: 3, txChainsWithWritable: 1, txFrames: 1 });
  });

  it('serves at most one budget of chains per turn and the rest on the next turn', async () => {
    const { tap, driver, device } = setup({ queueSize: 128 });
    const q = driver.queue(1);
    for (let i = 0; i < 100; i += 1) q.add([{ data: withHeader(pattern(60, i)) }]);
    driver.kick(1);
    expect(tap.queues[0]!.outbound).toHaveLength(64);
    expect(device.metrics.queueYields).toBe(1);
    await settle();
    expect(tap.queues[0]!.outbound).toHaveLength(100);
    expect(q.used()).toHaveLength(100);
  });

  it('waits for the tap when it is full (EAGAIN) and resumes, in order, when it is writable', async () => {
    const { tap, driver, device } = setup();
    const tq = tap.queues[0]!;
    tq.full = true;
    const q = driver.queue(1);
    const frames = [1, 2, 3].map((i) => withHeader(pattern(80, i)));
    for (const f of frames) q.add([{ data: f }]);
    driver.kick(1);
    expect(tq.outbound).toHaveLength(0);
    expect(tq.wantWritable).toBe(true);
    expect(q.used()).toHaveLength(0);
    expect(device.metrics.txTapFull).toBe(1);
    tq.full = false;
    tq.poll();
    expect(tq.outbound).toEqual(frames);
    await settle(); // the held chain completes like any asynchronous one
    expect(q.used()).toHaveLength(3);
    expect(tq.wantWritable).toBe(false);
  });

  it('counts a frame the tap refuses (EIO: interface down) and goes on', () => {
    const { tap, driver, device } = setup();
    const tq = tap.queues[0]!;
    tq.writeError = Object.assign(new Error('EIO'), { code: 'EIO' });
    driver.queue(1).add([{ data: withHeader(pattern(80)) }]);
    driver.kick(1);
    expect(device.metrics.txTapErrors).toBe(1);
    expect(driver.queue(1).used()).toHaveLength(1);
    expect(device.linkUp).toBe(true);
  });
});

describe('virtio-net: receive', () => {
  it('without MRG_RXBUF reads one frame into one chain and sets num_buffers to 1', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC) });
    const q = driver.queue(0);
    const head = q.add([{ length: 12, writable: true }, { length: 1600, writable: true }]);
    driver.kick(0);
    const frame = withHeader(pattern(700));
    tap.queues[0]!.inbound.push(frame);
    tap.pollAll(1);
    expect(q.used()).toEqual([{ id: head, len: frame.length }]);
    const [hdr, body] = q.buffers(head);
    expect(u16(hdr!, 10)).toBe(1);
    expect(body!.subarray(0, 700)).toEqual(pattern(700));
    expect(device.metrics).toMatchObject({ rxFrames: 1, rxBytes: 700 });
    expect(driver.interrupts.count).toBe(1);
  });

  it('with MRG_RXBUF merges a frame across as many buffers as it needs and says how many', () => {
    const { tap, driver, device } = setup();
    const q = driver.queue(0);
    const heads = Array.from({ length: 64 }, () => q.add([{ length: 1536, writable: true }]));
    driver.kick(0);
    // A segmentation offload frame: larger than the MTU, which only a GSO frame may be.
    const frame = withHeader(pattern(4000), { flags: 2, gsoType: 1, gsoSize: 1448 });
    tap.queues[0]!.inbound.push(frame, withHeader(pattern(100, 3)));
    tap.pollAll(1);
    const used = q.used();
    expect(used).toEqual([
      { id: heads[0], len: 1536 },
      { id: heads[1], len: 1536 },
      { id: heads[2], len: frame.length - 3072 },
      { id: heads[3], len: 112 },
    ]);
    expect(u16(q.buffers(heads[0]!)[0]!, 10)).toBe(3);
    expect(u16(q.buffers(heads[3]!)[0]!, 10)).toBe(1);
    const joined = new Uint8Array(frame.length);
    joined.set(q.buffers(heads[0]!)[0]!, 0);
    joined.set(q.buffers(heads[1]!)[0]!, 1536);
    joined.set(q.buffers(heads[2]!)[0]!.subarray(0, frame.length - 3072), 3072);
    expect(joined.subarray(12)).toEqual(frame.subarray(12));
    expect(joined[0]).toBe(2); // the tap's DATA_VALID reaches a driver that accepted GUEST_CSUM
    expect(device.metrics.rxMergedBuffers).toBe(2);
  });

  it('stops reading the tap when the guest has no buffers, and resumes on the next kick', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC | RING_EVENT_IDX) });
    const tq = tap.queues[0]!;
    expect(tq.wantReadable).toBe(true);
    tq.inbound.push(withHeader(pattern(60, 1)), withHeader(pattern(60, 2)));
    tq.poll();
    expect(tq.wantReadable).toBe(false);
    expect(tq.inbound).toHaveLength(2); // left in the kernel
    expect(device.metrics.rxNoBuffers).toBe(1);
    const q = driver.queue(0);
    q.add([{ length: 1600, writable: true }]);
    q.add([{ length: 1600, writable: true }]);
    driver.kick(0);
    expect(tq.wantReadable).toBe(true);
    tq.poll();
    expect(q.used()).toHaveLength(2);
    expect(tq.inbound).toHaveLength(0);
  });

  it('drops a frame larger than the chain (truncated) and reuses the chain for the next', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC) });
    const q = driver.queue(0);
    const head = q.add([{ length: 200, writable: true }]);
    driver.kick(0);
    tap.queues[0]!.inbound.push(withHeader(pattern(500)), withHeader(pattern(100, 9)));
    tap.pollAll(1);
    expect(device.metrics.rxTruncated).toBe(1);
    expect(q.used()).toEqual([{ id: head, len: 112 }]);
    expect(q.buffers(head)[0]!.subarray(12, 112)).toEqual(pattern(100, 9));
  });

  it('drops a frame above the negotiated MTU even when the chain has room for it, and counts it', () => {
    // The tap's MTU is the host's and may be larger than the one the driver was told.
    const { tap, driver, device } = setup({ mtu: 576, features: acceptOnly(NET_F_MAC | NET_F_MTU) });
    const q = driver.queue(0);
    const head = q.add([{ length: 4096, writable: true }]);
    driver.kick(0);
    tap.queues[0]!.inbound.push(withHeader(pattern(576 + 18 + 1)), withHeader(pattern(576 + 18, 3)));
    tap.pollAll(1);
    expect(device.metrics.rxOversize).toBe(1);
    expect(q.used()).toEqual([{ id: head, len: 12 + 576 + 18 }]);
  });

  it('drops a frame larger than the driver may receive without MTU or GSO, even into merged buffers with room', () => {
    // The merge reserve holds whole chains until it can take the largest frame: 2 x 1500 here.
    const { tap, driver, device } = setup({ mtu: 1500, features: acceptOnly(NET_F_MAC | NET_F_MRG_RXBUF) });
    const q = driver.queue(0);
    for (let i = 0; i < 4; i += 1) q.add([{ length: 1500, writable: true }]);
    driver.kick(0);
    tap.queues[0]!.inbound.push(withHeader(pattern(2000)), withHeader(pattern(1500 + 18, 5)));
    tap.pollAll(1);
    expect(device.metrics.rxOversize).toBe(1);
    expect(device.metrics.rxTruncated).toBe(0);
    expect(q.used().map((u) => u.len)).toEqual([1500, 12 + 1500 + 18 - 1500]);
  });

  it('drops frames whose tap header carries offloads the driver did not accept, and clears DATA_VALID for it', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC) });
    const q = driver.queue(0);
    const heads = [q.add([{ length: 1600, writable: true }])];
    driver.kick(0);
    tap.queues[0]!.inbound.push(withHeader(pattern(100), { gsoType: 1, gsoSize: 1448 }), withHeader(pattern(100), { flags: 1 }), withHeader(pattern(100), { flags: 2 }));
    tap.pollAll(1);
    expect(device.metrics.rxOffloadDropped).toBe(2);
    expect(q.used()).toEqual([{ id: heads[0], len: 112 }]);
    expect(q.buffers(heads[0]!)[0]![0]).toBe(0);
  });

  it('returns receive chains without room for the header, or with readable parts, unused and counted', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC) });
    const q = driver.queue(0);
    const a = q.add([{ length: 4, writable: true }]);
    const b = q.add([{ data: new Uint8Array(4) }, { length: 1600, writable: true }]);
    const c = q.add([{ length: 1600, writable: true }]);
    driver.kick(0);
    tap.queues[0]!.inbound.push(withHeader(pattern(64)));
    tap.pollAll(1);
    expect(q.used()).toEqual([
      { id: a, len: 0 },
      { id: b, len: 0 },
      { id: c, len: 76 },
    ]);
    expect(device.metrics).toMatchObject({ rxChainsWithoutWritable: 1, rxChainsWithReadable: 1, rxFrames: 1 });
  });

  it('reports the link down, with a config interrupt, when the tap goes away', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC | NET_F_STATUS) });
    const q = driver.queue(0);
    q.add([{ length: 1600, writable: true }]);
    driver.kick(0);
    tap.queues[0]!.readError = Object.assign(new Error('EBADFD'), { code: 'EBADFD' });
    tap.queues[0]!.poll();
    expect(device.linkUp).toBe(false);
    expect(driver.readConfig(CONFIG_STATUS, 2)).toBe(0);
    expect(driver.interruptStatus() & 2).toBe(2);
    expect(tap.queues[0]!.wantReadable).toBe(false);
  });
});

describe('virtio-net: control queue', () => {
  function command(driver: MockDriver, ctrl: number, bytes: number[]): number {
    const q = driver.queue(ctrl);
    const head = q.add([{ data: Uint8Array.from(bytes) }, { length: 1, writable: true }]);
    driver.kick(ctrl);
    q.used();
    return q.buffers(head)[1]![0]!;
  }

  it('answers RX mode, MAC table and MAC address commands, and refuses malformed ones', () => {
    const { driver, device } = setup();
    const ctrl = 2;
    expect(command(driver, ctrl, [0, 0, 1])).toBe(0); // promiscuous on
    expect(command(driver, ctrl, [0, 1, 1])).toBe(0); // all-multicast on
    expect(device.ctrlState).toMatchObject({ promisc: true, allmulti: true });
    expect(command(driver, ctrl, [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x33, 0x33, 0, 0, 0, 1])).toBe(0);
    expect(device.ctrlState.multicastFilter).toEqual(['33:33:00:00:00:01']);
    expect(command(driver, ctrl, [1, 1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55])).toBe(0);
    expect(device.mac).toBe('02:11:22:33:44:55');
    expect(driver.readConfig(0, 1)).toBe(0x02);
    expect(command(driver, ctrl, [1, 0, 5, 0, 0, 0])).toBe(1); // table longer than the command
    expect(command(driver, ctrl, [0, 9, 1])).toBe(1);
    expect(command(driver, ctrl, [7, 0])).toBe(1);
    expect(command(driver, ctrl, [4, 0, 2, 0])).toBe(1); // MQ not negotiated
    expect(device.metrics.ctrlBadCommands).toBe(4);
  });

  it('a MAC the driver set lasts until reset: the next driver reads the configured one, and frames to it pass the filter', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC | NET_F_CTRL_VQ | NET_F_CTRL_RX | NET_F_CTRL_MAC_ADDR) });
    const ctrl = 2;
    expect(command(driver, ctrl, [1, 1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55])).toBe(0);
    expect(command(driver, ctrl, [0, 0, 0])).toBe(0); // promiscuous off: the filter passes our MAC only
    const frameTo = (mac: readonly number[]) => {
      const f = pattern(60);
      f.set(mac, 0);
      return withHeader(f);
    };
    const rx = driver.queue(0);
    rx.add([{ length: 1600, writable: true }]);
    driver.kick(0);
    tap.queues[0]!.inbound.push(frameTo(MAC), frameTo([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]));
    tap.pollAll(2);
    expect(rx.used()).toHaveLength(1); // the set MAC passes, the configured one no longer does
    expect(device.metrics.rxFiltered).toBe(1);
    driver.reset();
    expect(device.mac).toBe('52:54:00:aa:bb:01');
    driver.init({ features: acceptOnly(NET_F_MAC | NET_F_CTRL_VQ | NET_F_CTRL_RX | NET_F_CTRL_MAC_ADDR) });
    expect(Array.from({ length: 6 }, (_, i) => driver.readConfig(i, 1))).toEqual([...MAC]);
    expect(command(driver, ctrl, [0, 0, 0])).toBe(0);
    const rx2 = driver.queue(0);
    rx2.add([{ length: 1600, writable: true }]);
    driver.kick(0);
    tap.queues[0]!.inbound.push(frameTo([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]), frameTo(MAC));
    tap.pollAll(2);
    expect(rx2.used()).toHaveLength(1);
    expect(device.metrics.rxFiltered).toBe(2);
  });

  it('VQ_PAIRS_SET steers each tap queue to its pair once in use, and folds them onto the pairs in use', () => {
    const { tap, driver, device } = setup({ pairs: 2, features: acceptOnly(NET_F_MAC | NET_F_CTRL_VQ | NET_F_MQ) });
    const ctrl = 4;
    const rx0 = driver.queue(0);
    const rx1 = driver.queue(2);
    rx0.add([{ length: 1600, writable: true }]);
    rx1.add([{ length: 1600, writable: true }]);
    driver.kick(0);
    driver.kick(2);
    expect(device.pairsInUse).toBe(1);
    tap.queues[1]!.inbound.push(withHeader(pattern(50)));
    tap.pollAll(1);
    expect(rx0.used()).toHaveLength(1); // one pair in use: tap queue 1 lands on pair 0
    expect(command(driver, ctrl, [4, 0, 2, 0])).toBe(0);
    expect(device.pairsInUse).toBe(2);
    tap.queues[1]!.inbound.push(withHeader(pattern(50)));
    tap.pollAll(1);
    expect(rx1.used()).toHaveLength(1);
    expect(command(driver, ctrl, [4, 0, 3, 0])).toBe(1); // more than offered
    // transmit queue 1 writes to tap queue 1
    driver.queue(3).add([{ data: withHeader(pattern(70)) }]);
    driver.kick(3);
    expect(tap.queues[1]!.outbound).toHaveLength(1);
  });
});

describe('virtio-net: reset and shutdown', () => {
  it('stops using the queues at reset, keeps the tap, and serves a new activation', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC) });
    driver.reset();
    expect(tap.queues[0]!.wantReadable).toBe(false);
    driver.init({ features: acceptOnly(NET_F_MAC) });
    const q = driver.queue(0);
    const head = q.add([{ length: 1600, writable: true }]);
    driver.kick(0);
    tap.queues[0]!.inbound.push(withHeader(pattern(64)));
    tap.pollAll(1);
    expect(q.used()).toEqual([{ id: head, len: 76 }]);
    expect(device.metrics).toMatchObject({ activations: 2, resets: 1 });
  });

  it('cancels a pending transmit turn at reset: nothing touches the rings afterwards', async () => {
    const { tap, driver } = setup({ queueSize: 128 });
    const q = driver.queue(1);
    for (let i = 0; i < 100; i += 1) q.add([{ data: withHeader(pattern(60, i)) }]);
    driver.kick(1);
    const usedIdx = q.usedIdx();
    driver.write(0x70, 0); // status 0
    await settle();
    expect(tap.queues[0]!.outbound).toHaveLength(64);
    expect(q.usedIdx()).toBe(usedIdx);
  });

  it('close() resets and closes the tap once', () => {
    const { tap, device } = setup();
    device.close();
    device.close();
    expect(tap.closed).toBe(1);
  });

  it('fails the device (NEEDS_RESET) on a corrupt ring and stops reading the tap', () => {
    const { tap, driver } = setup({ features: acceptOnly(NET_F_MAC) });
    driver.queue(0).setAvailIdx(500);
    driver.kick(0);
    tap.queues[0]!.inbound.push(withHeader(pattern(64)));
    tap.pollAll(1);
    expect(driver.status() & 0x40).toBe(0x40);
    expect(tap.queues[0]!.wantReadable).toBe(false);
  });
});

describe('virtio-net: fairness (the shared queue worker)', () => {
  it('serves one budget of transmit chains per run, then lets the event loop serve others before the rest', () => {
    const scheduler = new ManualScheduler();
    const { tap, driver, device } = setup({ pairs: 2, queueSize: 128, scheduler, budget: { chains: 16 }, features: acceptOnly(NET_F_MAC | NET_F_CTRL_VQ | NET_F_MQ) });
    const busy = driver.queue(1);
    for (let i = 0; i < 100; i += 1) busy.add([{ data: withHeader(pattern(60, i)) }]);
    driver.kick(1);
    expect(tap.queues[0]!.outbound).toHaveLength(16);
    expect(scheduler.pendingYields).toBe(1);
    // Another queue's frame, kicked meanwhile, goes out before the busy queue's next run.
    driver.queue(3).add([{ data: withHeader(pattern(60, 200)) }]);
    driver.kick(3);
    expect(tap.queues[1]!.outbound).toHaveLength(1);
    driver.kick(1); // a flood of kicks does not skip the yield
    expect(tap.queues[0]!.outbound).toHaveLength(16);
    let runs = 0;
    while (scheduler.pendingYields > 0 && runs < 20) {
      scheduler.turn();
      runs += 1;
    }
    expect(tap.queues[0]!.outbound).toHaveLength(100);
    expect(runs).toBe(6);
    expect(device.metrics.queueYields).toBe(6);
  });

  it('bounds a run by bytes too: large (TSO-sized) frames yield after a few', () => {
    const scheduler = new ManualScheduler();
    const { tap, driver } = setup({ queueSize: 64, scheduler });
    const q = driver.queue(1);
    for (let i = 0; i < 10; i += 1) q.add([{ data: withHeader(pattern(60000, i), { flags: 1, gsoType: 1, gsoSize: 1448, hdrLen: 54, csumStart: 34, csumOffset: 16 }) }], { indirect: true });
    driver.kick(1);
    const first = tap.queues[0]!.outbound.length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(10);
    while (scheduler.pendingYields > 0) scheduler.turn();
    expect(tap.queues[0]!.outbound).toHaveLength(10);
  });

  it('serves a control queue flood in budgets too', () => {
    const scheduler = new ManualScheduler();
    const { driver, device } = setup({ queueSize: 256, scheduler, budget: { chains: 32 } });
    const q = driver.queue(2);
    for (let i = 0; i < 120; i += 1) q.add([{ data: [0, 0, i & 1] }, { length: 1, writable: true }]);
    driver.kick(2);
    expect(device.metrics.ctrlCommands).toBe(32);
    while (scheduler.pendingYields > 0) scheduler.turn();
    expect(device.metrics.ctrlCommands).toBe(120);
    expect(q.used()).toHaveLength(120);
  });

  it('at reset drops a transmit chain held for a full tap, and never sends or completes it', async () => {
    const { tap, driver } = setup();
    const tq = tap.queues[0]!;
    tq.full = true;
    const q = driver.queue(1);
    q.add([{ data: withHeader(pattern(80)) }]);
    driver.kick(1);
    expect(tq.wantWritable).toBe(true);
    const usedIdx = q.usedIdx();
    await driver.write(0x70, 0); // status 0: the transport awaits the device's reset
    tq.full = false;
    tq.poll();
    await settle();
    expect(tq.outbound).toHaveLength(0);
    expect(q.usedIdx()).toBe(usedIdx);
    expect(tq.wantWritable).toBe(false);
  });
});

describe('virtio-net: hostile frontend (dropped, counted, the queue goes on)', () => {
  it('a jumbo MTU takes a frame of MTU plus headers and drops one byte more', () => {
    const { tap, driver, device } = setup({ mtu: 9000, features: acceptOnly(NET_F_MAC) });
    const q = driver.queue(1);
    const fits = withHeader(pattern(9000 + 18));
    q.add([{ data: fits }]);
    q.add([{ data: withHeader(pattern(9000 + 19)) }]);
    const after = withHeader(pattern(64, 5));
    q.add([{ data: after }]);
    driver.kick(1);
    expect(tap.queues[0]!.outbound).toEqual([fits, after]);
    expect(device.metrics).toMatchObject({ txOversize: 1, txFrames: 2 });
    expect(q.used()).toHaveLength(3);
  });

  it('a header split across descriptors and one byte short is refused; a whole split header is taken', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC) });
    const q = driver.queue(1);
    q.add([{ data: new Uint8Array(5) }, { data: new Uint8Array(6) }]);
    const good = withHeader(pattern(40));
    q.add([{ data: good.subarray(0, 3) }, { data: good.subarray(3, 12) }, { data: good.subarray(12) }]);
    driver.kick(1);
    expect(device.metrics.txShortHeader).toBe(1);
    expect(tap.queues[0]!.outbound).toEqual([good]);
  });

  it('receive chains that are all readable, or too small for the header, are returned unused while frames keep arriving', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC) });
    const q = driver.queue(0);
    for (let i = 0; i < 20; i += 1) q.add([{ data: new Uint8Array(64) }]);
    for (let i = 0; i < 20; i += 1) q.add([{ length: 11, writable: true }]);
    const good = q.add([{ length: 2048, writable: true }]);
    driver.kick(0);
    tap.queues[0]!.inbound.push(withHeader(pattern(100)));
    tap.pollAll(3);
    expect(device.metrics).toMatchObject({ rxChainsWithReadable: 20, rxChainsWithoutWritable: 20, rxFrames: 1 });
    expect(q.used().at(-1)).toEqual({ id: good, len: 112 });
  });

  it('offload flags the device did not offer (UDP GSO, unknown GSO types) are refused even when everything was accepted', () => {
    const { tap, driver, device } = setup();
    const q = driver.queue(1);
    q.add([{ data: withHeader(pattern(200), { gsoType: 3, gsoSize: 100 }) }]); // UFO: never offered
    q.add([{ data: withHeader(pattern(200), { gsoType: 5 }) }]); // UDP_L4: not offered
    q.add([{ data: withHeader(pattern(200), { gsoType: 0x80 }) }]); // ECN alone
    const good = withHeader(pattern(200));
    q.add([{ data: good }]);
    driver.kick(1);
    expect(device.metrics.txBadOffload).toBe(3);
    expect(tap.queues[0]!.outbound).toEqual([good]);
  });

  it('malformed control commands get an error ack (or nothing when there is no room for one) and later commands are served', () => {
    const { driver, device } = setup();
    const q = driver.queue(2);
    const noAck = q.add([{ data: [0, 0, 1] }]); // no writable byte
    const emptyAck = q.add([{ data: [0, 0, 1] }, { length: 0, writable: true }]);
    const short = q.add([{ data: [0] }, { length: 1, writable: true }]);
    const huge = q.add([{ data: new Uint8Array(70 * 1024) }, { length: 1, writable: true }]);
    const badTable = q.add([{ data: [1, 0, 0xff, 0xff, 0xff, 0xff] }, { length: 1, writable: true }]);
    const ok = q.add([{ data: [0, 0, 1] }, { length: 1, writable: true }]);
    driver.kick(2);
    const used = new Map(q.used().map((u) => [u.id, u.len]));
    expect(used.get(noAck)).toBe(0);
    expect(used.get(emptyAck)).toBe(0);
    for (const head of [short, huge, badTable]) expect(q.buffers(head).at(-1)![0]).toBe(1);
    expect(q.buffers(ok).at(-1)![0]).toBe(0);
    expect(device.ctrlState.promisc).toBe(true);
    expect(device.metrics.ctrlBadCommands).toBe(5);
  });

  it('writes the ack into the first writable byte, however much room the driver gave, with a used length of 1', () => {
    const { driver, device } = setup();
    const q = driver.queue(2);
    const wide = q.add([{ data: [0, 0, 0] }, { data: [0xee, 0xee, 0xee, 0xee], writable: true }]);
    const trailing = q.add([{ data: [0, 0, 1] }, { data: [0xee], writable: true }, { length: 0, writable: true }]);
    const bad = q.add([{ data: [0, 9, 1] }, { data: [0xee, 0xee], writable: true }]);
    driver.kick(2);
    expect(q.used()).toEqual([
      { id: wide, len: 1 },
      { id: trailing, len: 1 },
      { id: bad, len: 1 },
    ]);
    expect(Array.from(q.buffers(wide)[1]!)).toEqual([0, 0xee, 0xee, 0xee]);
    expect(q.buffers(trailing)[1]![0]).toBe(0);
    expect(Array.from(q.buffers(bad)[1]!)).toEqual([1, 0xee]);
    expect(device.ctrlState.promisc).toBe(true);
  });
});

describe('virtio-net: the receive filter the driver programs', () => {
  function command(driver: MockDriver, bytes: number[]): number {
    const q = driver.queue(2);
    const head = q.add([{ data: Uint8Array.from(bytes) }, { length: 1, writable: true }]);
    driver.kick(2);
    return q.buffers(head)[1]![0]!;
  }
  const toDst = (dst: number[]) => {
    const payload = pattern(60);
    payload.set(dst, 0);
    return withHeader(payload);
  };
  const OURS = [...MAC];
  const OTHER = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0x99];
  const LISTED_UC = [0x02, 0, 0, 0, 0, 7];
  const LISTED_MC = [0x33, 0x33, 0, 0, 0, 1];
  const OTHER_MC = [0x01, 0x00, 0x5e, 0, 0, 9];
  const BROADCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

  /** Offers one receive buffer per destination, then one frame to each from the tap. */
  function deliver(tap: FakeTap, driver: MockDriver, dsts: number[][]): void {
    const q = driver.queue(0);
    for (let i = 0; i < dsts.length; i += 1) q.add([{ length: 2048, writable: true }]);
    driver.kick(0);
    for (const d of dsts) tap.queues[0]!.inbound.push(toDst(d));
    tap.pollAll(1);
  }

  it('accepts every frame until the driver programs a filter (promiscuous after reset)', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC | NET_F_CTRL_VQ | NET_F_CTRL_RX) });
    deliver(tap, driver, [OTHER, OTHER_MC, OURS]);
    expect(device.metrics).toMatchObject({ rxFrames: 3, rxFiltered: 0 });
  });

  it('with promiscuous and all-multicast off, passes our MAC, broadcast and the listed addresses, and drops the rest', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC | NET_F_CTRL_VQ | NET_F_CTRL_RX | NET_F_CTRL_MAC_ADDR) });
    expect(command(driver, [0, 0, 0])).toBe(0);
    expect(command(driver, [0, 1, 0])).toBe(0);
    expect(command(driver, [1, 0, 1, 0, 0, 0, ...LISTED_UC, 1, 0, 0, 0, ...LISTED_MC])).toBe(0);
    for (let i = 0; i < 16; i += 1) driver.queue(0).add([{ length: 2048, writable: true }]);
    driver.kick(0);
    for (const dst of [OURS, BROADCAST, LISTED_UC, LISTED_MC]) {
      const before = device.metrics.rxFrames;
      deliver(tap, driver, [dst]);
      expect(device.metrics.rxFrames, dst.join(':')).toBe(before + 1);
    }
    for (const dst of [OTHER, OTHER_MC]) {
      const before = device.metrics.rxFiltered;
      tap.queues[0]!.inbound.push(toDst(dst));
      tap.pollAll(1);
      expect(device.metrics.rxFiltered, dst.join(':')).toBe(before + 1);
    }
    expect(command(driver, [0, 1, 1])).toBe(0); // all-multicast on
    const before = device.metrics.rxFrames;
    tap.queues[0]!.inbound.push(toDst(OTHER_MC), toDst(OTHER));
    tap.pollAll(1);
    expect(device.metrics.rxFrames).toBe(before + 1);
    expect(device.metrics.rxFiltered).toBe(3);
    // A new MAC (MAC_ADDR_SET) is ours from then on.
    expect(command(driver, [1, 1, ...OTHER])).toBe(0);
    tap.queues[0]!.inbound.push(toDst(OTHER), toDst(OURS));
    tap.pollAll(1);
    expect(device.metrics.rxFrames).toBe(before + 2);
    expect(device.metrics.rxFiltered).toBe(4);
  });

  it('forgets the filter at reset: the next driver starts promiscuous', () => {
    const { tap, driver, device } = setup({ features: acceptOnly(NET_F_MAC | NET_F_CTRL_VQ | NET_F_CTRL_RX) });
    expect(command(driver, [0, 0, 0])).toBe(0);
    driver.reset();
    driver.init({ features: acceptOnly(NET_F_MAC | NET_F_CTRL_VQ | NET_F_CTRL_RX) });
    deliver(tap, driver, [OTHER]);
    expect(device.metrics).toMatchObject({ rxFrames: 1, rxFiltered: 0 });
    expect(device.ctrlState.promisc).toBe(true);
  });
});
