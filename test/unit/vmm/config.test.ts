// The config file: bao-virtio-dm's YAML read unchanged (spec §5.1), node-bao's superset, and
// every error reported with its field.

import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  SERVED_DEVICE_TYPES,
  configToJson,
  configToText,
  loadConfig,
  parseConfigText,
  validateConfig,
} from '../../../lib/vmm/config/index.js';
import { ConfigFileError, ConfigInvalidError, ConfigSyntaxError } from '../../../lib/vmm/errors.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** The issues of a config that must be refused. */
function issuesOf(text: string): { field: string; message: string; line?: number }[] {
  try {
    parseConfigText(text, 'test.yaml');
  } catch (err) {
    if (err instanceof ConfigInvalidError) {
      return err.issues.map((i) => ({ field: i.field, message: i.message, ...(i.position ? { line: i.position.line } : {}) }));
    }
    throw err;
  }
  throw new Error('expected the config to be refused');
}

const device = (fields: string): string => `devices:\n  - ${fields.trim().split('\n').join('\n    ')}\n`;

describe('bao-virtio-dm configs, unchanged', () => {
  it('parses the demo config (a net and a block device) unchanged, warning that its windows touch', async () => {
    const { config, warnings } = await loadConfig(fixture('config-virtio-demo-vm2.yaml'));
    expect(config.devices.map((d) => [d.id, d.type, d.mmioAddr])).toEqual([
      [1, 'net', 0xa003e00n],
      [2, 'block', 0xa003c00n],
    ]);
    // Its two windows touch, which Bao misroutes, so that is warned about.
    expect(warnings.map((w) => [w.field, w.message])).toEqual([['devices[0].mmio_addr', "the window at 0xa003e00 starts where devices[1]'s window (0xa003c00) ends; Bao routes an access to the first address of a window to the window below it when two touch, so this device would be misread: leave a gap, e.g. mmio_addr 0xa004000 (in the frontend's device tree too)"]]);
  });

  it('accepts a console device as bao-virtio-dm writes it: PTY backend with its alias', async () => {
    const { config, warnings } = await loadConfig(fixture('bao-console.yaml'));
    expect(warnings).toEqual([]);
    expect(config.devices).toEqual([
      {
        index: 0,
        id: 0,
        type: 'console',
        mmioAddr: 0xa003e00n,
        dataPlane: 'virtio',
        createDm: undefined,
        backend: { kind: 'pty', alias: '/tmp/bao-console0' },
      },
    ]);
    expect(config.source).toBe(fixture('bao-console.yaml'));
    expect(config.shutdownTimeoutMs).toBe(5000);
  });

  it('ignores unknown keys as bao-virtio-dm does, but warns with a suggestion', () => {
    const { warnings } = parseConfigText(device(`
id: 0
type: console
mmio_addr: 0xa003e00
data_plane: virtio
pty_alais: /tmp/x
shmem_path: /dev/mem
`));
    expect(warnings.map((w) => [w.field, w.message])).toEqual([
      ['devices[0].pty_alais', "unknown key, ignored (did you mean 'pty_alias'?)"],
      ['devices[0].shmem_path', 'ignored: an older bao-virtio-dm key; the shared region comes from the driver'],
    ]);
  });

  it('warns about keys of another device type, which bao-virtio-dm ignores too', () => {
    const { warnings } = parseConfigText(device(`
id: 0
type: console
mmio_addr: 0xa003e00
file_path: /tmp/disk.img
`));
    expect(warnings.map((w) => [w.field, w.message])).toEqual([
      ['devices[0].file_path', 'ignored for type console (it applies to block)'],
    ]);
  });
});

