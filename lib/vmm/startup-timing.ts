// Where a daemon's start-up goes, in milliseconds since the process started (performance.now()):
// each phase is marked once as it ends, and `baoctl run` logs them all when its device models
// are served ("started in N ms"). A restarted daemon's frontends wait on this start (issue 13),
// so it is worth seeing; marking costs a clock read.
//
// bin/baoctl (CommonJS, loaded before any of this) leaves its own entry time on globalThis under
// ENTRY_KEY: what Node took to start.

const ENTRY_KEY = Symbol.for('node-bao.startup.entry');

const marks = new Map<string, number>();

/** Marks the end of a start-up phase (the first mark of a name counts). */
export function markStartup(phase: string): void {
  if (!marks.has(phase)) marks.set(phase, Math.round(performance.now()));
}

/** The phases so far, in order, as ms since the process started (`node` first when bin/baoctl ran). */
export function startupMarks(): Record<string, number> {
  const out: Record<string, number> = {};
  const entry = (globalThis as Record<symbol, unknown>)[ENTRY_KEY];
  if (typeof entry === 'number') out['node'] = Math.round(entry);
  for (const [phase, ms] of marks) out[phase] = ms;
  return out;
}
