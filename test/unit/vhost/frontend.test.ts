// The vhost-user frontend's conversation against an in-process backend on a real socketpair:
// negotiation, acknowledged settings, config space, clear errors, deadlines.

import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';

import { afterEach, describe, expect, it } from 'vitest';

import { VhostUserFrontend } from '../../../lib/vhost/user/frontend.js';
import { F_PROTOCOL_FEATURES, ProtocolFeature, Req } from '../../../lib/vhost/user/protocol.js';
import { FakeBackend, VERSION_1 } from './fake-backend.js';

const bit = (b: number): bigint => 1n << BigInt(b);
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function connected(options: ConstructorParameters<typeof FakeBackend>[1] = {}, timeoutMs?: number): [VhostUserFrontend, FakeBackend] {
  const [fd, backend] = FakeBackend.pair(options);
  const fe = VhostUserFrontend.fromFd(fd, { peer: 'test', ...(timeoutMs === undefined ? {} : { timeoutMs }) });
  cleanups.push(() => fe.close(), () => backend.close());
  return [fe, backend];
}

describe('VhostUserFrontend handshake', () => {
  it('negotiates protocol features as the intersection of both sides and sets the owner', async () => {
    const offered = bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG) | bit(ProtocolFeature.MQ) | bit(ProtocolFeature.BACKEND_REQ);
    const [fe, backend] = connected({ protocolFeatures: offered, queueNum: 2 });
    await fe.handshake();
    expect(backend.requests()).toEqual([Req.GET_FEATURES, Req.GET_PROTOCOL_FEATURES, Req.SET_PROTOCOL_FEATURES, Req.GET_QUEUE_NUM, Req.SET_OWNER]);
    // BACKEND_REQ needs a channel back to us that this frontend does not open: not agreed.
    expect(backend.protocolFeatures).toBe(bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG) | bit(ProtocolFeature.MQ));
    expect(fe.queueNum).toBe(2);
    expect(backend.ownerSet).toBe(true);
  });

  it('skips protocol features with a backend that lacks F_PROTOCOL_FEATURES', async () => {
    const [fe, backend] = connected({ features: VERSION_1 });
    await fe.handshake();
    // Without REPLY_ACK a setting is not confirmed: it arrives a moment later.
    await new Promise((r) => setTimeout(r, 20));
    expect(backend.requests()).toEqual([Req.GET_FEATURES, Req.SET_OWNER]);
    expect(fe.protocolFeatures).toBe(0n);
  });

  it('names the protocol feature a device needs and the backend lacks, and disconnects', async () => {
    const [fe] = connected({ protocolFeatures: bit(ProtocolFeature.REPLY_ACK) });
    await expect(fe.handshake([ProtocolFeature.CONFIG])).rejects.toMatchObject({ code: 'PROTOCOL_FEATURE_MISSING', message: expect.stringMatching(/CONFIG/) });
    expect(fe.connected).toBe(false);
  });

  it('asks for an acknowledgement of each setting with REPLY_ACK, and reports a refusal', async () => {
    const [fe, backend] = connected({ protocolFeatures: bit(ProtocolFeature.REPLY_ACK), refuse: [Req.SET_FEATURES] });
    await fe.handshake();
    await expect(fe.setFeatures(VERSION_1)).rejects.toMatchObject({ code: 'BACKEND_REFUSED' });
    const set = backend.messages.find((m) => m.request === Req.SET_FEATURES)!;
    expect(set.flags & 0x8).toBe(0x8);
  });

  it('reads the config space with GET_CONFIG', async () => {
    const config = new Uint8Array(40);
    config.set(Buffer.from('share'), 0);
    const [fe] = connected({ protocolFeatures: bit(ProtocolFeature.CONFIG), config });
    await fe.handshake([ProtocolFeature.CONFIG]);
    expect(Buffer.from(await fe.getConfig(40)).subarray(0, 5).toString()).toBe('share');
  });

  it('fails a request the backend never answers at its deadline, instead of hanging', async () => {
    const [fe] = connected({ silentOn: [Req.GET_FEATURES] }, 100);
    const started = Date.now();
    await expect(fe.handshake()).rejects.toMatchObject({ code: 'BACKEND_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(10_000); // the deadline is 100 ms: this bound only tells "failed at its deadline" from "hung"
    expect(fe.connected).toBe(false);
  });

  it('fails pending and later requests when the backend goes away', async () => {
    const [fe, backend] = connected({ silentOn: [Req.GET_FEATURES] });
    const handshake = fe.handshake();
    backend.close();
    await expect(handshake).rejects.toMatchObject({ code: 'BACKEND_DISCONNECTED' });
    await expect(fe.setFeatures(0n)).rejects.toMatchObject({ code: 'BACKEND_DISCONNECTED' });
  });

  it('backendFeatures keeps F_PROTOCOL_FEATURES visible', async () => {
    const [fe] = connected();
    await fe.handshake();
    expect(fe.backendFeatures & F_PROTOCOL_FEATURES).toBe(F_PROTOCOL_FEATURES);
  });
});

describe('VhostUserFrontend.connect', () => {
  it('says the backend is missing when no socket exists at the path', () => {
    const p = path.join(os.tmpdir(), `vu-missing-${process.pid}.sock`);
    expect(() => VhostUserFrontend.connect(p)).toThrow(expect.objectContaining({ code: 'BACKEND_MISSING', message: expect.stringContaining(p) }));
  });

  it('says nothing listens on a stale socket file', () => {
    const p = path.join(os.tmpdir(), `vu-stale-${process.pid}.sock`);
    fs.rmSync(p, { force: true });
    fs.writeFileSync(p, '');
    cleanups.push(() => fs.rmSync(p, { force: true }));
    expect(() => VhostUserFrontend.connect(p)).toThrow(expect.objectContaining({ code: expect.stringMatching(/BACKEND_NOT_LISTENING|BACKEND_CONNECT_FAILED/) }));
  });

  it('connects to a listening backend', async () => {
    const p = path.join(os.tmpdir(), `vu-live-${process.pid}.sock`);
    fs.rmSync(p, { force: true });
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(p, r));
    cleanups.push(() => server.close());
    const fe = VhostUserFrontend.connect(p);
    cleanups.push(() => fe.close());
    expect(fe.peer).toBe(p);
  });
});
