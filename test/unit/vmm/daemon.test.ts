// The daemon lifecycle against an injected DeviceModelFactory: all-or-nothing start, serving
// until the signal, draining and closing within a timeout.

import { describe, expect, it } from 'vitest';

import type { VirtioDevice } from '../../../lib/virtio/device.js';
import { silentLogger } from '../../../lib/virtio/logger.js';
import { validateConfig } from '../../../lib/vmm/config/index.js';
import type { DaemonConfig, DeviceConfig } from '../../../lib/vmm/config/index.js';
import { Daemon, serve } from '../../../lib/vmm/daemon.js';
import type { BuiltDevice, DeviceBuilders } from '../../../lib/vmm/device-builder.js';
import type { DeviceModelFactory, OpenDeviceModelRequest, ServedDevice } from '../../../lib/vmm/device-model.js';
import { DeviceOpenError, DeviceStoppedError, ShutdownTimeoutError } from '../../../lib/vmm/errors.js';

const config: DaemonConfig = validateConfig({
  devices: [
    { id: 0, type: 'console', mmio_addr: 0xa003e00, backend: 'stdio' },
    { id: 1, type: 'rng', mmio_addr: 0xa003c00 },
    { id: 2, type: 'rng', mmio_addr: 0xa003a00 },
  ],
  shutdown_timeout_ms: 200,
}).config;

function fakeDevice(name: string): VirtioDevice {
  return { deviceId: 4, name, features: 0n, queueMaxSizes: [8], config: new Uint8Array(0), activate() {}, queueNotify() {}, reset() {} };
}

/** Records every open and close, in order, in `events`. */
class Harness {
  readonly events: string[] = [];
  failOpenAt: number | undefined;
  failOpenWith: Error = Object.assign(new Error('no such device model'), { code: 'ENOENT', field: 'id' });
  failBuildAt: number | undefined;
  closeDelayMs = 0;
  failCompleteAt: number | undefined;
  readonly stopped = new Map<number, { resolve: () => void; reject: (e: unknown) => void }>();

  readonly builders: DeviceBuilders = {
    console: (entry) => this.build(entry),
    rng: (entry) => this.build(entry),
    block: (entry) => this.build(entry),
    net: (entry) => this.build(entry),
  };

  readonly factory: DeviceModelFactory = {
    open: async (req: OpenDeviceModelRequest): Promise<ServedDevice> => {
      const id = req.entry.id;
      if (this.failOpenAt === id) {
        this.events.push(`open-failed ${id}`);
        throw this.failOpenWith;
      }
      this.events.push(`open ${id}`);
      const stopped = new Promise<void>((resolve, reject) => this.stopped.set(id, { resolve, reject }));
      return {
        stopped,
        completePending: () => {
          if (this.failCompleteAt === id) throw new Error('handle gone');
          this.events.push(`complete-pending ${id}`);
          return id + 1;
        },
        close: async () => {
          this.events.push(`drain ${id}`);
          if (this.closeDelayMs > 0) await new Promise((r) => setTimeout(r, this.closeDelayMs));
        },
      };
    },
    close: async () => {
      this.events.push('factory closed');
    },
  };

  private async build(entry: DeviceConfig): Promise<BuiltDevice> {
    if (this.failBuildAt === entry.id) {
      this.events.push(`build-failed ${entry.id}`);
      throw Object.assign(new Error('socket path taken'), { field: 'socket_path' });
    }
    this.events.push(`build ${entry.id}`);
    return {
      device: fakeDevice(entry.type),
      close: async () => {
        this.events.push(`close ${entry.id}`);
      },
    };
  }

  options() {
    return { config, factory: this.factory, builders: this.builders, log: silentLogger };
  }
}

