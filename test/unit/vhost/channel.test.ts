// The vhost-user socket: message framing over a real AF_UNIX stream pair, and descriptors
// passed with SCM_RIGHTS arriving with their message as working fds.

import * as fs from 'node:fs';

import { afterEach, describe, expect, it } from 'vitest';

import { loadAddon } from '../../../lib/native.js';
import { VhostUserChannel, type VhostUserMessage } from '../../../lib/vhost/user/channel.js';
import type { VhostUserError } from '../../../lib/vhost/user/errors.js';
import { encodeMessage, HEADER_SIZE, Req, u64Payload, VERSION } from '../../../lib/vhost/user/protocol.js';

const addon = loadAddon();
const until = async (cond: () => boolean, ms = 2000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};

const open: VhostUserChannel[] = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

function pair(): { a: VhostUserChannel; b: VhostUserChannel; got: VhostUserMessage[]; closed: VhostUserError[] } {
  const [fa, fb] = addon.socketPair();
  const got: VhostUserMessage[] = [];
  const closed: VhostUserError[] = [];
  const a = new VhostUserChannel(fa, { onMessage: () => {}, onClose: (r) => closed.push(r) });
  const b = new VhostUserChannel(fb, { onMessage: (m) => got.push(m), onClose: (r) => closed.push(r) });
  open.push(a, b);
  return { a, b, got, closed };
}

describe('VhostUserChannel', () => {
  it('delivers messages whole and in order, with their payloads', async () => {
    const { a, got } = pair();
    a.send(Req.GET_FEATURES, VERSION);
    a.send(Req.SET_FEATURES, VERSION, u64Payload(0x1_0000_0001n));
    await until(() => got.length === 2);
    expect(got.map((m) => m.request)).toEqual([Req.GET_FEATURES, Req.SET_FEATURES]);
    expect(got[1]!.payload).toEqual(u64Payload(0x1_0000_0001n));
  });

  it('passes descriptors with their message: an eventfd sent is the same eventfd received', async () => {
    const { a, got } = pair();
    const efd = addon.eventfd(0, addon.constants.EFD_NONBLOCK);
    a.send(Req.SET_VRING_KICK, VERSION, u64Payload(0n), [efd]);
    await until(() => got.length === 1);
    const received = got[0]!.fds;
    expect(received).toHaveLength(1);
    expect(received[0]).not.toBe(efd);
    // A write on our copy is read on theirs: one kernel object.
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(5n);
    fs.writeSync(efd, one);
    const out = Buffer.alloc(8);
    fs.readSync(received[0]!, out);
    expect(out.readBigUInt64LE()).toBe(5n);
    fs.closeSync(efd);
    fs.closeSync(received[0]!);
  });

  it('reassembles a message that arrives split across reads', async () => {
    const [fa, fb] = addon.socketPair();
    const got: VhostUserMessage[] = [];
    const b = new VhostUserChannel(fb, { onMessage: (m) => got.push(m), onClose: () => {} });
    open.push(b);
    const bytes = encodeMessage(Req.SET_FEATURES, VERSION, u64Payload(7n));
    addon.sendFds(fa, bytes.subarray(0, 5));
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toHaveLength(0);
    addon.sendFds(fa, bytes.subarray(5));
    await until(() => got.length === 1);
    expect(got[0]!.payload).toEqual(u64Payload(7n));
    fs.closeSync(fa);
  });

  it('refuses an oversized payload claim: the peer is cut off, nothing is buffered', async () => {
    const [fa, fb] = addon.socketPair();
    const closed: VhostUserError[] = [];
    const b = new VhostUserChannel(fb, { onMessage: () => {}, onClose: (r) => closed.push(r) });
    open.push(b);
    const header = new Uint8Array(HEADER_SIZE);
    const v = new DataView(header.buffer);
    v.setUint32(0, Req.GET_CONFIG, true);
    v.setUint32(4, VERSION, true);
    v.setUint32(8, 0x7fff_ffff, true);
    addon.sendFds(fa, header);
    await until(() => closed.length === 1);
    expect(closed[0]!.code).toBe('PROTOCOL_ERROR');
    expect(b.closed).toBe(true);
    fs.closeSync(fa);
  });

  it('reports the peer hanging up once, and refuses to send afterwards', async () => {
    const { a, b, closed } = pair();
    a.close();
    await until(() => closed.length === 1);
    expect(closed[0]!.code).toBe('BACKEND_DISCONNECTED');
    expect(() => b.send(Req.GET_FEATURES, VERSION)).toThrow(/closed/);
  });
});
