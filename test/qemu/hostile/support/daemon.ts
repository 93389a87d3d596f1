// One `baoctl run` for the hostile suite: JSON logs kept with the time each line arrived (to
// measure log rates per device model), and its status socket read directly (pid, RSS, counters).

import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';

import type { DaemonStatus } from '../../../../lib/vmm/status.js';

export interface LogLine {
  readonly at: number;
  readonly text: string;
  readonly device: number | undefined;
}

export class RunningDaemon {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly exited: Promise<number | null>;
  private partial = '';

  constructor(
    config: string,
    readonly statusSocket: string,
  ) {
    this.child = spawn('taskset', ['-c', '1', process.execPath, 'bin/baoctl', 'run', config, '--log-format', 'json', '--status-socket', statusSocket], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (d: Buffer): void => {
      const text = this.partial + d.toString();
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      const at = Date.now();
      for (const line of parts) {
        if (line.trim() === '') continue;
        const m = /"device":(\d+)/.exec(line);
        this.lines.push({ at, text: line, device: m?.[1] === undefined ? undefined : Number(m[1]) });
      }
    };
    this.child.stdout?.on('data', take);
    this.child.stderr?.on('data', take);
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  output(last = 40): string {
    return this.lines
      .slice(-last)
      .map((l) => l.text)
      .join('\n');
  }

  /** Log lines of device model `dm` since `since` (ms timestamp). */
  linesOf(dm: number, since: number): LogLine[] {
    return this.lines.filter((l) => l.device === dm && l.at >= since);
  }

  status(timeoutMs = 5000): Promise<DaemonStatus> {
    return new Promise((resolve, reject) => {
      const req = http.get({ socketPath: this.statusSocket, path: '/status', timeout: timeoutMs }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          try {
            resolve(JSON.parse(body) as DaemonStatus);
          } catch (err) {
            reject(err as Error);
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error('status socket did not answer')));
      req.on('error', reject);
    });
  }

  async stop(): Promise<number | null> {
    if (!this.alive) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const t = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000));
    const code = await Promise.race([this.exited, t]);
    if (code === 'timeout') {
      this.child.kill('SIGKILL');
      throw new Error(`the daemon did not stop on SIGTERM:\n${this.output()}`);
    }
    return code;
  }
}
