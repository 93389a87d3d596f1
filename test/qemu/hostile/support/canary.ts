// The canary's register latency: bao-sim's dm<N>/sample times READ round trips in the kernel
// (submit to completion, ns), as a frontend vCPU waits for them, in batches paced SAMPLE_US apart
// with the sampling task at SCHED_FIFO. Two registers, alternating batches: MagicValue, which the
// daemon's native ATTACH thread answers itself (lib/vmm/hot-registers.ts), and DeviceFeatures,
// which goes to the device model's JavaScript; p50/p99/max of each.
//
// Why paced and at SCHED_FIFO: on Bao the canary's frontend and an abusive one are different VMs,
// and Bao partitions physical CPUs statically, so they never share a CPU, and a vCPU resumes the
// moment its access is completed. In the test machine every frontend runs on guest CPU 0 (CPU 1
// is the backend's). A sampler looping as fast as it can next to an abuser looping as fast as it
// can counted, in every sample, the scheduler's delay in giving it CPU 0 back after its
// completion (a few milliseconds at the p99): time Bao's partitioning does not have. Woken at
// SCHED_FIFO it preempts the abuser at once, and sleeping between samples leaves the abuser CPU 0
// nearly all the time. What remains is the backend's answer (CPU 1), which is what is measured.
//
// A third register is the control: MagicValue of another device model, answered by the C floor
// (qemu/tools/bao-bench-responder, a separate process on the backend CPU: no JavaScript, nothing
// shared with the daemon). Whatever slows it during a case is the machine (under TCG both guest
// CPUs are host threads; when the abuse keeps both busy, the host's other threads take time from
// them) and not the daemon, so a case's slowdown is judged against the control's in the same
// case: what is left is what node-bao itself adds.

import { spawn } from 'node:child_process';

import { DEBUGFS } from '../../support/bao-sim.js';

export interface Latency {
  readonly samples: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

/** The registers sampled: the native thread's, the JavaScript thread's, the control's. */
export interface Canary {
  readonly native: Latency;
  readonly js: Latency;
  /** The C floor's, on the control device model (absent without one). */
  readonly floor?: Latency;
}

type Register = 'native' | 'js' | 'floor';
const OFFSETS = { native: 0x000, js: 0x010 } as const; // MagicValue, DeviceFeatures
const BATCH = 50;
const SAMPLE_US = 200;

function summarize(ns: number[]): Latency {
  const s = [...ns].sort((a, b) => a - b);
  const at = (q: number): number => Math.round((s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0) / 1000);
  return { samples: s.length, p50Us: at(0.5), p99Us: at(0.99), maxUs: Math.round((s.at(-1) ?? 0) / 1000) };
}

export class LatencySampler {
  private readonly ns: Record<Register, number[]> = { native: [], js: [], floor: [] };
  private readonly control: boolean;
  private readonly done: Promise<void>;
  private readonly child;

  /** Samples `dm`'s two registers, and `controlDm`'s MagicValue when given, in turn. */
  constructor(dm: number, controlDm?: number) {
    const file = `${DEBUGFS}/dm${dm}/sample`;
    this.control = controlDm !== undefined;
    // `read` is a shell builtin: no fork per sample. The file is opened again per batch (its
    // answer is read from the start). Each batch's lines are tagged with its register.
    const batches: [Register, string, number][] = [['native', file, OFFSETS.native], ['js', file, OFFSETS.js]];
    if (controlDm !== undefined) batches.push(['floor', `${DEBUGFS}/dm${controlDm}/sample`, 0]);
    const script = `while :; do for b in ${batches.map(([r, f, o]) => `${r}:${f}:${o}`).join(' ')}; do r=\${b%%:*}; x=\${b#*:}; f=\${x%:*}; o=\${x##*:}; exec 3<>$f; echo "${BATCH} ${SAMPLE_US} $o 4" >&3 || exit 1; while read -r v <&3; do echo "$r $v"; done; exec 3>&-; done; done\n`;
    this.child = spawn('taskset', ['-c', '0', 'sh', '-s'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let partial = '';
    this.child.stdout.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        const m = /^(native|js|floor) (\d+)$/.exec(p);
        const v = Number(m?.[2]);
        if (m === null || !(v > 0)) continue;
        this.ns[m[1] as Register].push(v);
      }
    });
    this.done = new Promise((resolve) => this.child.on('close', () => resolve()));
    this.child.stdin.end(script);
  }

  get count(): number {
    return Math.min(this.ns.native.length, this.ns.js.length, this.control ? this.ns.floor.length : Infinity);
  }

  /** Stops once at least `minSamples` of each register were taken (or `maxWaitMs` passed). */
  async stop(minSamples = 100, maxWaitMs = 10_000): Promise<Canary> {
    const deadline = Date.now() + maxWaitMs;
    while (this.count < minSamples && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.child.kill('SIGKILL');
    await this.done;
    const out = { native: summarize(this.ns.native), js: summarize(this.ns.js) };
    return this.control ? { ...out, floor: summarize(this.ns.floor) } : out;
  }
}

/** Samples for `ms` (and at least `minSamples` of each register). */
export async function measure(dm: number, ms: number, minSamples = 200, controlDm?: number): Promise<Canary> {
  const s = new LatencySampler(dm, controlDm);
  await new Promise((r) => setTimeout(r, ms));
  return s.stop(minSamples);
}
