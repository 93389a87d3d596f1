#!/usr/bin/env node
// scripts/hostile-table.mjs <guest log>: the hostile suite's per-case figures from a
// test:qemu log (the `canary baseline:` and `hostile: {json}` lines the suite prints at its end),
// as one line per case: the canary's p99 on each register and on the C-floor control with their
// ratios to the baseline, the daemon's collections (count/longest ms), its JavaScript thread's
// longest run-queue wait (ms) and the other threads' CPU by name (ms). OVER: a register's p99
// above 2x its baseline; OVER-C: still above after dividing by the control's own ratio (when
// above 1), i.e. what the machine did to a C device model in the same case taken out.
import fs from 'node:fs';

const file = process.argv[2];
if (file === undefined) {
  console.error('usage: scripts/hostile-table.mjs <qemu/out/logs/...-test-qemu.log>');
  process.exit(2);
}
let base;
const cases = [];
for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
  const b = /canary baseline: (\{.*?\}), RSS/.exec(line);
  if (b) base = JSON.parse(b[1]);
  const h = /hostile: (\{.*\})\s*$/.exec(line);
  if (h) cases.push(JSON.parse(h[1]));
}
if (base === undefined) {
  console.error(`${file}: no "canary baseline:" line (did the hostile suite run to its end?)`);
  process.exit(1);
}
const p99 = (x) => x?.p99Us ?? NaN;
console.log(`baseline p99: native ${p99(base.native)} us, js ${p99(base.js)} us, control ${p99(base.floor)} us`);
let over = 0;
let overC = 0;
for (const c of cases) {
  const k = c.canary;
  const rn = p99(k.native) / p99(base.native);
  const rj = p99(k.js) / p99(base.js);
  const rf = k.floor === undefined ? 1 : p99(k.floor) / p99(base.floor);
  const cf = Math.max(1, rf);
  const o = rn > 2 || rj > 2;
  const oc = rn / cf > 2 || rj / cf > 2;
  over += o ? 1 : 0;
  overC += oc ? 1 : 0;
  const gc = c.gc === undefined ? '-' : `${c.gc.count}/${c.gc.maxMs}`;
  const wait = c.sched === undefined ? '-' : String(c.sched.waitMaxMs);
  const threads = c.threads === undefined ? '-' : JSON.stringify(c.threads.othersByName ?? {});
  console.log(
    `${c.name.slice(0, 56).padEnd(56)} native ${String(p99(k.native)).padStart(6)} (${rn.toFixed(1)}) js ${String(p99(k.js)).padStart(6)} (${rj.toFixed(1)}) ` +
      `control ${String(p99(k.floor)).padStart(6)} (${rf.toFixed(1)}) gc ${gc} wait ${wait} threads ${threads}${o ? ' OVER' : ''}${oc ? ' OVER-C' : ''}`,
  );
}
console.log(`${cases.length} cases, ${over} over 2x, ${overC} over 2x after the control`);
