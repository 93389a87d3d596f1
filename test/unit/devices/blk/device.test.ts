import { describe, expect, it } from 'vitest';

import { BlkDevice, type BlkDeviceOptions } from '../../../../lib/devices/blk/device.js';
import {
  BLOCK_DEVICE_ID,
  CONFIG_BLK_SIZE,
  CONFIG_CAPACITY,
  CONFIG_MAX_DISCARD_SEG,
  CONFIG_NUM_QUEUES,
  CONFIG_PHYSICAL_BLOCK_EXP,
  CONFIG_SEG_MAX,
  CONFIG_SIZE_MAX,
  CONFIG_WRITE_ZEROES_MAY_UNMAP,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
} from '../../../../lib/devices/blk/config.js';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../../lib/virtio/descriptor-chain.js';
import { RING_EVENT_IDX, RING_INDIRECT_DESC } from '../../../../lib/virtio/features.js';
import { DEVICE_NEEDS_RESET } from '../../../../lib/virtio/status.js';
import { MockDriver } from '../../../../lib/virtio/testing/mock-driver.js';
import { addRead, addWrite, errno, header, ManualEngine, pattern, statusOf, turn } from './helpers.js';

const MiB = 1 << 20;

function setup(options: Partial<BlkDeviceOptions> = {}, init: Parameters<MockDriver['init']>[0] = {}) {
  const engine = (options.engine as ManualEngine | undefined) ?? new ManualEngine();
  const device = new BlkDevice({ capacityBytes: 8 * MiB, serial: 'disk-serial-1', queueSize: 128, ...options, engine });
  const driver = MockDriver.create(device, { size: 4 * MiB }).init(init);
  return { engine, device, driver, q: driver.queue(0) };
}

describe('virtio-blk identity and configuration space (virtio 1.2 §5.2.4)', () => {
  it('is device 2 and offers the block features, EVENT_IDX and INDIRECT_DESC', async () => {
    const { driver } = setup();
    expect(driver.probe().deviceId).toBe(BLOCK_DEVICE_ID);
    const offered = driver.deviceFeatures();
    for (const bit of [VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_TOPOLOGY, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_MQ, RING_EVENT_IDX, RING_INDIRECT_DESC]) {
      expect(offered & bit).toBe(bit);
    }
    expect(offered & VIRTIO_BLK_F_RO).toBe(0n);
    expect(offered & VIRTIO_BLK_F_DISCARD).toBe(0n);
  });

  it('shows the capacity in 512-byte sectors (a 64-bit field read as two 32-bit halves), the limits and the queue count', async () => {
    const { driver } = setup({ capacityBytes: 5 * 2 ** 32 * 512 + 1024 + 100, queues: 3, physicalBlockSize: 4096 });
    expect(driver.readConfig(CONFIG_CAPACITY)).toBe(2); // 1124 bytes past 5 * 2^32 sectors: 2 whole sectors
    expect(driver.readConfig(CONFIG_CAPACITY + 4)).toBe(5);
    expect(driver.readConfig(CONFIG_SEG_MAX)).toBe(126);
    expect(driver.readConfig(CONFIG_SIZE_MAX)).toBe(MiB);
    expect(driver.readConfig(CONFIG_BLK_SIZE)).toBe(512);
    expect(driver.readConfig(CONFIG_PHYSICAL_BLOCK_EXP, 1)).toBe(3);
    expect(driver.readConfig(CONFIG_NUM_QUEUES, 2)).toBe(3);
  });

  it('offers RO for a read-only disk, FLUSH only when advertised, DISCARD and WRITE_ZEROES when enabled', async () => {
    expect(setup({ readOnly: true }).driver.deviceFeatures() & VIRTIO_BLK_F_RO).toBe(VIRTIO_BLK_F_RO);
    expect(setup({ flush: false }).driver.deviceFeatures() & VIRTIO_BLK_F_FLUSH).toBe(0n);
    const { driver } = setup({ discard: true });
    expect(driver.deviceFeatures() & (VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES)).toBe(VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES);
    expect(driver.readConfig(CONFIG_MAX_DISCARD_SEG)).toBe(1);
    expect(driver.readConfig(CONFIG_WRITE_ZEROES_MAY_UNMAP, 1)).toBe(1);
    // A read-only disk never offers to discard.
    expect(setup({ readOnly: true, discard: true }).driver.deviceFeatures() & VIRTIO_BLK_F_DISCARD).toBe(0n);
  });

  it('offers one queue per configured queue, each of the configured size', async () => {
    const device = new BlkDevice({ engine: new ManualEngine(), capacityBytes: MiB, serial: 's', queues: 4, queueSize: 64 });
    expect(device.queueMaxSizes).toEqual([64, 64, 64, 64]);
  });
});

