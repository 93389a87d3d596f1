// The daemon's status socket: HTTP GET /status on a unix socket. It takes over a stale socket
// file, never somebody else's live socket or file, and leaves nothing behind when closed.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { request } from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { silentLogger } from '../../../lib/virtio/logger.js';
import type { DaemonStatus } from '../../../lib/vmm/status.js';
import { DaemonMetrics } from '../../../lib/vmm/metrics.js';
import { openStatusServer, parseListenAddress } from '../../../lib/vmm/status-server.js';
import { testTempDir } from '../../support/temp-dir.js';

const STATUS: DaemonStatus = { pid: 1, state: 'serving', config: 'vm.yaml', startedAt: '2026-11-23T00:00:00.000Z', uptimeMs: 5, devices: [] };

const dir = (): string => testTempDir('node-bao-status-server-');

function httpGet(socketPath: string, url: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: url, method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the status socket', () => {
  it('answers GET /status with the status JSON as it is at the time of the request', async () => {
    const socket = path.join(dir(), 'nested', 'status.sock');
    let uptimeMs = 5;
    const server = await openStatusServer({ path: socket, status: () => ({ ...STATUS, uptimeMs }), log: silentLogger });
    try {
      expect(JSON.parse((await httpGet(socket, '/status')).body)).toEqual(STATUS);
      uptimeMs = 99;
      expect(JSON.parse((await httpGet(socket, '/status')).body)).toMatchObject({ uptimeMs: 99 });
      expect(await httpGet(socket, '/metrics')).toMatchObject({ status: 404 });
      expect(await httpGet(socket, '/status', 'POST')).toMatchObject({ status: 404 });
    } finally {
      await server.close();
    }
    expect(fs.existsSync(socket)).toBe(false);
  });

  it('answers 500, and keeps serving, when taking the snapshot throws', async () => {
    const socket = path.join(dir(), 'status.sock');
    let fail = true;
    const server = await openStatusServer({
      path: socket,
      status: () => {
        if (fail) throw new Error('boom');
        return STATUS;
      },
      log: silentLogger,
    });
    try {
      expect((await httpGet(socket, '/status')).status).toBe(500);
      fail = false;
      expect((await httpGet(socket, '/status')).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('replaces a stale socket file left by a daemon that died', async () => {
    const socket = path.join(dir(), 'status.sock');
    // A daemon killed while listening leaves its socket file, with nobody behind it.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(fs.existsSync(socket)).toBe(true);
    const server = await openStatusServer({ path: socket, status: () => STATUS, log: silentLogger });
    try {
      expect((await httpGet(socket, '/status')).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('refuses a path where another process listens, or that is not a socket, naming it and what to do', async () => {
    const d = dir();
    const live = path.join(d, 'live.sock');
    const other = net.createServer().listen(live);
    await new Promise((resolve) => other.once('listening', resolve));
    try {
      await expect(openStatusServer({ path: live, status: () => STATUS, log: silentLogger })).rejects.toMatchObject({
        code: 'STATUS_SOCKET_IN_USE',
        path: live,
        message: `status socket ${live}: another daemon is serving status there; give another path with --status-socket, or --status-socket none`,
      });
    } finally {
      other.close();
    }
    const file = path.join(d, 'file');
    fs.writeFileSync(file, 'mine');
    await expect(openStatusServer({ path: file, status: () => STATUS, log: silentLogger })).rejects.toMatchObject({ code: 'STATUS_SOCKET_PATH_OCCUPIED' });
    expect(fs.readFileSync(file, 'utf8')).toBe('mine');
  });

  it('answers GET /metrics in Prometheus text format when given the metrics', async () => {
    const socket = path.join(dir(), 'status.sock');
    const server = await openStatusServer({ path: socket, status: () => STATUS, metrics: new DaemonMetrics(() => STATUS), log: silentLogger });
    try {
      const res = await httpGet(socket, '/metrics');
      expect(res.status).toBe(200);
      expect(res.body).toContain('node_bao_up 1');
    } finally {
      await server.close();
    }
  });
});

describe('--metrics-listen addresses', () => {
  it('accepts host:port and [v6]:port, and nothing else', () => {
    expect(parseListenAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListenAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseListenAddress('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    for (const bad of ['9464', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', '::1:9464', 'host:port', '']) {
      expect(parseListenAddress(bad), bad).toBeUndefined();
    }
  });
});
