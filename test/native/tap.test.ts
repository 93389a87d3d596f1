// The tap through the addon, against the real kernel: a tap opened (created) by the daemon's
// code is moved into a network namespace the test makes, configured there with ip, and frames
// cross it both ways with a vnet header: an ARP request written from views, the kernel's reply
// read back into views. Errors name their cause; multi-queue and offloads behave as Linux says.

import { execFileSync } from 'node:child_process';
import { closeSync, existsSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SpanVector, tapSyscalls } from '../../lib/dispatcher/tap-syscalls.js';
import { ALL_TAP_OFFLOADS, openTap, TapError, type TapInterface, VNET_HDR_SIZE } from '../../lib/devices/net/index.js';
import { loadAddon } from '../../lib/native.js';
import { arpReplySender, arpRequest } from './frames.js';
import { skipBecause } from './skip.js';

const ns = `nbtap${process.pid}`;
let tapCounter = 0;
const tapName = () => `nbt${process.pid % 100000}x${tapCounter++}`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const why = 'needs root and /dev/net/tun to create taps and a network namespace';

/** Moves the tap into the test's namespace and gives it 10.77.0.1/24. */
function configure(name: string): void {
  ip('link', 'set', name, 'netns', ns);
  ip('-n', ns, 'addr', 'add', '10.77.0.1/24', 'dev', name);
  ip('-n', ns, 'link', 'set', name, 'up');
}

function readFrame(tap: TapInterface, buffers: Uint8Array[], timeoutMs = 2000): Promise<number> {
  const q = tap.queues[0]!;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no frame from the tap')), timeoutMs);
    q.watch({
      readable: () => {
        const n = q.readv(buffers);
        if (n < 0) return;
        q.want(false, false);
        clearTimeout(timer);
        resolve(n);
      },
      writable: () => {},
      error: reject,
    });
    q.want(true, false);
  });
}

