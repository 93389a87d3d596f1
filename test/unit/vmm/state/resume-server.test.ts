// A device model server started on the state file a killed one left: it resumes the device the
// driver still holds and completes the access the dead process had taken (real state file,
// memory-mapped; the device-model handle is a stand-in).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import type { DeviceModelHandle, IoRequest } from '../../../../lib/dispatcher/index.js';
import { RngDevice } from '../../../../lib/devices/rng/index.js';
import { IoOp } from '../../../../lib/uapi/constants.js';
import { GuestMemory } from '../../../../lib/virtio/guest-memory.js';
import { silentLogger } from '../../../../lib/virtio/logger.js';
import * as R from '../../../../lib/virtio/mmio-registers.js';
import { InterruptCounter, MockDriver } from '../../../../lib/virtio/testing/mock-driver.js';
import { DRIVER_OK } from '../../../../lib/virtio/status.js';
import { DeviceModelServer } from '../../../../lib/vmm/device-model-server.js';
import { DeviceStateFile } from '../../../../lib/vmm/state/device-state-file.js';

const MMIO = 0xa000000;
const SHMEM = 0x4000_0000;
const guest = new Uint8Array(1 << 20); // the frontend's memory outlives every process

class Handle {
  readonly info = { id: 0, shmemAddr: BigInt(SHMEM), shmemSize: BigInt(guest.length), irq: 40 };
  readonly fd = 7;
  readonly completed: { req: IoRequest; value: number | bigint }[] = [];
  irqSignals = 0;
  map() {
    return { bytes: guest, address: 0n };
  }
  createEventFd() {
    return { fd: 9, signal: () => void (this.irqSignals += 1), read: () => null, poll: () => ({ stop() {} }), close() {} };
  }
  assignIrqfd(): void {}
  deassignIrqfd(): void {}
  assignIoeventfd(): void {}
  attach() {
    return { stop: async () => {} };
  }
  complete(req: IoRequest, value: number | bigint = 0): void {
    this.completed.push({ req, value });
  }
  async close(): Promise<void> {}
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function start(dir: string, handle: Handle): { server: DeviceModelServer; file: DeviceStateFile } {
  const file = DeviceStateFile.open(dir, { dmId: 0, mmioAddr: MMIO.toString(16), type: 'rng' });
  const server = DeviceModelServer.start({
    handle: handle as unknown as DeviceModelHandle,
    device: new RngDevice(),
    mmioAddr: MMIO,
    log: silentLogger,
    hotRegisters: false,
    stateFile: file,
  });
  return { server, file };
}

describe('a device model server started where a killed one left off', () => {
  it('resumes the live device and completes the access the dead process took', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-state-'));
    dirs.push(dir);
    guest.fill(0);
    const first = start(dir, new Handle());
    const memory = new GuestMemory(SHMEM, guest);
    const driver = new MockDriver(first.server.transport, memory, new InterruptCounter()).init();
    const q = driver.queue(0);
    q.add([{ length: 16, writable: true }]);
    driver.kick(0);
    expect(q.used()).toHaveLength(1);
    // The dead process had taken a Status read (the native thread recorded it) and never answered.
    const taken: IoRequest = { dmId: 0, addr: MMIO + R.MMIO_STATUS, op: IoOp.Read, value: 0, accessWidth: 4, requestId: 77 };
    first.file.journal.record(taken);
    const pending = q.add([{ length: 24, writable: true }]); // posted while no process ran
    first.file.close(); // the process dies: its lock and mapping go, the file stays

    const handle = new Handle();
    const second = start(dir, handle);
    expect(second.server.transport.status & DRIVER_OK).toBe(DRIVER_OK);
    expect(second.server.transport.stats.resets).toBe(0);
    // Answered from the restored state, by the new process.
    expect(handle.completed).toEqual([{ req: taken, value: driver.status() }]);
    expect(q.used()).toEqual([{ id: pending, len: 24 }]);
    expect(handle.irqSignals).toBeGreaterThan(0);
    // Completed: a third process would find nothing left to complete.
    expect(second.file.journal.takeLeftovers().taken).toEqual([]);
    second.file.close();
  });

  it('a second daemon cannot take a state file a live one holds', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-state-'));
    dirs.push(dir);
    const held = DeviceStateFile.open(dir, { dmId: 0, mmioAddr: MMIO.toString(16), type: 'rng' });
    expect(() => DeviceStateFile.open(dir, { dmId: 0, mmioAddr: MMIO.toString(16), type: 'rng' })).toThrow(/EAGAIN|EACCES/);
    held.close();
  });

  it('a state file for another device is discarded: the device starts from reset', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-state-'));
    dirs.push(dir);
    guest.fill(0);
    const first = start(dir, new Handle());
    new MockDriver(first.server.transport, new GuestMemory(SHMEM, guest), new InterruptCounter()).init();
    first.file.close();
    const other = DeviceStateFile.open(dir, { dmId: 0, mmioAddr: (MMIO + 0x200).toString(16), type: 'rng' });
    const outcome = other.load();
    expect(outcome.kind).toBe('discarded');
    other.close();
    // And the file was formatted afresh: nothing to resume any more.
    const again = DeviceStateFile.open(dir, { dmId: 0, mmioAddr: MMIO.toString(16), type: 'rng' });
    expect(again.load().kind).toBe('none');
    again.close();
  });
});
