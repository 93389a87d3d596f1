// `baoctl status`: asks a running daemon over its status socket (lib/vmm/status-server.ts) and
// prints one line per device: where the frontend driver is in its setup, and the counters that
// tell a stuck device from an idle one (requests, kicks, interrupts, guest faults, missed kicks).
// A missing or dead socket is explained with what to do; exit 1.

import { get } from 'node:http';

import type { DaemonStatus, DeviceStatus } from '../../../vmm/status.js';
import { writeJson, type Output } from '../../io.js';
import type { StatusArgs } from './options.js';

export interface StatusIo {
  readonly out?: Output;
  readonly err?: Output;
  readonly timeoutMs?: number;
}

/** GET /status on the unix socket `path`; rejects with a message that says what to do. */
export function fetchStatus(path: string, timeoutMs = 5000): Promise<DaemonStatus> {
  return new Promise((resolve, reject) => {
    const req = get({ socketPath: path, path: '/status', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) {
          reject(new Error(`${path}: the daemon answered ${res.statusCode}: ${body.trim()}`));
          return;
        }
        try {
          resolve(JSON.parse(body) as DaemonStatus);
        } catch {
          reject(new Error(`${path}: the answer is not JSON; is this a node-bao status socket?`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        reject(new Error(`no node-bao daemon serves status at ${path}: start one with \`baoctl run <config.yaml>\`, or give its --status-socket path with --socket`));
      } else if (err.code === 'ECONNREFUSED') {
        reject(new Error(`${path}: nothing listens there (left by a daemon that did not stop cleanly); start \`baoctl run\` again`));
      } else if (err.code === 'EACCES') {
        reject(new Error(`${path}: permission denied; run as root, or start the daemon with --status-socket-group <group> --status-socket-mode 0660 and join that group`));
      } else {
        reject(new Error(`${path}: ${err.message}`));
      }
    });
  });
}

/** Where the frontend driver is, from the status names (virtio 1.2 §3.1.1 order). */
export function driverStage(status: string): string {
  const bits = new Set(status.split('|'));
  if (bits.has('DEVICE_NEEDS_RESET')) return 'NEEDS_RESET';
  if (bits.has('FAILED')) return 'FAILED';
  if (bits.has('DRIVER_OK')) return 'live';
  if (bits.has('FEATURES_OK')) return 'setting up';
  if (bits.has('ACKNOWLEDGE')) return 'probing';
  return 'reset';
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

function num(record: Readonly<Record<string, unknown>> | undefined, key: string): number {
  const v = record?.[key];
  return typeof v === 'number' ? v : 0;
}

function deviceRow(d: DeviceStatus): string[] {
  const dm = d.deviceModel;
  const t = dm?.transport;
  return [
    String(d.id),
    d.type,
    d.mmioAddr,
    dm === undefined ? '?' : driverStage(dm.status),
    String(num(dm?.server, 'requests')),
    String(num(t, 'notifies')),
    String(num(t, 'usedInterrupts') + num(t, 'configInterrupts')),
    String(num(t, 'guestFaults')),
    String(num(t, 'missedKicks')),
  ];
}

export function formatStatusReport(status: DaemonStatus): string {
  const lines = [`node-bao daemon pid ${status.pid}, ${status.state}, ${status.config}, up ${duration(status.uptimeMs)}`];
  const rows = [['DM', 'TYPE', 'MMIO', 'DRIVER', 'REQUESTS', 'KICKS', 'IRQS', 'FAULTS', 'MISSED KICKS'], ...status.devices.map(deviceRow)];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) lines.push(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  for (const d of status.devices) {
    const info = Object.entries(d.info ?? {});
    if (info.length > 0) lines.push(`  ${d.type} ${d.id}: ${info.map(([k, v]) => `${k}=${v}`).join(' ')}`);
    const counters = Object.entries(d.metrics ?? {}).filter(([, v]) => v !== 0);
    if (counters.length > 0) lines.push(`  ${d.type} ${d.id}: ${counters.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Returns the exit code. */
export async function runStatus(args: StatusArgs, io: StatusIo = {}): Promise<number> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  let status: DaemonStatus;
  try {
    status = await fetchStatus(args.socket, io.timeoutMs);
  } catch (e) {
    err.write(`baoctl status: ${(e as Error).message}\n`);
    return 1;
  }
  if (args.json) writeJson(out, status);
  else out.write(formatStatusReport(status));
  return 0;
}