describe("node-bao's superset", () => {
  it('reads backends, rng, revB CREATE_DM parameters and daemon settings', async () => {
    const { config } = await loadConfig(fixture('node-bao.yaml'));
    expect(config.log).toEqual({ level: 'debug', format: 'json' });
    expect(config.shutdownTimeoutMs).toBe(2000);
    expect(config.devices.map((d) => d.type)).toEqual(['console', 'rng', 'console']);
    expect(config.devices[0]).toMatchObject({ backend: { kind: 'socket', path: '/run/node-bao/console0.sock' } });
    expect(config.devices[1]).toMatchObject({ id: 1, dataPlane: 'virtio', createDm: undefined });
    expect(config.devices[2]).toMatchObject({
      id: 40,
      backend: { kind: 'stdio' },
      createDm: { shmemAddr: 0xd0000000n, shmemSize: 0x1000000n, irq: 40 },
    });
  });

  it('keeps u64 addresses exact (no double rounding)', () => {
    const { config } = parseConfigText(device(`
id: 0
type: rng
mmio_addr: 0xfffffffffffffc00
`));
    expect(config.devices[0]?.mmioAddr).toBe(0xfffffffffffffc00n);
    expect(configToJson(config)).toMatchObject({ devices: [{ mmio_addr: '0xfffffffffffffc00' }] });
  });

  it('defaults the data plane to virtio and the console backend to pty', () => {
    const { config } = parseConfigText(device(`
id: 3
type: console
mmio_addr: 0xa003e00
`));
    expect(config.devices[0]).toMatchObject({ dataPlane: 'virtio', backend: { kind: 'pty', alias: undefined } });
  });

  it('accepts addresses written as quoted hex or decimal strings and as plain objects', () => {
    const { config } = validateConfig({ devices: [{ id: 2, type: 'rng', mmio_addr: '0xa003e00' }, { id: 3, type: 'rng', mmio_addr: 167788032 + 0x200 }] });
    expect(config.devices.map((d) => d.mmioAddr)).toEqual([0xa003e00n, 0xa004000n]);
  });

  it('lists the served types in one place', () => {
    expect(SERVED_DEVICE_TYPES).toEqual(['console', 'rng', 'block', 'net']);
  });

  it('prints the normalized config for people and as JSON', () => {
    const { config, warnings } = parseConfigText(
      device(`
id: 0
type: console
mmio_addr: 0xa003e00
pty_alias: /tmp/c0
`),
      'x.yaml',
    );
    expect(configToText(config, warnings)).toBe(
      [
        'x.yaml: OK, 1 device(s)',
        '  devices[0]: console id 0, mmio 0xa003e00..0xa003fff, data plane virtio, backend pty (alias /tmp/c0)',
        '  log: level (default), format (default)',
        '  shutdown timeout: 5000 ms',
      ].join('\n'),
    );
    expect(JSON.parse(JSON.stringify(configToJson(config)))).toEqual({
      devices: [{ id: 0, type: 'console', mmio_addr: '0xa003e00', data_plane: 'virtio', backend: 'pty', pty_alias: '/tmp/c0' }],
      log: {},
      shutdown_timeout_ms: 5000,
    });
  });
});

