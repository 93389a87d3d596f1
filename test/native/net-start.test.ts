// `baoctl run` with bao-virtio-dm's demo net entry, unchanged (test/unit/vmm/fixtures/
// config-virtio-demo-vm2.yaml), on this host, in a network namespace the test makes: the tap is
// opened when the daemon starts, before any frontend is served, so what is wrong with it refuses
// the start, naming the field, with what to do: a tap that does not exist (and may not be
// created: the demo entry has no create_tap), and a tap the daemon's user may not open. With the
// tap there the start gets past it (and stops at the next thing this host lacks, the Bao driver).

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { skipBecause } from './skip.js';

const ns = `nbstart${process.pid}`;
const tap = `nbs${process.pid % 100000}`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun') && existsSync('dist/cli/main.js');
const why = 'needs root, /dev/net/tun (taps, a network namespace) and `npm run build` (bin/baoctl runs dist/)';
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

let dir = '';
/** The demo's entry as bao-virtio-dm reads it; only the tap's name is this test's. */
function demoConfig(tapName: string): string {
  const file = join(dir, `demo-${tapName}.yaml`);
  writeFileSync(
    file,
    ['devices:', '  - id: 1', '    type: "net"', '    mmio_addr: 0xa003e00', '    data_plane: virtio', `    tap_name: "${tapName}"`, '    mac_addr: "52:54:00:aa:bb:01"', ''].join('\n'),
  );
  return file;
}

/** `baoctl run <config>` in the test's namespace (optionally as another user); exit status and output. */
function run(config: string, asUser?: number): { status: number | null; out: string } {
  const argv = [process.execPath, 'bin/baoctl', 'run', config, '--log-format', 'json', '--status-socket', 'none'];
  const user = asUser === undefined ? [] : [setpriv!, `--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups'];
  const r = spawnSync('ip', ['netns', 'exec', ns, ...user, ...argv], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('baoctl run: the tap of a net entry at start', () => {
  beforeAll(() => {
    if (!canRun) return;
    dir = mkdtempSync(join(tmpdir(), 'nb-net-start-'));
    chmodSync(dir, 0o755); // the unprivileged run reads its config too
    ip('netns', 'add', ns);
  });
  afterAll(() => {
    if (!canRun) return;
    ip('netns', 'del', ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the start when the tap does not exist and the entry may not create it, naming tap_name and the command that makes it', (ctx) => {
    if (!canRun) skipBecause(ctx, why);
    const { status, out } = run(demoConfig('nb-absent0'));
    expect(status, out).toBe(1);
    expect(out).toContain("devices[0] (net, id 1).tap_name: cannot open: the tap interface 'nb-absent0' does not exist");
    expect(out).toContain('ip tuntap add dev nb-absent0 mode tap');
    expect(out).toContain('TAP_NOT_FOUND');
    // Nothing was created in its place.
    expect(ip('-n', ns, 'link', 'show')).not.toContain('nb-absent0');
  });

  it('refuses the start when its user may not open the tap (no CAP_NET_ADMIN), naming tap_name', (ctx) => {
    if (!canRun) skipBecause(ctx, why);
    if (setpriv === undefined) skipBecause(ctx, 'setpriv (util-linux) is not installed: cannot run the daemon as another user');
    ip('-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    try {
      const { status, out } = run(demoConfig(tap), 65534);
      expect(status, out).toBe(1);
      expect(out).toContain(`devices[0] (net, id 1).tap_name: cannot open: no permission to open the tap '${tap}' through /dev/net/tun`);
      expect(out).toContain('TAP_PERMISSION');
    } finally {
      ip('-n', ns, 'link', 'del', tap);
    }
  });

  it('with the tap made beforehand (as the demo does) opens it and goes on to the next step', (ctx) => {
    if (!canRun) skipBecause(ctx, why);
    ip('-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    try {
      const { out } = run(demoConfig(tap));
      expect(out).toMatch(/"msg":"tap opened"/);
      expect(out).not.toMatch(/TAP_[A-Z_]+/);
    } finally {
      ip('-n', ns, 'link', 'del', tap);
    }
  });
});
