// `data_plane: vhost_user` entries: bao-virtio-dm's fs and vsock entries unchanged (socket
// `<socket_path><type><id>.sock`), node-bao's direct `socket`, the types only a backend serves.

import { describe, expect, it } from 'vitest';

import { parseConfigText } from '../../../lib/vmm/config/index.js';
import { ConfigInvalidError } from '../../../lib/vmm/errors.js';
import { defaultConfig } from '../../../lib/vhost/user/device-types.js';

function devicesOf(text: string) {
  return parseConfigText(text, 'test.yaml').config.devices;
}

function issuesOf(text: string): [string, string][] {
  try {
    parseConfigText(text, 'test.yaml');
  } catch (err) {
    if (err instanceof ConfigInvalidError) return err.issues.map((i) => [i.field, i.message]);
    throw err;
  }
  throw new Error('expected the config to be refused');
}

describe('vhost_user config entries', () => {
  it("runs bao-virtio-dm's fs and vsock entries unchanged, with its socket naming", () => {
    const devices = devicesOf(`devices:
  - {id: 0, type: fs, mmio_addr: 0xa003e00, data_plane: vhost_user, socket_path: /root/}
  - {id: 3, type: vsock, mmio_addr: 0xa003c00, data_plane: vhost_user, socket_path: /tmp/vu-}
`);
    expect(devices).toMatchObject([
      { type: 'fs', id: 0, dataPlane: 'vhost_user', socket: '/root/fs0.sock', tag: 'bao-fs' },
      { type: 'vsock', id: 3, dataPlane: 'vhost_user', socket: '/tmp/vu-vsock3.sock' },
    ]);
  });

  it('takes a socket named directly, a tag, and types only a backend serves (rng, i2c, gpio)', () => {
    const devices = devicesOf(`devices:
  - {id: 0, type: fs, mmio_addr: 0xa003e00, data_plane: vhost_user, socket: /run/virtiofsd.sock, tag: share}
  - {id: 1, type: gpio, mmio_addr: 0xa003c00, data_plane: vhost_user, socket: /run/gpio.sock}
  - {id: 2, type: i2c, mmio_addr: 0xa003a00, data_plane: vhost_user, socket_path: /run/}
`);
    expect(devices).toMatchObject([
      { type: 'fs', socket: '/run/virtiofsd.sock', tag: 'share' },
      { type: 'gpio', socket: '/run/gpio.sock' },
      { type: 'i2c', socket: '/run/i2c2.sock' },
    ]);
  });

  it('needs a socket, refuses sharing one, and names types no backend can serve this way', () => {
    expect(issuesOf(`devices:
  - {id: 0, type: fs, mmio_addr: 0xa003e00, data_plane: vhost_user}
  - {id: 1, type: fs, mmio_addr: 0xa003c00, data_plane: vhost_user, socket: /run/a.sock}
  - {id: 2, type: vsock, mmio_addr: 0xa003a00, data_plane: vhost_user, socket: /run/a.sock}
  - {id: 3, type: balloon, mmio_addr: 0xa003800, data_plane: vhost_user, socket: /run/b.sock}
`)).toEqual([
      ['devices[0].socket_path', expect.stringMatching(/required with data_plane: vhost_user.*<socket_path>fs0\.sock/)],
      ['devices[2].socket_path', expect.stringMatching(/\/run\/a\.sock is already used by devices\[1\]/)],
      ['devices[3].type', expect.stringMatching(/'balloon' cannot be served over vhost_user; vhost-user types: fs, vsock/)],
    ]);
  });

  it('checks the fs tag and the vsock CID', () => {
    expect(issuesOf(`devices:
  - {id: 0, type: fs, mmio_addr: 0xa003e00, data_plane: vhost_user, socket: /a.sock, tag: "${'x'.repeat(37)}"}
  - {id: 1, type: vsock, mmio_addr: 0xa003c00, data_plane: vhost_user, socket: /b.sock, guest_cid: 2}
`)).toEqual([
      ['devices[0].tag', 'a virtio-fs tag is 1 to 36 bytes, got 37'],
      ['devices[1].guest_cid', expect.stringMatching(/CID 2 is reserved/)],
    ]);
  });
});

describe('the config space served when the backend does not serve it', () => {
  it('fs: the tag, NUL-padded, and one request queue', () => {
    const c = defaultConfig('fs', { tag: 'share' })!;
    expect(c).toHaveLength(40);
    expect(Buffer.from(c.subarray(0, 6))).toEqual(Buffer.from('share\0'));
    expect(new DataView(c.buffer).getUint32(36, true)).toBe(1);
  });

  it('vsock: the guest CID as a little-endian u64', () => {
    const c = defaultConfig('vsock', { guestCid: 0x1_0000_0003n })!;
    expect(new DataView(c.buffer).getBigUint64(0, true)).toBe(0x1_0000_0003n);
  });

  it('gpio: none (only the backend knows its lines)', () => {
    expect(defaultConfig('gpio', {})).toBeUndefined();
  });
});

describe('vhost (kernel) config entries', () => {
  it("runs bao-virtio-dm's vsock entry unchanged", () => {
    expect(devicesOf(`devices:
  - {id: 2, type: vsock, mmio_addr: 0xa003e00, data_plane: vhost, guest_cid: 3}
`)).toMatchObject([{ type: 'vsock', id: 2, dataPlane: 'vhost', guestCid: 3n }]);
  });

  it('needs a usable, unique guest_cid and names the types it serves', () => {
    expect(issuesOf(`devices:
  - {id: 0, type: vsock, mmio_addr: 0xa003e00, data_plane: vhost}
  - {id: 1, type: vsock, mmio_addr: 0xa003c00, data_plane: vhost, guest_cid: 2}
  - {id: 2, type: vsock, mmio_addr: 0xa003a00, data_plane: vhost, guest_cid: 7}
  - {id: 3, type: vsock, mmio_addr: 0xa003800, data_plane: vhost, guest_cid: 7}
  - {id: 4, type: block, mmio_addr: 0xa003600, data_plane: vhost, file_path: /x, read_only: false, root_device: false, advertise_flush: false}
`)).toEqual([
      ['devices[0].guest_cid', expect.stringMatching(/^required for vsock/)],
      ['devices[1].guest_cid', expect.stringMatching(/CID 2 cannot be a guest's/)],
      ['devices[3].guest_cid', 'CID 7 is already used by devices[2]; each frontend needs its own CID'],
      ['devices[4].type', expect.stringMatching(/'block' is not served over the kernel's vhost/)],
    ]);
  });

  it("runs bao-virtio-dm's net entry over vhost-net with the net device's keys, one queue pair", () => {
    expect(devicesOf(`devices:
  - {id: 1, type: net, mmio_addr: 0xa003c00, data_plane: vhost, tap_name: tap0, mac_addr: "52:54:00:aa:bb:01"}
`)).toMatchObject([{ type: 'net', id: 1, dataPlane: 'vhost', tapName: 'tap0', mac: '52:54:00:aa:bb:01', queuePairs: 1 }]);
    expect(issuesOf(`devices:
  - {id: 0, type: net, mmio_addr: 0xa003e00, data_plane: vhost}
  - {id: 1, type: net, mmio_addr: 0xa003c00, data_plane: vhost, tap_name: tap1, queue_pairs: 2}
`)).toEqual([
      ['devices[0].tap_name', expect.stringMatching(/^required for type net/)],
      ['devices[1].queue_pairs', expect.stringMatching(/vhost-net serves one queue pair/)],
    ]);
  });
});