describe('every error, with its field', () => {
  it('refuses data planes it does not serve by name, and unknown ones with the valid list', () => {
    expect(issuesOf(`devices:
  - {id: 0, type: console, mmio_addr: 0xa003e00, data_plane: vhost}
  - {id: 1, type: console, mmio_addr: 0xa003c00, data_plane: dpdk}
`).map((i) => [i.field, i.message])).toEqual([
      ['devices[0].type', "'console' is not served over the kernel's vhost by node-bao yet; vhost types: vsock, net (or use data_plane: virtio)"],
      ['devices[1].data_plane', "unknown data plane 'dpdk'; expected virtio, vhost or vhost_user (node-bao serves: virtio, vhost, vhost_user)"],
    ]);
  });

  it('refuses an unknown type with a suggestion', () => {
    expect(issuesOf(device('{id: 0, type: consle, mmio_addr: 0xa003e00}'))).toEqual([
      { field: 'devices[0].type', message: "unknown device type 'consle' (did you mean 'console'?); served types: console, rng, block, net", line: 2 },
    ]);
  });

  it('reports missing and mistyped keys of several devices at once', () => {
    const issues = issuesOf(`devices:
  - id: zero
    type: console
  - id: 1
    type: 7
    mmio_addr: -4
  - just a string
`);
    expect(issues.map((i) => i.field)).toEqual([
      'devices[0].id',
      'devices[0].mmio_addr',
      'devices[1].type',
      'devices[1].mmio_addr',
      'devices[2]',
    ]);
    expect(issues[0]?.message).toBe("expected a device-model id (decimal or 0x hex), got 'zero'");
    expect(issues[1]?.message).toBe('required: the guest-physical address of the virtio-mmio window');
    expect(issues[2]?.message).toBe('expected a device type such as console, got 7');
    expect(issues[3]?.message).toMatch(/^-4 is out of range/);
    expect(issues[4]?.message).toBe('expected a device mapping (id, type, mmio_addr, ...), got string');
  });

  it('refuses duplicate DM ids and overlapping 0x200-byte windows, naming the other device', () => {
    const issues = issuesOf(`devices:
  - {id: 1, type: console, mmio_addr: 0xa003e00}
  - {id: 1, type: rng, mmio_addr: 0xa003f00}
`);
    expect(issues).toEqual([
      {
        field: 'devices[1].id',
        message: 'DM id 1 is already used by devices[0]; each device needs its own device model: give it an unused id',
        line: 3,
      },
      {
        field: 'devices[1].mmio_addr',
        message: "the window 0xa003f00..0xa0040ff overlaps devices[0]'s window at 0xa003e00 (each window is 0x200 bytes)",
        line: 3,
      },
    ]);
  });

  it('checks DM id range, window alignment, MAC format, and the revB triple', () => {
    const issues = issuesOf(`devices:
  - {id: 16, type: rng, mmio_addr: 0xa003e02}
  - {id: 2, type: rng, mmio_addr: 0xa003000, shmem_addr: 0xd0000010, irq: 40}
  - {id: 3, type: net, mmio_addr: 0xa002000, mac_addr: "52:54:00:aa:bb"}
`);
    expect(issues.map((i) => [i.field, i.message.split(';')[0]])).toEqual([
      ['devices[0].id', 'DM id 16 is out of range: the OOT/v1/v2 I/O dispatcher has 16 device models (0..15)'],
      ['devices[0].mmio_addr', '0xa003e02 is not 4-byte aligned'],
      ['devices[1].shmem_size', "required together with shmem_addr and irq: revB's CREATE_DM needs shmem_addr, shmem_size and irq (or give none of them for the OOT/v1/v2 drivers)"],
      ['devices[2].mac_addr', "'52:54:00:aa:bb' is not a MAC address"],
    ]);
  });

  it('checks console backends: socket needs socket_path, pty_alias only with pty, one stdio, unique paths', () => {
    const issues = issuesOf(`devices:
  - {id: 0, type: console, mmio_addr: 0x1000, backend: socket}
  - {id: 1, type: console, mmio_addr: 0x2000, backend: stdio, pty_alias: /tmp/x}
  - {id: 2, type: console, mmio_addr: 0x3000, backend: stdio}
  - {id: 3, type: console, mmio_addr: 0x4000, backend: serial}
  - {id: 4, type: console, mmio_addr: 0x5000, backend: socket, socket_path: /tmp/c.sock}
  - {id: 5, type: console, mmio_addr: 0x6000, backend: socket, socket_path: /tmp/c.sock}
`);
    expect(issues.map((i) => i.field)).toEqual([
      'devices[0].socket_path',
      'devices[1].pty_alias',
      'devices[2].backend',
      'devices[3].backend',
      'devices[5].socket_path',
    ]);
    expect(issues[0]?.message).toBe('required with backend: socket: the path of the unix socket the daemon listens on');
    expect(issues[3]?.message).toBe("unknown console backend 'serial'; expected one of pty, stdio, socket");
  });

  it('refuses an empty list, a missing list and bad daemon settings', () => {
    expect(issuesOf('devices: []\n')).toEqual([{ field: 'devices', message: 'the list is empty: add at least one device', line: 1 }]);
    expect(issuesOf('device:\n  - {id: 0}\n').map((i) => i.field)).toEqual(['devices']);
    expect(issuesOf('log: {level: loud}\nshutdown_timeout_ms: 0\ndevices: [{id: 0, type: rng, mmio_addr: 0}]\n').map((i) => i.field)).toEqual([
      'log.level',
      'shutdown_timeout_ms',
    ]);
    expect(issuesOf('')).toEqual([{ field: '', message: 'the config is empty; it needs a `devices:` list' }]);
  });

  it('puts every issue in the error message, one per line', () => {
    const err = (() => {
      try {
        parseConfigText(device('{id: 0, type: vsock, mmio_addr: 1}'), 'a.yaml');
      } catch (e) {
        return e as ConfigInvalidError;
      }
      throw new Error('expected a failure');
    })();
    expect(err.message).toBe(
      [
        'a.yaml: 2 error(s)',
        "  devices[0].type (line 2, column 19): 'vsock' is not served by node-bao yet; served types: console, rng, block, net",
        '  devices[0].mmio_addr (line 2, column 37): 0x1 is not 4-byte aligned; virtio-mmio registers are 32-bit aligned from the window base',
      ].join('\n'),
    );
  });
});

