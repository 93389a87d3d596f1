// One `baoctl run` for the hostile suite: JSON logs kept with the time each line arrived (to
// measure log rates per device model), its status socket read directly (pid, RSS, counters), and
// V8's own line per garbage collection (`--trace-gc`), so that a case's canary tail can be told
// apart: a collection pauses every device model in the process, whichever one's garbage it was.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';

import type { DaemonStatus } from '../../../../lib/vmm/status.js';

export interface LogLine {
  readonly at: number;
  readonly text: string;
  readonly device: number | undefined;
}

/** One collection, as `--trace-gc` reports it when it ends. */
export interface GcPause {
  readonly at: number;
  readonly kind: string;
  /** The main thread's pause. */
  readonly ms: number;
}

export interface GcFigures {
  readonly count: number;
  readonly totalMs: number;
  readonly maxMs: number;
}

// "[pid:isolate]   1234 ms: Scavenge 4.1 (4.2) -> 3.8 (5.2) MB, 0.94 / 0.00 ms  (average mu ..."
const GC_LINE = /^\[\d+:0x[0-9a-f]+\]\s+\d+ ms: ([A-Za-z-]+(?: \(reduce\))?) .*?MB, ([\d.]+) \/ [\d.]+ ms/;

/** The JavaScript thread's scheduler statistics over a window (kernel.sched_schedstats on). */
export interface SchedFigures {
  /** The longest stretch it was runnable and not running. */
  readonly waitMaxMs: number;
  /** All of those stretches together. */
  readonly waitSumMs: number;
}

function schedField(text: string, name: string): number {
  const m = new RegExp(`(?:^|\\.)${name}\\s*:\\s*([\\d.]+)`, 'm').exec(text);
  return m === null ? 0 : Number(m[1]);
}

export class RunningDaemon {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly gc: GcPause[] = [];
  readonly exited: Promise<number | null>;
  private partial = '';

  constructor(
    config: string,
    readonly statusSocket: string,
    /** Where the daemon writes a V8 CPU profile when it exits (`--cpu-prof`); none: no profile. */
    readonly cpuProfileDir?: string,
  ) {
    const profiling = cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir];
    this.child = spawn('taskset', ['-c', '1', process.execPath, '--trace-gc', ...profiling, 'bin/baoctl', 'run', config, '--log-format', 'json', '--status-socket', statusSocket], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (d: Buffer): void => {
      const text = this.partial + d.toString();
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      const at = Date.now();
      for (const line of parts) {
        if (line.trim() === '') continue;
        const gc = GC_LINE.exec(line);
        if (gc !== null) {
          this.gc.push({ at, kind: gc[1]!, ms: Number(gc[2]) });
          continue;
        }
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

  /** The collections whose line arrived between `from` and `to` (ms timestamps). */
  gcBetween(from: number, to: number): GcFigures {
    const pauses = this.gc.filter((g) => g.at >= from && g.at <= to).map((g) => g.ms);
    const totalMs = pauses.reduce((a, b) => a + b, 0);
    return { count: pauses.length, totalMs: Math.round(totalMs * 10) / 10, maxMs: Math.max(0, ...pauses) };
  }

  /**
   * Clears the JavaScript thread's (the main thread's: its tid is the pid) scheduler statistics;
   * false where the kernel keeps none (no schedstats).
   */
  schedReset(): boolean {
    const pid = this.child.pid;
    if (pid === undefined || !fs.existsSync('/proc/sys/kernel/sched_schedstats')) return false;
    // taskset exec()s node: the child's pid is the daemon's.
    fs.writeFileSync(`/proc/${pid}/sched`, '0');
    return true;
  }

  /** Each thread's CPU time and run-queue wait so far, ns (/proc/<pid>/task/<tid>/schedstat). */
  threadTimes(): Map<number, { name: string; run: number; wait: number }> {
    const out = new Map<number, { name: string; run: number; wait: number }>();
    const pid = this.child.pid;
    if (pid === undefined) return out;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        const [run, wait] = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
        const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        out.set(Number(tid), { name, run: run ?? 0, wait: wait ?? 0 });
      } catch {
        // the thread ended meanwhile
      }
    }
    return out;
  }

  /** The JavaScript thread's scheduler statistics since schedReset(). */
  sched(): SchedFigures | undefined {
    const pid = this.child.pid;
    if (pid === undefined) return undefined;
    const text = fs.readFileSync(`/proc/${pid}/sched`, 'utf8');
    const r = (ms: number): number => Math.round(ms * 100) / 100;
    // Only the statistics schedReset() clears: nr_involuntary_switches would count since the thread began.
    return { waitMaxMs: r(schedField(text, 'wait_max')), waitSumMs: r(schedField(text, 'wait_sum')) };
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