describe('Daemon.start', () => {
  it('builds each device and opens its device model, in config order', async () => {
    const h = new Harness();
    const daemon = await Daemon.start(h.options());
    expect(h.events).toEqual(['build 0', 'open 0', 'build 1', 'open 1', 'build 2', 'open 2']);
    expect(daemon.devices.map((d) => d.id)).toEqual([0, 1, 2]);
    await daemon.stop();
  });

  it('when the 2nd device model fails to open, closes the 1st and the 2nd device, and names the device and field', async () => {
    const h = new Harness();
    h.failOpenAt = 1;
    const err = await Daemon.start(h.options()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceOpenError);
    expect(err).toMatchObject({ code: 'DEVICE_OPEN_FAILED', field: 'id', device: { index: 1, id: 1, type: 'rng' } });
    expect((err as Error).message).toBe('devices[1] (rng, id 1).id: cannot open: no such device model (ENOENT)');
    expect((err as Error).cause).toBe(h.failOpenWith);
    expect(h.events.slice(0, 4)).toEqual(['build 0', 'open 0', 'build 1', 'open-failed 1']);
    // Undoing runs concurrently; per device the model is drained before the device is closed.
    expect(h.events.slice(4).sort()).toEqual(['close 0', 'close 1', 'drain 0', 'factory closed']);
    expect(h.events.indexOf('drain 0')).toBeLessThan(h.events.indexOf('close 0'));
    expect(h.events.at(-1)).toBe('factory closed');
  });

  it('when building a device fails (its backend cannot open), closes what was opened before it', async () => {
    const h = new Harness();
    h.failBuildAt = 2;
    const err = await Daemon.start(h.options()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DEVICE_OPEN_FAILED', field: 'socket_path', device: { index: 2 } });
    expect(h.events[4]).toBe('build-failed 2');
    expect(h.events.slice(5).sort()).toEqual(['close 0', 'close 1', 'drain 0', 'drain 1', 'factory closed']);
    expect(h.events).not.toContain('open 2');
  });
});

describe('Daemon.completePending', () => {
  it('completes what every device model holds, goes on past one that throws, and says how many', async () => {
    const h = new Harness();
    h.failCompleteAt = 1;
    const daemon = await Daemon.start(h.options());
    expect(daemon.completePending()).toBe(1 + 3);
    expect(h.events.filter((e) => e.startsWith('complete-pending'))).toEqual(['complete-pending 0', 'complete-pending 2']);
    await daemon.stop();
  });
});

describe('serve', () => {
  it('serves until the signal aborts, then drains every device model before closing its device', async () => {
    const h = new Harness();
    const ac = new AbortController();
    const done = serve({ ...h.options(), signal: ac.signal });
    await new Promise((r) => setTimeout(r, 10));
    expect(h.events).not.toContain('drain 0');
    ac.abort(new Error('SIGTERM'));
    const report = await done;
    expect(report.failed).toEqual([]);
    expect(report.closed.map((d) => d.id).sort()).toEqual([0, 1, 2]);
    for (const id of [0, 1, 2]) {
      expect(h.events.indexOf(`drain ${id}`)).toBeLessThan(h.events.indexOf(`close ${id}`));
    }
    expect(h.events.at(-1)).toBe('factory closed');
  });

  it('shuts down when a device stops serving by itself, and says which', async () => {
    const h = new Harness();
    const ac = new AbortController();
    const done = serve({ ...h.options(), signal: ac.signal });
    await new Promise((r) => setTimeout(r, 10));
    h.stopped.get(1)?.reject(Object.assign(new Error('DM torn down'), { code: 'EPERM' }));
    const report = await done;
    expect(report.stoppedBy).toBeInstanceOf(DeviceStoppedError);
    expect(report.stoppedBy?.message).toBe('devices[1] (rng, id 1): stopped serving: DM torn down (EPERM)');
    expect(report.closed).toHaveLength(3);
  });

  it('gives up after the shutdown timeout and names the devices still closing', async () => {
    const h = new Harness();
    h.closeDelayMs = 1000;
    const ac = new AbortController();
    ac.abort();
    const err = await serve({ ...h.options(), signal: ac.signal, shutdownTimeoutMs: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShutdownTimeoutError);
    expect((err as ShutdownTimeoutError).pending.map((d) => d.id).sort()).toEqual([0, 1, 2]);
  });

  it('reports a close failure without stopping the others', async () => {
    const h = new Harness();
    const ac = new AbortController();
    const builders: DeviceBuilders = {
      ...h.builders,
      rng: async (entry) => ({
        device: fakeDevice('rng'),
        close: async () => {
          if (entry.id === 1) throw new Error('backend stuck');
        },
      }),
    };
    ac.abort();
    const report = await serve({ ...h.options(), builders, signal: ac.signal });
    expect(report.failed.map((f) => [f.device.id, (f.error as Error).message])).toEqual([[1, 'backend stuck']]);
    expect(report.closed.map((d) => d.id).sort()).toEqual([0, 2]);
  });

  it('stop() is idempotent', async () => {
    const h = new Harness();
    const daemon = await Daemon.start(h.options());
    const [a, b] = await Promise.all([daemon.stop(), daemon.stop()]);
    expect(a).toBe(b);
    expect(h.events.filter((e) => e.startsWith('drain'))).toHaveLength(3);
  });
});
