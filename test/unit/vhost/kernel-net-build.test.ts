// The vhost builder for `type: net, data_plane: vhost`: the tap is opened with the net device's
// own openTap (one queue, the 12-byte vnet header), and when /dev/vhost-net cannot be opened the
// error says what to do and the tap is closed again: nothing is left half started.

import * as fs from 'node:fs';

import { describe, expect, it } from 'vitest';

import type { TapSyscalls } from '../../../lib/devices/net/index.js';
import { silentLogger } from '../../../lib/virtio/logger.js';
import type { KernelVhostNetConfig } from '../../../lib/vmm/config/types.js';
import { defaultDeviceBuilders } from '../../../lib/vmm/device-builders.js';

function recordingTap(): TapSyscalls & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    tapOpen: (name, mq) => (calls.push(`open ${name} ${mq}`), { fd: 77, name }),
    tapSetVnetHdrSize: (fd, size) => void calls.push(`hdr ${fd} ${size}`),
    tapSetOffload: (fd, flags) => void calls.push(`offload ${fd} ${flags}`),
    tapSetOffloadAsync: (_fd, _flags, cb) => cb(null),
    readv: () => -1,
    writev: () => -1,
    close: (fd) => void calls.push(`close ${fd}`),
    watch: () => ({ set: () => {}, close: () => {} }),
    interfaceExists: () => true,
  };
}

const entry: KernelVhostNetConfig = {
  index: 0,
  id: 0,
  type: 'net',
  dataPlane: 'vhost',
  mmioAddr: 0xa003e00n,
  createDm: undefined,
  tapName: 'tap0',
  mac: undefined,
  createTap: false,
  mtu: 1500,
  queuePairs: 1,
  queueSize: 256,
};

const present = fs.existsSync('/dev/vhost-net');
if (present) console.warn('skipped: /dev/vhost-net exists here, so its absence cannot be shown');

describe.skipIf(present)('vhost builder, net over vhost-net, without /dev/vhost-net', () => {
  it('opens the tap like the net device, then says how to get vhost-net and closes the tap', async () => {
    const tap = recordingTap();
    await expect(defaultDeviceBuilders.vhost!(entry, { log: silentLogger, tapSyscalls: tap })).rejects.toMatchObject({
      code: 'VHOST_UNAVAILABLE',
      message: expect.stringMatching(/modprobe vhost_net/),
    });
    expect(tap.calls).toEqual(['open tap0 false', 'hdr 77 12', 'offload 77 0', 'close 77']);
  });
});
