// Fuzz target: virtio-rng request handling. A RngDevice behind the virtio-mmio transport and a
// MockDriver; the input decodes into the driver's setup (features, queue size, the device's
// per-request cap) and a script of ring writes, chains and kicks (device-harness.ts). Besides
// the shared oracle: entropy goes only into views inside the region, never more than the cap
// per request, and the device's counters agree with what it filled.

import { RngDevice } from '../../../lib/devices/rng/index.js';
import { DeviceHarness, ScriptedEventLoop } from '../device-harness.js';
import { FuzzInput } from '../decode.js';
import { beginInput, violated } from '../oracle.js';

export function fuzz(data: Uint8Array): void {
  beginInput();
  const input = new FuzzInput(data);
  const cap = input.pick([1, 16, 512, 4096, 64 * 1024]);
  const maxQueue = input.pick([1, 2, 4, 16, 64, 256]);
  let filled = 0;
  let harness: DeviceHarness | undefined;
  const loop = new ScriptedEventLoop();
  const device = new RngDevice({
    now: loop.now,
    scheduler: loop,
    ...(input.bool() ? { bytesPerSecond: input.pick([64, 4096, 1 << 20]), burstBytes: input.pick([1, 4096, 1 << 20]) } : {}),
    maxBytesPerRequest: cap,
    queueSize: maxQueue,
    fill: (view) => {
      harness?.driver.memory && checkInRegion(harness, view);
      if (view.byteLength > cap) violated('RNG_CAP', `filled ${view.byteLength} bytes at once; the cap is ${cap}`);
      view.fill(0x5a);
      filled += view.byteLength;
    },
  });
  harness = new DeviceHarness(device, input, { maxQueueSize: 256, completesSynchronously: () => true }, loop);
  harness.init();
  for (let steps = 0; steps < 64 && !input.done; steps += 1) {
    const op = input.u8();
    if (!harness.step(op)) {
      // rng has no steps of its own: spend the byte on a kick through the register.
      harness.deliver('kick', () => harness!.driver.kick(0));
    }
  }
  harness.settle();
  const m = device.metrics;
  if (m.bytes !== filled) violated('RNG_COUNTERS', `metrics say ${m.bytes} bytes, ${filled} were filled`);
  if (m.bytes > m.requests * cap) violated('RNG_CAP', `${m.bytes} bytes for ${m.requests} requests capped at ${cap}`);
}

function checkInRegion(h: DeviceHarness, view: Uint8Array): void {
  const region = h.driver.memory.bytes;
  const start = view.byteOffset - region.byteOffset;
  if (view.buffer !== region.buffer || start < 0 || start + view.byteLength > region.byteLength) {
    violated('VIEW_OUTSIDE_REGION', `entropy written to [${start}, +${view.byteLength}) outside the region`);
  }
}
