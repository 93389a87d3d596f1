// The first error a monitoring user meets: `baoctl status` as a user who may not open the
// daemon's status socket (root's, mode 0600) says what to do: run as root, or have the daemon
// give a group access. Run for real as user nobody (runuser), so it needs root here.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

import { PACKAGE_ROOT } from '../../lib/native.js';
import { skipBecause } from './skip.js';

const run = promisify(execFile);

describe('baoctl status without access to the socket', () => {
  it('exits 1 and names both ways in: root, or --status-socket-group/--status-socket-mode', async (ctx) => {
    if (process.getuid?.() !== 0) skipBecause(ctx, 'needs root (to run baoctl as user nobody with runuser)');
    if (!fs.existsSync('/usr/sbin/runuser') && !fs.existsSync('/sbin/runuser')) skipBecause(ctx, 'runuser is not installed (Debian package util-linux)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-status-perm-'));
    fs.chmodSync(dir, 0o755);
    const socket = path.join(dir, 'status.sock');
    const server = http.createServer((_req, res) => res.end('{}'));
    try {
      await new Promise<void>((resolve) => server.listen(socket, resolve));
      fs.chmodSync(socket, 0o600);
      const r = await run('runuser', ['-u', 'nobody', '--', process.execPath, path.join(PACKAGE_ROOT, 'bin', 'baoctl'), 'status', '--socket', socket], {
        encoding: 'utf8',
        timeout: 120_000,
      }).then(
        (ok) => ({ status: 0, stderr: ok.stderr }),
        (e: { code?: number; stderr?: string }) => ({ status: e.code ?? -1, stderr: e.stderr ?? '' }),
      );
      if (/Permission denied|EACCES/.test(r.stderr) && !r.stderr.includes(socket)) {
        skipBecause(ctx, `user nobody cannot run baoctl from ${PACKAGE_ROOT} (${r.stderr.trim().split('\n')[0]})`);
      }
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        `baoctl status: ${socket}: permission denied; run as root, or start the daemon with --status-socket-group <group> --status-socket-mode 0660 and join that group\n`,
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