describe('virtio-blk reads and writes', () => {
  it('reads into the guest buffer in place and returns it with the data length + 1', async () => {
    const { engine, driver, q } = setup();
    const head = addRead(q, 8, 4096);
    driver.kick(0);
    expect(engine.ops).toHaveLength(1);
    const op = engine.ops[0]!;
    expect(op.op).toBe('read');
    expect(op.offset).toBe(8 * 512);
    // Views of the guest memory itself, not copies.
    expect(op.views.every((v) => v.buffer === driver.memory.bytes.buffer)).toBe(true);
    expect(op.views[0]).toHaveLength(4096);
    expect(q.used()).toEqual([]);
    op.complete();
    await turn();
    expect(q.used()).toEqual([{ id: head, len: 4097 }]);
    expect(statusOf(q, head)).toBe(VIRTIO_BLK_S_OK);
    expect(q.buffers(head)[1]!.every((b) => b === 0x5a)).toBe(true);
    expect(driver.guardsIntact()).toBe(true);
  });

  it('writes from the guest buffers in place, scatter-gather, and completes with length 1', async () => {
    const { engine, driver, q } = setup();
    const parts = [pattern(512, 1), pattern(1024, 2)];
    const head = addWrite(q, 3, parts);
    driver.kick(0);
    const op = engine.ops[0]!;
    expect(op.op).toBe('write');
    expect(op.offset).toBe(3 * 512);
    expect(op.views.map((v) => v.length)).toEqual([512, 1024]);
    expect(op.views.every((v) => v.buffer === driver.memory.bytes.buffer)).toBe(true);
    expect(Array.from(op.views[1]!)).toEqual(Array.from(parts[1]!));
    op.complete();
    await turn();
    expect(q.used()).toEqual([{ id: head, len: 1 }]);
    expect(statusOf(q, head)).toBe(VIRTIO_BLK_S_OK);
  });

  it('keeps many requests in flight, their I/O finishing in any order, and gives them back in the order it took them', async () => {
    const { engine, driver, q } = setup();
    const heads = [0, 1, 2, 3].map((i) => addRead(q, i * 8, 4096));
    driver.kick(0);
    expect(engine.ops).toHaveLength(4);
    const before = driver.interrupts.count;
    engine.ops[2]!.complete();
    await turn();
    // Finished, but held behind 0 and 1: a daemon killed now leaves avail[used..] to redo.
    expect(q.used()).toEqual([]);
    engine.ops[0]!.complete();
    await turn();
    expect(q.used()).toEqual([{ id: heads[0], len: 4097 }]);
    expect(driver.interrupts.count).toBe(before + 1);
    engine.ops[3]!.complete();
    engine.ops[1]!.complete();
    await turn();
    expect(q.used().map((u) => u.id)).toEqual([heads[1], heads[2], heads[3]]);
  });

  it('serves every queue at once (MQ)', async () => {
    const { engine, driver } = setup({ queues: 3 });
    const heads = [0, 1, 2].map((i) => addRead(driver.queue(i), i, 512));
    for (const i of [0, 1, 2]) driver.kick(i);
    expect(engine.ops).toHaveLength(3);
    engine.ops.slice().reverse().forEach((op) => op.complete());
    await turn();
    [0, 1, 2].forEach((i) => expect(driver.queue(i).used()).toEqual([{ id: heads[i], len: 513 }]));
  });

  it('reads a request framed in an indirect table, and one whose header spans two descriptors', async () => {
    const { engine, driver, q } = setup();
    const a = addRead(q, 1, 512, { indirect: true });
    const h = header(0, 2);
    const b = q.add([{ data: h.subarray(0, 5) }, { data: h.subarray(5) }, { length: 1024, writable: true }, { length: 1, writable: true }]);
    driver.kick(0);
    expect(engine.ops.map((o) => o.offset)).toEqual([512, 1024]);
    engine.ops.forEach((o) => o.complete());
    await turn();
    expect(q.used()).toEqual([
      { id: a, len: 513 },
      { id: b, len: 1025 },
    ]);
  });

  it('takes the status from the last writable byte even when it shares a descriptor with read data', async () => {
    const { engine, driver, q } = setup();
    const head = q.add([{ data: header(0, 0) }, { length: 513, writable: true }]);
    driver.kick(0);
    expect(engine.ops[0]!.views.map((v) => v.length)).toEqual([512]);
    engine.ops[0]!.complete();
    await turn();
    expect(q.used()).toEqual([{ id: head, len: 513 }]);
    expect(q.buffers(head)[1]![512]).toBe(VIRTIO_BLK_S_OK);
  });

  it('answers an I/O failure with IOERR and counts it by errno, then goes on', async () => {
    const { engine, device, driver, q } = setup();
    const bad = addRead(q, 0, 512);
    const good = addRead(q, 1, 512);
    driver.kick(0);
    engine.ops[0]!.complete(errno('EIO'));
    engine.ops[1]!.complete();
    await turn();
    expect(q.used()).toEqual([
      { id: bad, len: 1 },
      { id: good, len: 513 },
    ]);
    expect(statusOf(q, bad)).toBe(VIRTIO_BLK_S_IOERR);
    expect(device.metrics.ioErrors).toBe(1);
    expect(device.metrics.ioErrorsByCode).toEqual({ EIO: 1 });
    expect(device.metrics.snapshot().ioErrors_EIO).toBe(1);
  });
});

