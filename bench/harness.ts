// The in-process benchmark runner: every variant of a run is measured in the same process,
// interleaved round by round (in a new order each round), so that the load of this shared,
// noisy machine hits all variants alike. Each round gives every variant one time slice; its
// ops/s are compared with the baseline of its group *in the same round*, and the table reports
// the median of those per-round ratios with their quartiles. Absolute ops/s move with the
// machine's load; the ratios are the figures to read (bench/README.md).

import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A full GC before every slice, untimed: garbage left by one variant (64 KiB Buffers, say) must
 * not be collected on the next variant's time. Collections during a slice stay on its own bill.
 */
function collector(): () => void {
  const global = globalThis as { gc?: () => void };
  if (typeof global.gc === 'function') return global.gc;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
const collect = collector();

/** Deterministic shuffle (mulberry32), so that no variant always follows the same one. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let a = seed >>> 0;
  const random = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

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
  /** Median over rounds, per second of process CPU time. */
  readonly opsPerSec: number;
  /** Median of this round's ops/s divided by the baseline's in the same round. */
  readonly ratio: number;
  /** First and third quartiles of those per-round ratios. */
  readonly ratioQ1: number;
  readonly ratioQ3: number;
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
 * Calls `fn` in batches until `ms` of wall time have passed; returns calls per second of this
 * process's CPU time (user + system, all threads: GC helpers included, so allocation costs what
 * it costs). CPU time rather than wall time because this shared 2-core machine deschedules a
 * slice for whole milliseconds at a time; what is left (cache and memory-bus contention from the
 * other core's load) is what interleaving the variants cancels.
 */
function timeSlice(p: Prepared, ms: number): number {
  const fn = p.fn;
  const batch = p.batch;
  let calls = 0;
  const end = performance.now() + ms;
  const cpu0 = process.cpuUsage();
  do {
    for (let i = 0; i < batch; i += 1) fn();
    calls += batch;
  } while (performance.now() < end);
  const cpu = process.cpuUsage(cpu0);
  const micros = cpu.user + cpu.system;
  return (calls * 1e6) / Math.max(micros, 1);
}

/** The q-quantile (0..1) of `values`, linearly interpolated. */
function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (at - lo);
}

function median(values: readonly number[]): number {
  return quantile(values, 0.5);
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
  for (let round = 0; round < options.rounds; round += 1) {
    // A new order every round: no variant always runs first, or right after the same one.
    for (const p of shuffled(prepared, round + 1)) {
      collect();
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
      ratioQ1: quantile(ratios, 0.25),
      ratioQ3: quantile(ratios, 0.75),
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
  const header = ['variant', `${unit}/s`, `CPU per ${unit}`, 'ratio', 'ratio IQR'];
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
      r.baseline ? '' : `${r.ratioQ1.toFixed(2)}..${r.ratioQ3.toFixed(2)}`,
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
