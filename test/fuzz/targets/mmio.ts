// Fuzz target: the virtio-mmio register file (MmioTransport) in any state. The input decodes
// into a device (rng or console, with a backend that completes at once) and a sequence of
// accesses: any offset (registers, config space, unaligned, outside the window, not an
// integer), any width, any value (junk above the width, NaN, negative), reads and writes,
// ioeventfd kicks for any queue, kick-watchdog passes, writes into the ring area, and now and
// then a whole driver initialisation so that the live states are reached too. Ring addresses
// come from a dictionary of the layout's GPAs. Oracle: no access throws; reads answer an
// integer of the access width; the fixed registers read their fixed values; every delivery
// is bounded and completes every chain it takes; guards intact.

import { RngDevice } from '../../../lib/devices/rng/index.js';
import { ConsoleDevice } from '../../../lib/devices/console/index.js';
import type { ConsoleBackend } from '../../../lib/devices/console/backends/backend.js';
import * as R from '../../../lib/virtio/mmio-registers.js';
import { DeviceHarness, REGION_BASE, REGION_SIZE, ScriptedEventLoop } from '../device-harness.js';
import { decodeAccess, FuzzInput } from '../decode.js';
import { beginInput, expectOnly, violated } from '../oracle.js';

const RING_VALUES: readonly number[] = [
  REGION_BASE,
  REGION_BASE + 0x1000,
  REGION_BASE + 0x1800,
  REGION_BASE + 0x2000,
  REGION_BASE + 0x4000,
  REGION_BASE + 0x8000,
  REGION_BASE + REGION_SIZE - 16,
  REGION_BASE + REGION_SIZE,
  REGION_BASE - 0x1000,
  REGION_BASE + 2,
  16,
  64,
  256,
];

const FIXED: ReadonlyMap<number, number> = new Map([
  [R.MMIO_MAGIC_VALUE, R.MAGIC_VALUE],
  [R.MMIO_VERSION, R.MMIO_VERSION_2],
  [R.MMIO_VENDOR_ID, R.BAO_VENDOR_ID],
]);

const immediateBackend = (): ConsoleBackend => ({
  kind: 'socket',
  description: 'fuzz backend',
  stats: { discardedBytes: 0 },
  start: () => {},
  write: (_chunk, done) => {
    done(null);
    return true;
  },
  pauseInput: () => {},
  resumeInput: () => {},
  close: async () => {},
});

export function fuzz(data: Uint8Array): void {
  beginInput();
  const input = new FuzzInput(data);
  const loop = new ScriptedEventLoop();
  const time = { now: loop.now, scheduler: loop };
  const device = input.bool()
    ? new RngDevice({ fill: (v) => v.fill(1), queueSize: input.pick([1, 8, 256]), ...time })
    : new ConsoleDevice({ backend: immediateBackend(), queueSize: input.pick([1, 8, 256]), rxBufferLimit: 64, ...time });
  const h = new DeviceHarness(device, input, { maxQueueSize: 256, completesSynchronously: () => true }, loop);
  const t = h.driver.transport;
  if (input.bool()) h.init();
  for (let steps = 0; steps < 96 && !input.done; steps += 1) {
    const op = input.u8();
    if (op < 0xb0) {
      const a = decodeAccess(input, RING_VALUES);
      h.deliver(`${a.op} ${a.offset}/${a.width}`, () => {
        try {
          if (a.op === 'write') {
            t.write(a.offset, a.width, a.value);
            return;
          }
          const v = t.read(a.offset, a.width);
          const limit = a.width === 1 ? 0x100 : a.width === 2 ? 0x1_0000 : 0x1_0000_0000;
          if (!Number.isInteger(v) || v < 0 || v >= limit) violated('READ_VALUE', `read ${a.offset}/${a.width} gave ${v}`);
          const fixed = FIXED.get(a.offset);
          if (fixed !== undefined && a.width === 4 && v !== fixed) violated('READ_VALUE', `register ${a.offset} read ${v}, not ${fixed}`);
        } catch (err) {
          expectOnly(err, []); // a register access never throws at the guest
        }
      });
    } else if (op < 0xf0) {
      if (!h.step(op)) h.deliver('watchdog', () => t.serveUnkicked());
    } else if (op === 0xff) {
      h.init();
    } else {
      const s = t.status;
      // NEEDS_RESET set by the device stays set until the driver resets.
      if ((s & ~0xff) !== 0) violated('STATUS_VALUE', `status ${s}`);
    }
    const is = t.interruptStatus;
    if ((is & ~(R.INTERRUPT_VRING | R.INTERRUPT_CONFIG)) !== 0) violated('INTERRUPT_STATUS', `InterruptStatus ${is}`);
  }
  h.settle();
}
