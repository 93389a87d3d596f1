// Where the daemon's JavaScript thread was busy for a long stretch, from a V8 CPU profile
// (`--cpu-prof`): runs of consecutive samples outside "(idle)" longer than a bound, each with the
// functions most of its samples were in. The hostile suite prints them per case when asked
// (HOSTILE_CPU_PROF=1): a canary access answered by JavaScript waits for the whole of such a run.
// Sample times are CLOCK_MONOTONIC microseconds, the clock of process.hrtime in the test process.

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface LongTask {
  /** CLOCK_MONOTONIC, µs. */
  readonly startUs: number;
  readonly ms: number;
  /** The leaf functions with the most samples in the run, with their share. */
  readonly top: readonly string[];
}

/** V8's own pseudo-frames: counted under their name, not under one of our functions. */
const RUNTIME_FRAMES = new Set(['(idle)', '(program)', '(garbage collector)']);

function frameName(n: ProfileNode): string {
  const f = n.callFrame;
  const file = f.url.split('/').slice(-2).join('/');
  return `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}`;
}

/**
 * Runs of samples in JavaScript (anything but idle and "(program)") of at least `minMs`; a GC
 * sample inside a run counts as part of it (the thread was not free), one at its edge does not.
 */
export function longTasks(profile: CpuProfile, minMs: number): LongTask[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  /** The innermost frame of ours (lib/, dist/) on a sample's stack, else its leaf. */
  const label = (id: number): string => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (n !== undefined && /\/(dist|lib)\//.test(n.callFrame.url)) return frameName(n);
    }
    const leaf = byId.get(id);
    return leaf === undefined ? '?' : frameName(leaf);
  };
  const out: LongTask[] = [];
  let t = profile.startTime;
  let runStart = -1;
  let runEnd = -1;
  let labels = new Map<string, number>();
  const close = (): void => {
    if (runStart >= 0 && (runEnd - runStart) / 1000 >= minMs) {
      const total = [...labels.values()].reduce((a, b) => a + b, 0);
      const top = [...labels].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([name, n]) => `${Math.round((100 * n) / total)}% ${name}`);
      out.push({ startUs: runStart, ms: Math.round((runEnd - runStart) / 100) / 10, top });
    }
    runStart = -1;
    labels = new Map();
  };
  for (let i = 0; i < profile.samples.length; i += 1) {
    t += profile.timeDeltas[i] ?? 0;
    const node = byId.get(profile.samples[i]!);
    const name = node?.callFrame.functionName ?? '(idle)';
    if (name === '(idle)' || name === '(program)') {
      close();
      continue;
    }
    if (runStart < 0) runStart = t;
    runEnd = t;
    const l = RUNTIME_FRAMES.has(name) ? name : label(profile.samples[i]!);
    labels.set(l, (labels.get(l) ?? 0) + 1);
  }
  close();
  return out;
}
