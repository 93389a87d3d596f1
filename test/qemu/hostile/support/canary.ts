// The canary's register latency: bao-sim's dm<N>/bench times one READ round trip in the kernel
// (submit to completion, ns), as a frontend vCPU would wait for it. A shell on the frontend CPU
// takes one sample per bench command, as fast as it can, until stopped; p99 over the samples.

import { spawn } from 'node:child_process';

import { DEBUGFS } from '../../support/bao-sim.js';

export interface Latency {
  readonly samples: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

function summarize(ns: number[]): Latency {
  const s = [...ns].sort((a, b) => a - b);
  const at = (q: number): number => Math.round((s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0) / 1000);
  return { samples: s.length, p50Us: at(0.5), p99Us: at(0.99), maxUs: Math.round((s.at(-1) ?? 0) / 1000) };
}

export class LatencySampler {
  private readonly ns: number[] = [];
  private readonly done: Promise<void>;
  private readonly child;

  constructor(dm: number) {
    const file = `${DEBUGFS}/dm${dm}/bench`;
    // `read` is a shell builtin: no fork per sample.
    const script = `while :; do exec 3<>${file}; echo 1 >&3; read -r a <&3; read -r k v <&3; echo "$v"; exec 3>&-; done\n`;
    this.child = spawn('taskset', ['-c', '0', 'sh', '-s'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let partial = '';
    this.child.stdout.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        const v = Number(p);
        if (Number.isFinite(v) && v > 0) this.ns.push(v);
      }
    });
    this.done = new Promise((resolve) => this.child.on('close', () => resolve()));
    this.child.stdin.end(script);
  }

  get count(): number {
    return this.ns.length;
  }

  /** Stops once at least `minSamples` were taken (or `maxWaitMs` passed). */
  async stop(minSamples = 100, maxWaitMs = 10_000): Promise<Latency> {
    const deadline = Date.now() + maxWaitMs;
    while (this.ns.length < minSamples && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.child.kill('SIGKILL');
    await this.done;
    return summarize(this.ns);
  }
}

/** Samples for `ms` (and at least `minSamples`). */
export async function measure(dm: number, ms: number, minSamples = 200): Promise<Latency> {
  const s = new LatencySampler(dm);
  await new Promise((r) => setTimeout(r, ms));
  return s.stop(minSamples);
}