describe('tap (addon)', () => {
  beforeAll(() => {
    if (canRun) ip('netns', 'add', ns);
  });
  afterAll(() => {
    if (canRun) ip('netns', 'del', ns);
  });

  it('creates a tap, writes an ARP request from views and reads the kernel reply into views', async (ctx) => {
    if (!canRun) skipBecause(ctx, why);
    const name = tapName();
    const tap = openTap({ name, queuePairs: 1, create: true }, tapSyscalls());
    expect(tap.name).toBe(name);
    // Nothing waiting (the interface is still down): -1, not an exception.
    expect(tap.queues[0]!.readv([new Uint8Array(2048)])).toBe(-1);
    configure(name);
    // Header and frame in separate, scattered ranges of one region, as a guest chain may lay them out.
    const frame = arpRequest('10.77.0.2', '10.77.0.1');
    const txRegion = new Uint8Array(8192);
    txRegion.set(frame.subarray(0, 20), 1000);
    txRegion.set(frame.subarray(20), 5000);
    const spans = [100, VNET_HDR_SIZE, 1000, 20, 5000, frame.length - 20];
    expect(tap.queues[0]!.writev(txRegion, spans, 3)).toBe(VNET_HDR_SIZE + frame.length);
    const backing = new ArrayBuffer(4096);
    const rxHeader = new Uint8Array(backing, 0, VNET_HDR_SIZE);
    const rxFrame = new Uint8Array(backing, 64, 1600);
    let n = 0;
    let sender: string | undefined;
    // The kernel may send other frames first (IPv6 router solicitations): read until the reply.
    for (let i = 0; i < 20 && sender === undefined; i += 1) {
      n = await readFrame(tap, [rxHeader, rxFrame]);
      sender = arpReplySender(rxFrame.subarray(0, n - VNET_HDR_SIZE));
    }
    expect(sender).toBe('10.77.0.1');
    expect(rxHeader[0]).toBe(0); // no offloads asked for: no partial checksum
    tap.close();
    tap.close();
    // A tap created by the daemon lives as long as its fds.
    await new Promise((r) => setTimeout(r, 50));
    expect(ip('-n', ns, 'link', 'show')).not.toContain(name);
  });

  it('refuses a missing tap when it may not create one, naming tap_name', (ctx) => {
    if (!canRun) skipBecause(ctx, why);
    const err = (() => {
      try {
        openTap({ name: 'nbt-absent0', queuePairs: 1, create: false }, tapSyscalls());
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(TapError);
    expect(err).toMatchObject({ code: 'TAP_NOT_FOUND', field: 'tap_name' });
    expect(existsSync('/sys/class/net/nbt-absent0')).toBe(false);
  });

  it('opens one fd per queue pair on a multi-queue tap; a single-queue open of it is refused', (ctx) => {
    if (!canRun) skipBecause(ctx, why);
    const name = tapName();
    const tap = openTap({ name, queuePairs: 2, create: true }, tapSyscalls());
    expect(tap.queues).toHaveLength(2);
    expect(() => openTap({ name, queuePairs: 1, create: false }, tapSyscalls())).toThrow(expect.objectContaining({ code: 'TAP_INCOMPATIBLE', field: 'tap_name' }));
    tap.close();
  });

  it('sets offloads off the event loop; the kernel refuses TSO without checksum offload (EINVAL)', async (ctx) => {
    if (!canRun) skipBecause(ctx, why);
    const tap = openTap({ name: tapName(), queuePairs: 1, create: true }, tapSyscalls());
    await expect(new Promise((res, rej) => tap.setOffload(ALL_TAP_OFFLOADS, (e) => (e ? rej(e) : res(null))))).resolves.toBeNull();
    const c = loadAddon().constants;
    const err = await new Promise((res) => tap.setOffload(c.TUN_F_TSO4, res));
    expect(err).toMatchObject({ code: 'EINVAL', syscall: 'ioctl TUNSETOFFLOAD' });
    tap.close();
  });

  it('sets offloads at once without a callback (start-up), with the same errors', (ctx) => {
    if (!canRun) skipBecause(ctx, why);
    const addon = loadAddon();
    const c = addon.constants;
    const opened = addon.tapOpen(tapName(), false);
    try {
      expect(addon.tapSetOffload(opened.fd, c.TUN_F_CSUM | c.TUN_F_TSO4)).toBeUndefined();
      expect(() => addon.tapSetOffload(opened.fd, c.TUN_F_TSO4)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'ioctl TUNSETOFFLOAD' }));
      expect(() => addon.tapSetOffload(opened.fd, 0, 'not a function' as never)).toThrow(TypeError);
    } finally {
      closeSync(opened.fd);
    }
  });

  it('checks its arguments: a non-array, a non-Uint8Array, an over-long name', (ctx) => {
    if (!canRun) skipBecause(ctx, why);
    const addon = loadAddon();
    expect(() => addon.readv(0, 'x' as never)).toThrow(TypeError);
    expect(() => addon.writev(0, [new Uint16Array(2)] as never)).toThrow(TypeError);
    expect(() => addon.tapOpen('a-name-longer-than-15', false)).toThrow(RangeError);
    expect(() => addon.readv(1 << 20, [new Uint8Array(4)])).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'readv' }));
    // The per-frame form: (offset, length) spans of one region, each checked against it.
    const region = new Uint8Array(4096);
    expect(() => addon.writevSpans(1 << 20, region, Uint32Array.of(4000, 97), 1)).toThrow(RangeError);
    expect(() => addon.writevSpans(1 << 20, region, Uint32Array.of(0xffff_ffff, 2), 1)).toThrow(RangeError);
    expect(() => addon.readvSpans(1 << 20, region, Uint32Array.of(0, 16), 2)).toThrow(RangeError); // count beyond the spans
    expect(() => addon.readvSpans(1 << 20, region, new Uint16Array(4) as never, 1)).toThrow(TypeError);
    expect(() => addon.readvSpans(1 << 20, [region] as never, Uint32Array.of(0, 16), 1)).toThrow(TypeError);
    expect(() => addon.readvSpans(1 << 20, region, Uint32Array.of(4000, 96), 1)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'readv' }));
  });

  it('the syscalls pass views of one buffer as spans of it, and views of several as views', () => {
    const vec = new SpanVector();
    const backing = new ArrayBuffer(8192);
    expect(vec.build([new Uint8Array(backing, 12, 100), new Uint8Array(backing, 4096, 4096)])).toBe(2);
    expect(Array.from(vec.spans.subarray(0, 4))).toEqual([12, 100, 4096, 4096]);
    expect(vec.region.buffer).toBe(backing);
    expect(vec.region.byteLength).toBe(8192);
    expect(vec.build([new Uint8Array(backing, 0, 8), new Uint8Array(8)])).toBe(-1);
    expect(vec.build([])).toBe(-1);
    const many = Array.from({ length: 200 }, (_, i) => new Uint8Array(backing, i * 8, 8));
    expect(vec.build(many)).toBe(200);
    expect(vec.spans[2 * 199]).toBe(199 * 8);
  });
});
