// The transport saves its state after every register write that changes it (the state file is
// on the path of each trapped write): a selector written with the value it already holds is not
// saved again, one that changes is; any other write is saved only when it changed a register the
// state holds (a fault flood of writes to read-only registers saves nothing, allocates nothing).

import { describe, expect, it } from 'vitest';

import { RngDevice } from '../../../lib/devices/rng/index.js';
import type { SavedDeviceState } from '../../../lib/virtio/device-state.js';
import { GuestMemory } from '../../../lib/virtio/guest-memory.js';
import * as R from '../../../lib/virtio/mmio-registers.js';
import { MmioTransport } from '../../../lib/virtio/mmio-transport.js';

function transport(): { t: MmioTransport; saves: SavedDeviceState[] } {
  const saves: SavedDeviceState[] = [];
  const t = new MmioTransport(new RngDevice({ queueSize: 64 }), {
    memory: new GuestMemory(0x4000_0000, new Uint8Array(1 << 16)),
    interrupt: { signal: () => undefined },
    state: { save: (s) => saves.push(s) },
  });
  return { t, saves };
}

describe('state saves on selector writes', () => {
  it('skips a selector write that leaves the selector as it was, saves one that changes it', () => {
    const { t, saves } = transport();
    for (const sel of [R.MMIO_QUEUE_SEL, R.MMIO_DEVICE_FEATURES_SEL, R.MMIO_DRIVER_FEATURES_SEL]) {
      const before = saves.length;
      t.write(sel, 4, 0); // 0 after reset: unchanged
      expect(saves.length).toBe(before);
      t.write(sel, 4, 1);
      expect(saves.length).toBe(before + 1);
      t.write(sel, 4, 1);
      expect(saves.length).toBe(before + 1);
      t.write(sel, 4, 0);
      expect(saves.length).toBe(before + 2);
    }
    expect(t.selectors).toEqual({ queueSel: 0, deviceFeaturesSel: 0, driverFeaturesSel: 0 });
  });

  it('saves any other write that changes the state, and only those', () => {
    const { t, saves } = transport();
    t.write(R.MMIO_STATUS, 4, 1); // ACKNOWLEDGE
    expect(saves.length).toBe(1);
    t.write(R.MMIO_STATUS, 4, 1); // the value it holds
    expect(saves.length).toBe(1);
    t.write(R.MMIO_QUEUE_SEL, 2, 1); // a guest fault (width): nothing changed
    t.write(R.MMIO_MAGIC_VALUE, 4, 0); // a read-only register
    t.write(0x0f0, 4, 7); // no register at all
    expect(saves.length).toBe(1);
    t.write(R.MMIO_STATUS, 4, 3); // DRIVER
    t.write(R.MMIO_DRIVER_FEATURES, 4, 0); // features: saved whatever the value
    expect(saves.length).toBe(3);
    expect(saves.at(-1)?.transport.status).toBe(3);
  });
});
