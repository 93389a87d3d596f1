// The in-process benchmark runner: every variant of a run is measured in the same process,
// interleaved round by round (the order rotates each round), so that the load of this shared,
// noisy machine hits all variants alike. Each round gives every variant one time slice; its
// ops/s are compared with the baseline of its group *in the same round*, and the table reports
// the median of those per-round ratios with their spread. Absolute ops/s move with the
// machine's load; the ratios are the figures to read (bench/README.md).

import { performance } from 'node:perf_hooks';

export interface Variant {
  /** Rows are grouped; ratios are against the group's baseline (its first variant by default). */
  readonly group: string;
  readonly name: string;
  readonly baseline?: boolean;
  /** What one call of the prepared function counts as (requests, register accesses...). */
  readonly opsPerCall?: number;
  /**
   * Builds the variant's state (outside timing) and returns the function to time. It should
   * check its own result once before returning (a benchmark of a broken path is worthless).
   */
  prepare(): () => void;
}

export interface RunOptions {
  readonly rounds: number;
  /** Time slice per variant per round. */
  readonly sliceMs: number;
  /** Untimed warm-up per variant (JIT) before the first round. */
  readonly warmupMs: number;
}

export interface Row {
  readonly group: string;
  readonly name: string;
  readonly baseline: boolean;
  /** Median over rounds. */
  readonly opsPerSec: number;
  /** Median of this round's ops/s divided by the baseline's in the same round. */
  readonly ratio: number;
  readonly ratioMin: number;
  readonly ratioMax: number;
}

interface Prepared {
  readonly variant: Variant;
  readonly fn: () => void;
  readonly opsPerCall: number;
  /** Calls per batch between clock reads, so the clock costs < 1% of the slice. */
  batch: number;
  readonly samples: number[];
}

/**
 * Calls `fn` in batches until `ms` have passed; returns calls per second over the batches that
 * were not preempted. On this shared 2-core machine a slice is often descheduled for whole
 * milliseconds; a batch longer than PREEMPTED x the slice's median batch is dropped as such.
 * (GC pauses shorter than that stay in, so allocation still costs what it costs.)
 */
const PREEMPTED = 3;

function timeSlice(p: Prepared, ms: number): number {
  const fn = p.fn;
  const batch = p.batch;
  const times: number[] = [];
  const start = performance.now();
  const end = start + ms;
  let before = start;
  let now = start;
  do {
    for (let i = 0; i < batch; i += 1) fn();
    now = performance.now();
    times.push(now - before);
    before = now;
  } while (now < end);
  const limit = PREEMPTED * median(times);
  let kept = 0;
  let total = 0;
  for (const t of times) {
    if (t <= limit) {
      kept += 1;
      total += t;
    }
  }
  return (kept * batch * 1000) / total;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function runInterleaved(variants: readonly Variant[], options: RunOptions, progress: (line: string) => void = () => {}): Row[] {
  const prepared: Prepared[] = variants.map((variant) => ({
    variant,
    fn: variant.prepare(),
    opsPerCall: variant.opsPerCall ?? 1,
    batch: 1,
    samples: [],
  }));
  // Warm-up, and batch calibration: a batch should take about 0.25 ms.
  for (const p of prepared) {
    timeSlice(p, options.warmupMs / 2);
    const rate = timeSlice(p, options.warmupMs / 2);
    p.batch = Math.max(1, Math.floor(rate / 4000));
  }
  const n = prepared.length;
  for (let round = 0; round < options.rounds; round += 1) {
    for (let k = 0; k < n; k += 1) {
      // Rotate the order each round so no variant always runs right after the same one.
      const p = prepared[(k + round) % n] as Prepared;
      p.samples.push(timeSlice(p, options.sliceMs) * p.opsPerCall);
    }
    progress(`round ${round + 1}/${options.rounds}`);
  }
  const baselineOf = new Map<string, Prepared>();
  for (const p of prepared) if (p.variant.baseline === true) baselineOf.set(p.variant.group, p);
  for (const p of prepared) if (!baselineOf.has(p.variant.group)) baselineOf.set(p.variant.group, p);
  return prepared.map((p) => {
    const base = baselineOf.get(p.variant.group) as Prepared;
    const ratios = p.samples.map((s, i) => s / (base.samples[i] as number));
    return {
      group: p.variant.group,
      name: p.variant.name,
      baseline: base === p,
      opsPerSec: median(p.samples),
      ratio: median(ratios),
      ratioMin: Math.min(...ratios),
      ratioMax: Math.max(...ratios),
    };
  });
}

function si(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} k`;
  return value.toFixed(0);
}

function nsPer(opsPerSec: number): string {
  const ns = 1e9 / opsPerSec;
  return ns >= 1e4 ? `${(ns / 1e3).toFixed(1)} us` : `${ns.toFixed(ns >= 100 ? 0 : 1)} ns`;
}

/** A plain-text table, one block per group; `unit` names what an op is. */
export function formatTable(rows: readonly Row[], unit: string): string {
  const header = ['variant', `${unit}/s`, `per ${unit}`, 'ratio', 'ratio range'];
  const lines: string[][] = [];
  const out: string[] = [];
  let group = '';
  const flush = (): void => {
    if (lines.length === 0) return;
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
    const fmt = (cells: readonly string[]): string =>
      cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
    out.push(`\n== ${group}`, fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(fmt));
    lines.length = 0;
  };
  for (const r of rows) {
    if (r.group !== group) {
      flush();
      group = r.group;
    }
    lines.push([
      `${r.name}${r.baseline ? ' (baseline)' : ''}`,
      si(r.opsPerSec),
      nsPer(r.opsPerSec),
      `${r.ratio.toFixed(2)}x`,
      r.baseline ? '' : `${r.ratioMin.toFixed(2)}..${r.ratioMax.toFixed(2)}`,
    ]);
  }
  flush();
  return out.join('\n');
}

/** `--name value` or `--name=value` from argv, else the default. */
export function numberArg(name: string, fallback: number): number {
  const argv = process.argv;
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i] as string;
    if (a === `--${name}` && argv[i + 1] !== undefined) return Number(argv[i + 1]);
    if (a.startsWith(`--${name}=`)) return Number(a.slice(name.length + 3));
  }
  return fallback;
}

export function stringArg(name: string): string | undefined {
  const argv = process.argv;
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i] as string;
    if (a === `--${name}` && argv[i + 1] !== undefined) return argv[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}