describe('virtio-blk durability', () => {
  it('with FLUSH negotiated, writes go to the cache and a flush syncs', async () => {
    const { engine, driver, q } = setup();
    const w = addWrite(q, 0, pattern(512, 1));
    const f = q.add([{ data: header(4) }, { length: 1, writable: true }]);
    driver.kick(0);
    expect(engine.ops.map((o) => [o.op, o.durable])).toEqual([
      ['write', false],
      ['flush', false],
    ]);
    engine.ops[0]!.complete();
    engine.ops[1]!.complete();
    await turn();
    expect(q.used().map((u) => u.id)).toEqual([w, f]);
  });

  it('without FLUSH offered or negotiated, every write is written through', async () => {
    const offered = setup({ flush: false });
    addWrite(offered.q, 0, pattern(512, 1));
    offered.driver.kick(0);
    expect(offered.engine.ops[0]!.durable).toBe(true);

    const declined = setup({}, { features: (o) => o & ~VIRTIO_BLK_F_FLUSH });
    addWrite(declined.q, 0, pattern(512, 1));
    declined.driver.kick(0);
    expect(declined.engine.ops[0]!.durable).toBe(true);
  });

  it('cache writethrough writes through even with FLUSH; cache unsafe never syncs', async () => {
    const wt = setup({ cache: 'writethrough' });
    addWrite(wt.q, 0, pattern(512, 1));
    wt.driver.kick(0);
    expect(wt.engine.ops[0]!.durable).toBe(true);

    const unsafe = setup({ cache: 'unsafe', flush: false });
    const w = addWrite(unsafe.q, 0, pattern(512, 1));
    const f = unsafe.q.add([{ data: header(4) }, { length: 1, writable: true }]);
    unsafe.driver.kick(0);
    expect(unsafe.engine.ops.map((o) => [o.op, o.durable])).toEqual([['write', false]]);
    unsafe.engine.ops[0]!.complete();
    await turn();
    expect(unsafe.q.used().map((u) => u.id)).toEqual([w, f]); // the flush, answered at once, after the write
  });
});

