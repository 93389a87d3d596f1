// Per-queue counters for bench/net (the guest job runs it after each measure on our device):
//   node counters.mjs <status socket> <dm id> <queue pairs> <netns> <interface> <state file>
// (run outside the namespace: `ip netns exec` mounts a sysfs of its own, without debugfs)
// prints one line of what changed since the previous call with the same state file (the first
// call only records): for the device model, the frontend's interrupts and trapped register
// accesses (bao-sim's debugfs counters); per queue, the kicks the driver made (ethtool -S) and
// the ones the device received, the used-buffer interrupts the device raised and the
// publications the driver had asked not to be told about (EVENT_IDX), and the frames the driver
// counted. Queue q of pair p: receiveq 2p, transmitq 2p+1; the control queue after them.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';

const [socketPath, dmText, pairsText, netns, iface, stateFile] = process.argv.slice(2);
const dm = Number(dmText);
const pairs = Number(pairsText);

function getStatus() {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/status', method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** "name value" lines (bao-sim's stats) or "name: value" lines (ethtool -S) into numbers. */
function parsePairs(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z0-9_]+):?\s+(-?\d+)\s*$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

function readTool(file, args) {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
}

const status = await getStatus();
const device = status.devices.find((d) => d.id === dm);
const t = device?.deviceModel?.transport ?? {};
const now = {
  sim: parsePairs(existsSync(`/sys/kernel/debug/bao-sim/dm${dm}/stats`) ? readFileSync(`/sys/kernel/debug/bao-sim/dm${dm}/stats`, 'utf8') : ''),
  driver: parsePairs(readTool('/usr/local/bin/ip', ['netns', 'exec', netns, '/usr/local/bin/ethtool', '-S', iface])),
  kicks: t.notifiesByQueue ?? [],
  irqs: t.usedInterruptsByQueue ?? [],
  suppressed: t.usedSuppressedByQueue ?? [],
};
const before = existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')) : undefined;
writeFileSync(stateFile, JSON.stringify(now));
if (before !== undefined) {
  const d = (a, b, k) => (a[k] ?? 0) - (b[k] ?? 0);
  const parts = [`fe-irqs=${d(now.sim, before.sim, 'fe_interrupts')}`, `trapped=${d(now.sim, before.sim, 'requests')}`];
  const queues = Math.max(now.kicks.length, now.irqs.length, now.suppressed.length);
  for (let q = 0; q < queues; q += 1) {
    const pair = q >>> 1;
    const dir = q === 2 * pairs ? 'ctrl' : q % 2 === 0 ? 'rx' : 'tx';
    const drvKicks = d(now.driver, before.driver, `${dir}_queue_${pair}_kicks`);
    const drvPackets = d(now.driver, before.driver, `${dir}_queue_${pair}_packets`);
    const kicks = d(now.kicks, before.kicks, q);
    const irqs = d(now.irqs, before.irqs, q);
    const suppressed = d(now.suppressed, before.suppressed, q);
    if (drvKicks === 0 && drvPackets === 0 && kicks === 0 && irqs === 0 && suppressed === 0) continue;
    parts.push(`| ${dir}${dir === 'ctrl' ? '' : pair}: pkts=${drvPackets} kicks=${drvKicks}/${kicks} irqs=${irqs} supp=${suppressed}`);
  }
  console.log(parts.join(' '));
}
