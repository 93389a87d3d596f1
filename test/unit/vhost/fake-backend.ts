// An in-process vhost-user backend for tests: speaks the protocol over a real socket (a
// socketpair end), records every message with the descriptors it carried, and answers the way
// libvhost-user and rust-vmm's vhost-user-backend do.

import * as fs from 'node:fs';

import { loadAddon } from '../../../lib/native.js';
import { VhostUserChannel, closeFds, type VhostUserMessage } from '../../../lib/vhost/user/channel.js';
import {
  configPayload,
  F_PROTOCOL_FEATURES,
  FLAG_NEED_REPLY,
  FLAG_REPLY,
  readConfig,
  readMemTable,
  readU64,
  readVringAddr,
  readVringState,
  Req,
  u64Payload,
  VERSION,
  vringStatePayload,
  type MemoryRegion,
  type VringAddr,
} from '../../../lib/vhost/user/protocol.js';

export interface FakeBackendOptions {
  features?: bigint;
  protocolFeatures?: bigint;
  config?: Uint8Array;
  queueNum?: number;
  /** Requests to leave unanswered (to test deadlines). */
  silentOn?: readonly number[];
  /** Requests whose REPLY_ACK reports failure. */
  refuse?: readonly number[];
}

export interface FakeVring {
  num?: number;
  base?: number;
  addr?: VringAddr;
  kickFd?: number;
  callFd?: number;
  enabled?: boolean;
  stopped?: boolean;
}

export const VERSION_1 = 1n << 32n;

export class FakeBackend {
  readonly messages: { request: number; flags: number; payload: Uint8Array; fdCount: number }[] = [];
  readonly vrings = new Map<number, FakeVring>();
  features = 0n;
  protocolFeatures = 0n;
  ownerSet = false;
  memTable: MemoryRegion[] = [];
  memFd: number | undefined;
  configWrites: { offset: number; data: Uint8Array }[] = [];
  readonly channel: VhostUserChannel;
  private readonly opts: Required<Omit<FakeBackendOptions, 'config'>> & { config: Uint8Array };

  constructor(fd: number, options: FakeBackendOptions = {}) {
    this.opts = {
      features: options.features ?? (VERSION_1 | F_PROTOCOL_FEATURES),
      protocolFeatures: options.protocolFeatures ?? 0n,
      config: options.config ?? new Uint8Array(0),
      queueNum: options.queueNum ?? 2,
      silentOn: options.silentOn ?? [],
      refuse: options.refuse ?? [],
    };
    this.channel = new VhostUserChannel(fd, { onMessage: (m) => this.onMessage(m), onClose: () => this.release() });
  }

  /** A connected pair: [frontend's fd, backend]. */
  static pair(options: FakeBackendOptions = {}): [number, FakeBackend] {
    const [a, b] = loadAddon().socketPair();
    return [a, new FakeBackend(b, options)];
  }

  requests(): number[] {
    return this.messages.map((m) => m.request);
  }

  vring(index: number): FakeVring {
    let v = this.vrings.get(index);
    if (v === undefined) {
      v = {};
      this.vrings.set(index, v);
    }
    return v;
  }

  /** The backend "dies": its socket closes. */
  close(): void {
    this.channel.close();
    this.release();
  }

  private release(): void {
    for (const v of this.vrings.values()) {
      closeFds([v.kickFd, v.callFd].filter((f): f is number => f !== undefined));
      v.kickFd = undefined;
      v.callFd = undefined;
    }
    if (this.memFd !== undefined) closeFds([this.memFd]);
    this.memFd = undefined;
  }

  private reply(m: VhostUserMessage, payload: Uint8Array): void {
    this.channel.send(m.request, VERSION | FLAG_REPLY, payload);
  }

  private onMessage(m: VhostUserMessage): void {
    this.messages.push({ request: m.request, flags: m.flags, payload: m.payload, fdCount: m.fds.length });
    if (this.opts.silentOn.includes(m.request)) {
      closeFds(m.fds);
      return;
    }
    let fdsKept = false;
    switch (m.request) {
      case Req.GET_FEATURES:
        this.reply(m, u64Payload(this.opts.features));
        return;
      case Req.SET_FEATURES:
        this.features = readU64(m.payload);
        break;
      case Req.GET_PROTOCOL_FEATURES:
        this.reply(m, u64Payload(this.opts.protocolFeatures));
        return;
      case Req.SET_PROTOCOL_FEATURES:
        this.protocolFeatures = readU64(m.payload);
        return; // never acknowledged
      case Req.GET_QUEUE_NUM:
        this.reply(m, u64Payload(BigInt(this.opts.queueNum)));
        return;
      case Req.SET_OWNER:
        this.ownerSet = true;
        break;
      case Req.SET_MEM_TABLE:
        this.memTable = readMemTable(m.payload);
        if (this.memFd !== undefined) fs.closeSync(this.memFd);
        this.memFd = m.fds[0];
        fdsKept = true;
        break;
      case Req.SET_VRING_NUM: {
        const s = readVringState(m.payload);
        this.vring(s.index).num = s.num;
        break;
      }
      case Req.SET_VRING_BASE: {
        const s = readVringState(m.payload);
        this.vring(s.index).base = s.num;
        break;
      }
      case Req.SET_VRING_ADDR: {
        const a = readVringAddr(m.payload);
        this.vring(a.index).addr = a;
        break;
      }
      case Req.SET_VRING_KICK:
      case Req.SET_VRING_CALL: {
        const v = this.vring(Number(readU64(m.payload) & 0xffn));
        const key = m.request === Req.SET_VRING_KICK ? 'kickFd' : 'callFd';
        if (v[key] !== undefined) fs.closeSync(v[key]!);
        v[key] = m.fds[0];
        v.stopped = false;
        fdsKept = true;
        break;
      }
      case Req.SET_VRING_ENABLE: {
        const s = readVringState(m.payload);
        this.vring(s.index).enabled = s.num === 1;
        break;
      }
      case Req.GET_VRING_BASE: {
        const s = readVringState(m.payload);
        const v = this.vring(s.index);
        v.stopped = true;
        this.reply(m, vringStatePayload(s.index, v.base ?? 0));
        return;
      }
      case Req.GET_CONFIG: {
        const c = readConfig(m.payload);
        this.reply(m, configPayload(c.offset, this.opts.config.subarray(c.offset, c.offset + c.size)));
        return;
      }
      case Req.SET_CONFIG: {
        const c = readConfig(m.payload);
        this.configWrites.push({ offset: c.offset, data: c.data.slice() });
        break;
      }
      default:
        break;
    }
    if (!fdsKept) closeFds(m.fds);
    if ((m.flags & FLAG_NEED_REPLY) !== 0) this.reply(m, u64Payload(this.opts.refuse.includes(m.request) ? 1n : 0n));
  }
}