describe('virtio-blk GET_ID, unknown types, read-only', () => {
  it('answers GET_ID with the serial, NUL-padded to 20 bytes', async () => {
    const { driver, q, device } = setup();
    const head = q.add([{ data: header(8) }, { length: 20, writable: true }, { length: 1, writable: true }]);
    driver.kick(0);
    expect(q.used()).toEqual([{ id: head, len: 21 }]);
    const id = Buffer.from(q.buffers(head)[1]!);
    expect(id.subarray(0, 13).toString()).toBe('disk-serial-1');
    expect(id.subarray(13).every((b) => b === 0)).toBe(true);
    expect(device.metrics.getIds).toBe(1);
  });

  it('sends at most 20 serial bytes and no more than the buffer holds', async () => {
    const { driver, q } = setup({ serial: 'x'.repeat(40) });
    const head = q.add([{ data: header(8) }, { length: 8, writable: true }, { length: 1, writable: true }]);
    driver.kick(0);
    expect(q.used()).toEqual([{ id: head, len: 9 }]);
  });

  it('answers an unknown request type UNSUPP and keeps serving the queue', async () => {
    const { engine, driver, q, device } = setup();
    const odd = q.add([{ data: header(0x77) }, { length: 1, writable: true }]);
    const next = addRead(q, 0, 512);
    driver.kick(0);
    expect(q.used()).toEqual([{ id: odd, len: 1 }]);
    expect(statusOf(q, odd)).toBe(VIRTIO_BLK_S_UNSUPP);
    engine.ops[0]!.complete();
    await turn();
    expect(q.used()).toEqual([{ id: next, len: 513 }]);
    expect(device.metrics.unsupported).toBe(1);
  });

  it('refuses a write to a read-only disk with IOERR, without touching the backing', async () => {
    const { engine, driver, q, device } = setup({ readOnly: true });
    const head = addWrite(q, 0, pattern(512, 3));
    driver.kick(0);
    expect(engine.ops).toHaveLength(0);
    expect(statusOf(q, head)).toBe(VIRTIO_BLK_S_IOERR);
    expect(device.metrics.malformedByKind.readOnly).toBe(1);
  });
});