describe('net devices', () => {
  it("accepts bao-virtio-dm's net entry unchanged: the tap must exist, one pair, MTU 1500", () => {
    const { config, warnings } = parseConfigText(device('{id: 1, type: net, mmio_addr: 0xa003e00, data_plane: virtio, tap_name: tap0, mac_addr: "52:54:00:AA:BB:01"}'));
    expect(warnings).toEqual([]);
    expect(config.devices).toEqual([
      { index: 0, id: 1, type: 'net', mmioAddr: 0xa003e00n, dataPlane: 'virtio', createDm: undefined, tapName: 'tap0', mac: '52:54:00:aa:bb:01', createTap: false, mtu: 1500, queuePairs: 1, queueSize: 256 },
    ]);
  });

  it("takes node-bao's additions: create_tap, mtu, queue_pairs, queue_size", () => {
    const { config } = parseConfigText(device('{id: 1, type: net, mmio_addr: 0xa003e00, tap_name: nb0, create_tap: true, mtu: 9000, queue_pairs: 4, queue_size: 1024}'));
    expect(config.devices[0]).toMatchObject({ tapName: 'nb0', mac: undefined, createTap: true, mtu: 9000, queuePairs: 4, queueSize: 1024 });
  });

  it('refuses a missing or impossible tap name, bad sizes, a multicast MAC and a tap used twice, naming each field', () => {
    const issues = issuesOf(`devices:
  - {id: 0, type: net, mmio_addr: 0x1000}
  - {id: 1, type: net, mmio_addr: 0x2000, tap_name: "a/b"}
  - {id: 2, type: net, mmio_addr: 0x3000, tap_name: t2, mtu: 60, queue_pairs: 0, queue_size: 100}
  - {id: 3, type: net, mmio_addr: 0x4000, tap_name: t3, mac_addr: "01:00:5e:00:00:01", create_tap: yes-please}
  - {id: 4, type: net, mmio_addr: 0x5000, tap_name: t2}
`);
    expect(issues.map((i) => [i.field, i.message.split(':')[0]])).toEqual([
      ['devices[0].tap_name', 'required for type net'],
      ['devices[1].tap_name', "'a/b' is not an interface name"],
      ['devices[2].mtu', '60 is out of range'],
      ['devices[2].queue_pairs', '0 is out of range'],
      ['devices[2].queue_size', '100 is not a power of two between 2 and 32768'],
      ['devices[3].create_tap', 'expected create_tap (true or false), got \'yes-please\''],
      ['devices[4].tap_name', "'t2' is already used by devices[2]; give each net device its own tap"],
    ]);
    expect(issuesOf(device('{id: 3, type: net, mmio_addr: 0x4000, tap_name: t3, mac_addr: "01:00:5e:00:00:01"}'))[0]).toMatchObject({
      field: 'devices[0].mac_addr',
      message: expect.stringContaining('multicast'),
    });
  });

  it('warns about net keys on other types', () => {
    const { warnings } = parseConfigText(device('{id: 0, type: rng, mmio_addr: 0x1000, queue_pairs: 2}'));
    expect(warnings.map((w) => [w.field, w.message])).toEqual([['devices[0].queue_pairs', 'ignored for type rng (it applies to net)']]);
  });
});

describe('loading', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'node-bao-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports a missing file as CONFIG_NOT_FOUND with its path', async () => {
    const err = await loadConfig(join(dir, 'nope.yaml')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigFileError);
    expect(err).toMatchObject({ code: 'CONFIG_NOT_FOUND', path: join(dir, 'nope.yaml') });
  });

  it('reports a directory or an unreadable file as CONFIG_UNREADABLE', async () => {
    await mkdir(join(dir, 'adir'));
    await expect(loadConfig(join(dir, 'adir'))).rejects.toMatchObject({ code: 'CONFIG_UNREADABLE' });
    const denied = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    await expect(loadConfig('/etc/x.yaml', { readFile: () => Promise.reject(denied) })).rejects.toMatchObject({
      code: 'CONFIG_UNREADABLE',
      message: '/etc/x.yaml: cannot read the config: permission denied',
    });
  });

  it('reports a YAML syntax error with line and column', async () => {
    const path = join(dir, 'broken.yaml');
    await writeFile(path, 'devices:\n  - id: 0\n    type: [console\n');
    const err = await loadConfig(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigSyntaxError);
    expect(err).toMatchObject({ code: 'CONFIG_YAML_SYNTAX', path });
    expect((err as ConfigSyntaxError).position?.line).toBeGreaterThanOrEqual(3);
    expect((err as Error).message).toMatch(new RegExp(`^${path}:\\d+:\\d+: YAML syntax error: `));
  });

  it('refuses duplicate keys as a syntax error', () => {
    expect(() => parseConfigText('devices: []\ndevices: []\n')).toThrow(ConfigSyntaxError);
  });
});
