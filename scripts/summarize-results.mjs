// Adds up vitest JSON reports (host and guest) into the one closing line CI reads:
// "N passed, N failed, N skipped". A missing or empty report counts as a failure,
// so a suite that silently ran nothing never looks green.
import { readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
let problems = 0;
for (const file of process.argv.slice(2)) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    console.log(`${file}: no readable report (${err.message})`);
    problems += 1;
    continue;
  }
  const p = report.numPassedTests ?? 0;
  const f = report.numFailedTests ?? 0;
  const s = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  console.log(`${file}: ${p} passed, ${f} failed, ${s} skipped`);
  if (p + f === 0) problems += 1;
  passed += p;
  failed += f;
  skipped += s;
}
if (process.argv.length <= 2) problems += 1;
console.log(`${passed} passed, ${failed + problems} failed, ${skipped} skipped`);
process.exit(failed + problems > 0 ? 1 : 0);
