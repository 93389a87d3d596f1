// What the network QEMU tests share: the guest's virtio_net interface and a tap in two network
// namespaces (so traffic between them can only cross through the device), commands run in a
// namespace on the frontend or backend CPU with a deadline, and a TCP transfer both ways at once
// (test/qemu/support/net-transfer.mjs at each end) whose hashes the test computes itself.

import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

import { startBackend, stopProc, tail, waitForOutput } from './vhost.js';

export const IP = '/usr/local/bin/ip';
const TRANSFER = 'test/qemu/support/net-transfer.mjs';

/** iproute2's ip (busybox's applet lacks netns), with a deadline. */
export const ip = (...args: string[]): string => execFileSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });

/** Fresh namespaces `names`, each with its loopback up (a left-over one from a failed run is replaced). */
export function makeNamespaces(names: readonly string[]): void {
  deleteNamespaces(names);
  for (const ns of names) {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
}

export function deleteNamespaces(names: readonly string[]): void {
  for (const ns of names) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // not there
    }
  }
}

/** `argv` in namespace `ns` on CPU `cpu`; its stdout. A non-zero exit or the deadline fails (the process is killed, not waited for). */
export async function runInNs(ns: string, cpu: string, argv: readonly string[], ms = 120_000): Promise<string> {
  const p = startBackend([IP, 'netns', 'exec', ns, 'taskset', '-c', cpu, ...argv]);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([p.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))]);
  clearTimeout(timer);
  if (code === 'timeout') {
    p.child.kill('SIGKILL');
    throw new Error(`${argv.join(' ')} in ${ns} did not finish within ${ms} ms:\n${tail(p.output())}`);
  }
  if (code !== 0) throw new Error(`${argv.join(' ')} in ${ns} exited ${String(code)}:\n${tail(p.output())}`);
  return p.stdout().toString();
}

/** The network interface of virtio device `dev` (virtioN), or '' before virtio_net has made it. */
export function netIfname(dev: string): string {
  const dir = `/sys/bus/virtio/devices/${dev}/net`;
  return fs.existsSync(dir) ? (fs.readdirSync(dir)[0] ?? '') : '';
}

/**
 * Moves `ifname` into `ns` with address `cidr` and brings it up, the last step on CPU `upCpu`
 * (for the guest's interface the frontend CPU: bringing the link up sends control commands the
 * driver spins on).
 */
export function moveIntoNamespace(ifname: string, ns: string, cidr: string, upCpu: string): void {
  ip('link', 'set', ifname, 'netns', ns);
  ip('-n', ns, 'addr', 'add', cidr, 'dev', ifname);
  execFileSync('taskset', ['-c', upCpu, IP, '-n', ns, 'link', 'set', ifname, 'up'], { timeout: 60_000 });
}

/** The sha256 of `mib` MiB of net-transfer.mjs's stream for `seed`. */
export function expectedHash(seed: string, mib: number): string {
  const base = Buffer.alloc(1 << 20);
  let at = 0;
  let counter = 0;
  while (at < base.length) at += createHash('sha256').update(`${seed}:0:${counter++}`).digest().copy(base, at);
  const h = createHash('sha256');
  for (let i = 0; i < mib; i += 1) {
    base.writeUInt32LE(i, 0);
    h.update(base);
  }
  return h.digest('hex');
}

export interface TransferEnd {
  readonly ns: string;
  readonly cpu: string;
}

export interface TransferResult {
  /** What the listener received (sent by the connecting end, seed 'from-client'). */
  readonly atServer: { received: number; sha256: string };
  /** What the connecting end received (sent by the listener, seed 'from-server'). */
  readonly atClient: { received: number; sha256: string };
}

/**
 * `mib` MiB each way at once over one TCP connection: a listener on `serverIp`:`port` in
 * `server.ns`, the connecting end in `client.ns`. Compare with expectedHash('from-client' /
 * 'from-server', mib).
 */
export async function transfer(server: TransferEnd & { ip: string }, client: TransferEnd, mib: number, port: number, ms = 600_000): Promise<TransferResult> {
  const listener = startBackend([IP, 'netns', 'exec', server.ns, 'taskset', '-c', server.cpu, process.execPath, TRANSFER, 'listen', server.ip, String(port), String(mib), 'from-server']);
  try {
    await waitForOutput(listener, 'listening', 120_000, 'the transfer listener');
    const c = await runInNs(client.ns, client.cpu, [process.execPath, TRANSFER, 'connect', server.ip, String(port), String(mib), 'from-client'], ms);
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([listener.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 120_000)))]);
    clearTimeout(timer);
    if (code !== 0) throw new Error(`the transfer listener ${code === 'timeout' ? 'did not finish' : `exited ${String(code)}`}:\n${tail(listener.output())}`);
    const last = (text: string): { received: number; sha256: string } => JSON.parse(text.trim().split('\n').pop()!) as { received: number; sha256: string };
    return { atServer: last(listener.stdout().toString()), atClient: last(c) };
  } finally {
    await stopProc(listener, 'SIGKILL').catch(() => {});
  }
}