describe('virtio-blk malformed requests: an error status, nothing touched outside the chain, the queue goes on', () => {
  const cases: [string, (q: ReturnType<typeof setup>['q']) => number, 'IOERR' | 'unused'][] = [
    ['a header shorter than 16 bytes', (q) => q.add([{ data: header(0).subarray(0, 12) }, { length: 1, writable: true }]), 'IOERR'],
    ['no writable byte for the status', (q) => q.add([{ data: header(0) }, { data: pattern(512, 1) }]), 'unused'],
    ['a read whose length is not a multiple of 512', (q) => addRead(q, 0, 700), 'IOERR'],
    ['a write whose length is not a multiple of 512', (q) => addWrite(q, 0, pattern(100, 1)), 'IOERR'],
    ['a read past the capacity', (q) => addRead(q, 8 * 2048 - 1, 1024), 'IOERR'],
    ['a sector that overflows 64 bits', (q) => q.add([{ data: header(0, 0xffff_ffff_ffff_fff0n) }, { length: 8192, writable: true }, { length: 1, writable: true }]), 'IOERR'],
    ['a read with readable data after the header', (q) => q.add([{ data: header(0) }, { data: pattern(512, 1) }, { length: 513, writable: true }]), 'IOERR'],
    ['a write with writable data before the status', (q) => q.add([{ data: header(1) }, { data: pattern(512, 1) }, { length: 513, writable: true }]), 'IOERR'],
    ['GET_ID with readable data', (q) => q.add([{ data: header(8) }, { data: pattern(4, 1) }, { length: 21, writable: true }]), 'IOERR'],
    ['DISCARD when it was not negotiated', (q) => q.add([{ data: header(11) }, { data: new Uint8Array(16) }, { length: 1, writable: true }]), 'IOERR'],
  ];

  for (const [name, add, expected] of cases) {
    it(name, async () => {
      const { engine, driver, q, device } = setup();
      const bad = add(q);
      const good = addRead(q, 1, 512);
      driver.kick(0);
      const ops = engine.ops.filter((o) => o.offset === 512);
      expect(ops).toHaveLength(1);
      ops[0]!.complete();
      await turn();
      const used = q.used();
      const badUsed = used.find((u) => u.id === bad)!;
      if (expected === 'unused') {
        expect(badUsed.len).toBe(0);
        expect(device.metrics.unanswerable).toBe(1);
      } else {
        expect(badUsed.len).toBe(1);
        // DISCARD not negotiated is UNSUPP; every other case here is IOERR.
        expect(statusOf(q, bad)).toBe(name.startsWith('DISCARD') ? VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_IOERR);
      }
      expect(used.find((u) => u.id === good)).toEqual({ id: good, len: 513 });
      expect(driver.status() & DEVICE_NEEDS_RESET).toBe(0);
      expect(driver.guardsIntact()).toBe(true);
    });
  }

  it('refuses more data segments than SEG_MAX and segments larger than SIZE_MAX', async () => {
    const { engine, driver, q, device } = setup({ segMax: 2, sizeMax: 4096 });
    const many = q.add([{ data: header(0) }, ...[1, 2, 3].map(() => ({ length: 512, writable: true })), { length: 1, writable: true }]);
    const large = addRead(q, 0, 8192);
    driver.kick(0);
    expect(engine.ops).toHaveLength(0);
    expect(statusOf(q, many)).toBe(VIRTIO_BLK_S_IOERR);
    expect(statusOf(q, large)).toBe(VIRTIO_BLK_S_IOERR);
    expect(device.metrics.malformedByKind).toMatchObject({ tooManySegments: 1, segmentTooLarge: 1 });
  });

  it('takes a malformed descriptor chain for corrupt rings: NEEDS_RESET, nothing used, no I/O', async () => {
    const { engine, driver, q, device } = setup();
    q.writeDescriptor(127, { addr: 0x10, len: 16, flags: VIRTQ_DESC_F_NEXT, next: 126 });
    q.writeDescriptor(126, { addr: 0x10, len: 1, flags: VIRTQ_DESC_F_WRITE });
    q.pushAvail(127);
    addRead(q, 0, 512);
    driver.kick(0);
    expect(driver.status() & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(engine.ops).toHaveLength(0);
    expect(q.usedIdx()).toBe(0);
    expect(device.metrics.invalidChains).toBe(1);
  });
});

describe('virtio-blk hostile requests: answered, nothing outside the chain written, the queue goes on', () => {
  function seg(sector: bigint, sectors: number, flags = 0): Uint8Array {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setBigUint64(0, sector, true);
    v.setUint32(8, sectors, true);
    v.setUint32(12, flags, true);
    return b;
  }
  const STATUS = { length: 1, writable: true } as const;
  const cases: [string, Partial<BlkDeviceOptions>, (q: ReturnType<typeof setup>['q']) => number, number, string | undefined][] = [
    ['a read of the last sector plus one', {}, (q) => addRead(q, 8 * 2048, 512), VIRTIO_BLK_S_IOERR, 'outOfRange'],
    ['a sector with bits above 2^53', {}, (q) => q.add([{ data: header(0, 1n << 60n) }, { length: 512, writable: true }, STATUS]), VIRTIO_BLK_S_IOERR, 'outOfRange'],
    ['a write longer than the whole disk', { capacityBytes: 4096 }, (q) => addWrite(q, 0, pattern(8192, 1)), VIRTIO_BLK_S_IOERR, 'outOfRange'],
    ['a read one sector long starting inside, ending past the capacity', { capacityBytes: 4096 }, (q) => addRead(q, 7, 1024), VIRTIO_BLK_S_IOERR, 'outOfRange'],
    ['a header in a device-writable buffer', {}, (q) => q.add([{ length: 16, writable: true }, { length: 512, writable: true }, STATUS]), VIRTIO_BLK_S_IOERR, 'shortHeader'],
    ['a header split 8 + 7 bytes (15 readable)', {}, (q) => q.add([{ data: header(0).subarray(0, 8) }, { data: header(0).subarray(8, 15) }, STATUS]), VIRTIO_BLK_S_IOERR, 'shortHeader'],
    ['a discard past the capacity', { discard: true }, (q) => q.add([{ data: header(11) }, { data: seg(8n * 2048n, 1) }, STATUS]), VIRTIO_BLK_S_IOERR, 'outOfRange'],
    ['a discard whose sector + count overflows 64 bits', { discard: true }, (q) => q.add([{ data: header(11) }, { data: seg(0xffff_ffff_ffff_ffffn, 2) }, STATUS]), VIRTIO_BLK_S_IOERR, 'outOfRange'],
    ['a discard with more segments than max_discard_seg', { discard: true }, (q) => q.add([{ data: header(11) }, { data: seg(0n, 1) }, { data: seg(8n, 1) }, { data: seg(16n, 1) }, STATUS]), VIRTIO_BLK_S_IOERR, 'tooManySegments'],
    ['a discard with a partial segment (20 bytes)', { discard: true }, (q) => q.add([{ data: header(11) }, { data: new Uint8Array(20) }, STATUS]), VIRTIO_BLK_S_IOERR, 'badSegments'],
    ['a discard without any segment', { discard: true }, (q) => q.add([{ data: header(11) }, STATUS]), VIRTIO_BLK_S_IOERR, 'badSegments'],
    ['write zeroes with an unknown flag', { discard: true }, (q) => q.add([{ data: header(13) }, { data: seg(0n, 1, 0x80) }, STATUS]), VIRTIO_BLK_S_UNSUPP, undefined],
    ['a discard on a read-only disk (not offered, so UNSUPP)', { readOnly: true, discard: true }, (q) => q.add([{ data: header(11) }, { data: seg(0n, 1) }, STATUS]), VIRTIO_BLK_S_UNSUPP, undefined],
  ];

  for (const [name, options, add, status, kind] of cases) {
    it(name, async () => {
      const { engine, driver, q, device } = setup(options);
      const bad = add(q);
      const before = q.buffers(bad).map((b) => Array.from(b));
      const good = addRead(q, 1, 512);
      driver.kick(0);
      expect(engine.ops.filter((o) => o.offset !== 512)).toHaveLength(0);
      engine.ops.find((o) => o.offset === 512)!.complete();
      await turn();
      const used = q.used();
      expect(used.find((u) => u.id === bad)).toEqual({ id: bad, len: 1 });
      expect(statusOf(q, bad)).toBe(status);
      // Only the status byte changed: every other byte of the chain is as the driver left it.
      const after = q.buffers(bad).map((b) => Array.from(b));
      after[after.length - 1]!.pop();
      before[before.length - 1]!.pop();
      expect(after).toEqual(before);
      if (kind !== undefined) expect(device.metrics.malformedByKind[kind as keyof typeof device.metrics.malformedByKind]).toBe(1);
      expect(used.find((u) => u.id === good)).toEqual({ id: good, len: 513 });
      expect(driver.status() & DEVICE_NEEDS_RESET).toBe(0);
      expect(driver.guardsIntact()).toBe(true);
    });
  }

  it('a status byte in a device-readable buffer after the writable data: a malformed chain, NEEDS_RESET, nothing used or written', async () => {
    const { engine, driver, q, device } = setup();
    const head = q.add([{ data: header(0) }, { length: 512, writable: true }, { data: [0xee] }]);
    const before = q.buffers(head).map((b) => Array.from(b));
    driver.kick(0);
    expect(engine.ops).toHaveLength(0);
    expect(driver.status() & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(q.usedIdx()).toBe(0);
    expect(q.buffers(head).map((b) => Array.from(b))).toEqual(before);
    expect(device.metrics.invalidChains).toBe(1);
  });

  it('a chain with no writable byte at all is returned unused, nothing written', async () => {
    const { driver, q, device } = setup();
    const head = q.add([{ data: header(8) }, { data: [1, 2, 3] }]);
    driver.kick(0);
    expect(q.used()).toEqual([{ id: head, len: 0 }]);
    expect(Array.from(q.buffers(head)[1]!)).toEqual([1, 2, 3]);
    expect(device.metrics.unanswerable).toBe(1);
  });

  it('GET_ID into buffers too small for the serial: fills what there is, never more', async () => {
    const { driver, q } = setup();
    const none = q.add([{ data: header(8) }, STATUS]);
    const one = q.add([{ data: header(8) }, { length: 1, writable: true }, STATUS]);
    const split = q.add([{ data: header(8) }, { length: 3, writable: true }, { length: 2, writable: true }, STATUS]);
    driver.kick(0);
    expect(q.used()).toEqual([
      { id: none, len: 1 },
      { id: one, len: 2 },
      { id: split, len: 6 },
    ]);
    expect([none, one, split].map((h) => statusOf(q, h))).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
    expect(Buffer.from(q.buffers(one)[1]!).toString()).toBe('d');
    expect(Buffer.from([...q.buffers(split)[1]!, ...q.buffers(split)[2]!]).toString()).toBe('disk-');
    expect(driver.guardsIntact()).toBe(true);
  });
});

describe('virtio-blk DISCARD and WRITE_ZEROES', () => {
  function segment(sector: number, sectors: number, flags = 0): Uint8Array {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setBigUint64(0, BigInt(sector), true);
    v.setUint32(8, sectors, true);
    v.setUint32(12, flags, true);
    return b;
  }

  it('discards and zeroes the ranges given, honouring UNMAP', async () => {
    const { engine, driver, q } = setup({ discard: true });
    const d = q.add([{ data: header(11) }, { data: segment(4, 8) }, { length: 1, writable: true }]);
    const z = q.add([{ data: header(13) }, { data: segment(16, 2, 1) }, { length: 1, writable: true }]);
    const z2 = q.add([{ data: header(13) }, { data: segment(20, 1, 0) }, { length: 1, writable: true }]);
    driver.kick(0);
    expect(engine.ops.map((o) => [o.op, o.offset, o.length, o.unmap])).toEqual([
      ['discard', 2048, 4096, false],
      ['writeZeroes', 8192, 1024, true],
      ['writeZeroes', 10240, 512, false],
    ]);
    engine.ops.forEach((o) => o.complete());
    await turn();
    expect(q.used().map((u) => u.id)).toEqual([d, z, z2]);
    expect([d, z, z2].map((h) => statusOf(q, h))).toEqual([0, 0, 0]);
  });

  it('refuses UNMAP on a discard (UNSUPP), ranges past the capacity and too many segments (IOERR)', async () => {
    const { engine, driver, q } = setup({ discard: true });
    const unmap = q.add([{ data: header(11) }, { data: segment(0, 1, 1) }, { length: 1, writable: true }]);
    const past = q.add([{ data: header(13) }, { data: segment(8 * 2048, 1) }, { length: 1, writable: true }]);
    const two = q.add([{ data: header(11) }, { data: new Uint8Array([...segment(0, 1), ...segment(1, 1)]) }, { length: 1, writable: true }]);
    driver.kick(0);
    expect(engine.ops).toHaveLength(0);
    expect([unmap, past, two].map((h) => statusOf(q, h))).toEqual([VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_IOERR]);
  });
});

describe('virtio-blk fairness, reset and NEEDS_RESET', () => {
  it('starts at most 64 chains per turn, then yields and serves the rest', async () => {
    const { engine, driver, q, device } = setup();
    for (let i = 0; i < 100; i += 1) q.add([{ data: header(4) }, { length: 1, writable: true }], { indirect: true });
    driver.kick(0);
    expect(engine.ops).toHaveLength(64);
    expect(device.metrics.queueYields).toBe(1);
    await turn();
    expect(engine.ops).toHaveLength(100);
  });

  it('waits for the I/O in flight on reset, and writes nothing into the forgotten ring', async () => {
    const { engine, driver, q, device } = setup();
    const head = addRead(q, 0, 512);
    driver.kick(0);
    const statusBefore = statusOf(q, head);
    const resetDone = device.reset();
    expect(resetDone).toBeInstanceOf(Promise);
    let resolved = false;
    void (resetDone as Promise<void>).then(() => {
      resolved = true;
    });
    await turn();
    expect(resolved).toBe(false);
    engine.ops[0]!.complete();
    await turn();
    expect(resolved).toBe(true);
    expect(q.usedIdx()).toBe(0);
    expect(statusOf(q, head)).toBe(statusBefore);
    expect(device.metrics.completionsAfterReset).toBe(1);
  });

  it('serves again after a driver reset and re-initialisation while I/O was in flight', async () => {
    const { engine, driver, device } = setup();
    addRead(driver.queue(0), 0, 512);
    driver.kick(0);
    // The reset is held until the request in flight is done (it is dropped, not completed).
    const reset = driver.reset();
    engine.ops[0]!.complete();
    await reset;
    driver.init();
    const q = driver.queue(0);
    const head = addRead(q, 2, 512);
    driver.kick(0);
    engine.ops[1]!.complete();
    await turn();
    expect(q.used()).toEqual([{ id: head, len: 513 }]);
    expect(device.metrics.activations).toBe(2);
  });

  it('writes no completion into a ring that went corrupt (NEEDS_RESET) while I/O was in flight', async () => {
    const { engine, driver, q, device } = setup();
    addRead(q, 0, 512);
    driver.kick(0);
    q.setAvailIdx(q.size + 5);
    driver.kick(0);
    expect(driver.status() & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    engine.ops[0]!.complete();
    await turn();
    expect(q.usedIdx()).toBe(0);
    expect(device.metrics.completionsAfterReset).toBe(1);
  });

  it('close() drains the I/O in flight before closing the engine', async () => {
    const { engine, driver, q, device } = setup();
    addWrite(q, 0, pattern(512, 1));
    driver.kick(0);
    let closed = false;
    const closing = device.close().then(() => {
      closed = true;
    });
    await turn();
    expect(closed).toBe(false);
    engine.ops[0]!.complete();
    await closing;
    expect(closed).toBe(true);
  });
});
