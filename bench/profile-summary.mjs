// bench/profile-summary.mjs <dir> [N]: the self time by function of the V8 CPU profile in <dir>
// (node --cpu-prof), the N largest (default 25), as "# profile ..." lines. Shipped into the
// guest by the QEMU benchmarks that take --profile (bench/blk, bench/net): the profile is
// summarised where it was taken, so only these lines leave the guest.
import * as fs from 'node:fs';

const [dir, top = '25'] = process.argv.slice(2);
const file = fs.readdirSync(dir).find((n) => n.endsWith('.cpuprofile'));
if (file === undefined) {
  console.log(`# profile: none written in ${dir}`);
  process.exit(0);
}
const profile = JSON.parse(fs.readFileSync(`${dir}/${file}`, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
profile.samples.forEach((id, i) => {
  const { callFrame: cf } = byId.get(id);
  const key = `${cf.functionName || '(anonymous)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);
console.log(`# profile: ${(total / 1e6).toFixed(1)} s sampled`);
for (const [key, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
  console.log(`# profile ${((100 * us) / total).toFixed(1)}% ${key}`);
}
