#!/usr/bin/env node
// Soak, run inside the Bao-equivalent guest (scripts/soak.sh boots it): one `baoctl run` serves a
// virtio-rng, a virtio-console, a virtio-blk and a virtio-net to the guest's own drivers, and all
// are kept busy for the whole run: /dev/hwrng read without pause, /dev/hvc0 written by the
// frontend and read by a socket client at the backend, backend input typed back to the frontend,
// the disk read and written (direct I/O, each write followed by a flush), and TCP through the
// net device (iperf3 from the frontend's network namespace to a server behind the tap, in turns
// of 20 s each way). At every interval it
// prints the daemon's RSS, heap, open fds, event-loop delay (from its status socket) and the
// throughput of each device since the previous line; at the end, first and last figures side by
// side and a verdict, flat or not flat, with the reasons (see verdict() for the rules). Exit 0
// only when flat.
//
// Usage: node scripts/guest/soak.mjs [--duration S (3600)] [--interval S (60)]

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const v = Number(args[at + 1]);
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`soak: ${name} takes a positive number of seconds`);
    process.exit(2);
  }
  return v;
};
const durationS = opt('--duration', 3600);
const intervalS = opt('--interval', 60);
const CONFIG = '/tmp/node-bao-soak.yaml';
const STATUS = '/tmp/node-bao-soak-status.sock';
const CONSOLE = '/tmp/node-bao-soak-console.sock';
const DEBUGFS = '/sys/kernel/debug/bao-sim';
const BLK_IMAGE = '/tmp/node-bao-soak-blk.img';
const BLK_SERIAL = 'nb-soak';
const TAP = 'nbsoak0';
const GUEST_NS = 'nbsoakg';
const TAP_NS = 'nbsoakt';
const IP = '/usr/local/bin/ip';
const IPERF = '/usr/local/bin/iperf3';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function info(dm) {
  const out = {};
  for (const line of fs.readFileSync(`${DEBUGFS}/dm${dm}/info`, 'utf8').split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = check();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

function status() {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: STATUS, path: '/status', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('status socket did not answer')));
    req.on('error', reject);
  });
}

const loads = [];
function load(cpu, script) {
  // Its own process group: stopping it ends the commands its loop runs (dd, iperf3) too.
  const child = spawn('taskset', ['-c', cpu, 'sh', '-c', script], { stdio: 'ignore', detached: true });
  loads.push(child);
}

/** The vdX whose serial is `serial`, once virtio_blk has probed it. */
function diskBySerial(serial) {
  for (const name of fs.existsSync('/sys/block') ? fs.readdirSync('/sys/block') : []) {
    if (!name.startsWith('vd')) continue;
    try {
      if (fs.readFileSync(`/sys/block/${name}/serial`, 'utf8').trim() === serial) return name;
    } catch {
      // not probed yet
    }
  }
  return undefined;
}

/** The network interface virtio_net made for device model `dm`, once probed. */
function netIfname(dm) {
  const root = '/sys/bus/virtio/devices';
  for (const dev of fs.existsSync(root) ? fs.readdirSync(root) : []) {
    if (Number(fs.readFileSync(`${root}/${dev}/device`, 'utf8').trim()) !== 1) continue;
    if (!fs.realpathSync(`${root}/${dev}`).includes(`/bao-sim-frontend.${dm}/`)) continue;
    const dir = `${root}/${dev}/net`;
    return fs.existsSync(dir) ? fs.readdirSync(dir)[0] : undefined;
  }
  return undefined;
}

// Always from the frontend CPU: a change to the guest's interface can make virtio_net send control
// commands and spin until the device answers, and the backend's CPU must stay free to answer.
/** RssAnon, RssFile and RssShmem of a process from /proc/<pid>/status, in MiB (undefined if gone). */
function rssKinds(pid) {
  const out = {};
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    for (const [key, name] of [
      ['RssAnon', 'anon'],
      ['RssFile', 'file'],
      ['RssShmem', 'shmem'],
    ]) {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
      if (m) out[name] = +(Number(m[1]) / 1024).toFixed(1);
    }
  } catch {
    // the daemon is gone: the row says so
  }
  return out;
}

const ip = (...argv) => execFileSync('taskset', ['-c', '0', IP, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });

function consoleReady() {
  try {
    fs.closeSync(fs.openSync('/dev/hvc0', fs.constants.O_RDWR | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY));
    return true;
  } catch {
    return false;
  }
}

async function main() {
  execFileSync('modprobe', ['virtio_rng']);
  execFileSync('modprobe', ['virtio_console']);
  for (const m of ['virtio_blk', 'virtio_net', 'tun']) execFileSync('modprobe', [m]);
  if (fs.existsSync('/sys/module/bao_sim')) execFileSync('rmmod', ['bao_sim']);
  execFileSync('modprobe', ['bao_sim', 'ndms=4', 'frontends=0,1,2,3']);
  // Again now that the modules have started their kernel threads (qemu/guest/bao-cpu-split).
  execFileSync('bao-cpu-split', ['0']);
  for (const p of [STATUS, CONSOLE, BLK_IMAGE]) fs.rmSync(p, { force: true });
  fs.writeFileSync(BLK_IMAGE, '');
  fs.truncateSync(BLK_IMAGE, 64 << 20);
  for (const ns of [GUEST_NS, TAP_NS]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // not there
    }
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  fs.writeFileSync(
    CONFIG,
    [
      'devices:',
      '  - id: 0',
      '    type: rng',
      `    mmio_addr: ${info(0).mmio_base}`,
      '    data_plane: virtio',
      '  - id: 1',
      '    type: console',
      `    mmio_addr: ${info(1).mmio_base}`,
      '    data_plane: virtio',
      '    backend: socket',
      `    socket_path: ${CONSOLE}`,
      '  - id: 2',
      '    type: block',
      `    mmio_addr: ${info(2).mmio_base}`,
      '    data_plane: virtio',
      `    file_path: ${BLK_IMAGE}`,
      '    advertise_flush: true',
      `    serial: ${BLK_SERIAL}`,
      '  - id: 3',
      '    type: net',
      `    mmio_addr: ${info(3).mmio_base}`,
      '    data_plane: virtio',
      `    tap_name: ${TAP}`,
      '    mac_addr: "52:54:00:77:50:03"',
      '    create_tap: true',
      '',
    ].join('\n'),
  );
  const daemon = spawn('taskset', ['-c', '1', process.execPath, 'bin/baoctl', 'run', CONFIG, '--log-format', 'json', '--status-socket', STATUS], { stdio: ['ignore', 'ignore', 'pipe'] });
  let logBytes = 0;
  let logLines = 0;
  daemon.stderr.on('data', (d) => {
    logBytes += d.length;
    logLines += d.toString().split('\n').length - 1;
  });
  // A daemon start takes 15-30 s under TCG, more on a loaded host.
  await waitFor(
    () => fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').includes('virtio_rng') && consoleReady() && diskBySerial(BLK_SERIAL) !== undefined && netIfname(3) !== undefined && fs.existsSync(`/sys/class/net/${TAP}`),
    240_000,
    'the rng, console, block and net frontends',
  );
  execFileSync('bao-cpu-split', ['0']);
  const disk = diskBySerial(BLK_SERIAL);
  // The net device: its guest interface in one namespace, the tap in another, as two machines.
  const ifname = netIfname(3);
  ip('link', 'set', ifname, 'netns', GUEST_NS);
  ip('-n', GUEST_NS, 'addr', 'add', '10.77.0.2/24', 'dev', ifname);
  ip('-n', GUEST_NS, 'link', 'set', ifname, 'up');
  ip('link', 'set', TAP, 'netns', TAP_NS);
  ip('-n', TAP_NS, 'addr', 'add', '10.77.0.1/24', 'dev', TAP);
  ip('-n', TAP_NS, 'link', 'set', TAP, 'up');

  // The backend's side of the console: a client that reads everything and types a line a second.
  let clientBytes = 0;
  const client = net.createConnection(CONSOLE);
  client.on('data', (d) => (clientBytes += d.length));
  client.on('error', () => {});
  const typing = setInterval(() => client.write('backend input line\n'), 1000);

  // The network first: an iperf3 server behind the tap (the backend's CPU), and one short turn
  // each way before anything else runs. The network stack's first connections switch static keys
  // off (DO_ONCE: its hash secrets), and that patches kernel text, which waits for every CPU to
  // answer an IPI. In this machine's one kernel, a frontend CPU spinning with interrupts off in
  // virtio_console's put_chars until the backend answers cannot take that IPI, and the backend
  // cannot answer while its CPU waits for it: both hang. On Bao the two are different kernels.
  load('1', `exec ${IP} netns exec ${TAP_NS} ${IPERF} -s -B 10.77.0.1 > /dev/null 2>&1`);
  for (const dir of [[], ['-R']]) {
    for (let tries = 0; ; tries += 1) {
      try {
        execFileSync('taskset', ['-c', '0', IP, 'netns', 'exec', GUEST_NS, IPERF, '-c', '10.77.0.1', '-t', '2', ...dir], { stdio: 'ignore', timeout: 60_000 });
        break;
      } catch (err) {
        // the server may not listen yet
        if (tries >= 20) throw new Error(`the network warm-up failed: ${err.message}`);
        await sleep(1000);
      }
    }
  }

  load('0', 'while :; do dd if=/dev/hwrng bs=512 count=8 status=none; done > /dev/null');
  load('0', 'exec 3<>/dev/hvc0; stty raw -echo <&3; cat <&3 > /dev/null');
  load('0', 'exec 3<>/dev/hvc0; stty raw -echo <&3; i=0; while :; do echo "frontend line $i" >&3; i=$((i+1)); done');
  // The disk: 4 MiB read, then 1 MiB written and flushed, over and over, bypassing the page cache.
  load('0', `while :; do dd if=/dev/${disk} of=/dev/null bs=64k count=64 iflag=direct status=none; dd if=/dev/urandom of=/dev/${disk} bs=64k count=16 seek=64 oflag=direct conv=fsync status=none; done`);
  // The network: a client in the frontend's namespace sending, then receiving, 20 s each (a
  // failed turn is retried after a second).
  load('0', `while :; do ${IP} netns exec ${GUEST_NS} ${IPERF} -c 10.77.0.1 -t 20 > /dev/null 2>&1 || sleep 1; ${IP} netns exec ${GUEST_NS} ${IPERF} -c 10.77.0.1 -t 20 -R > /dev/null 2>&1 || sleep 1; done`);

  const rows = [];
  const t0 = Date.now();
  let prev;
  const sample = async () => {
    const s = await status();
    const rng = s.devices.find((d) => d.type === 'rng')?.metrics ?? {};
    const con = s.devices.find((d) => d.type === 'console')?.metrics ?? {};
    const blk = s.devices.find((d) => d.type === 'block')?.metrics ?? {};
    const nic = s.devices.find((d) => d.type === 'net')?.metrics ?? {};
    const now = {
      t: Date.now(),
      rng: rng.bytes ?? 0,
      tx: con.txBytes ?? 0,
      rx: con.rxBytes ?? 0,
      blk: (blk.readBytes ?? 0) + (blk.writtenBytes ?? 0),
      net: (nic.txBytes ?? 0) + (nic.rxBytes ?? 0),
    };
    const dt = prev === undefined ? 1 : (now.t - prev.t) / 1000;
    const p = s.process ?? {};
    const kinds = rssKinds(daemon.pid);
    const row = {
      elapsedS: Math.round((now.t - t0) / 1000),
      rssMB: +(p.rssBytes / 2 ** 20).toFixed(1),
      heapMB: +(p.heapUsedBytes / 2 ** 20).toFixed(1),
      externalMB: +(p.externalBytes / 2 ** 20).toFixed(1),
      // What the RSS is made of (the kernel's split): the process's own allocations, file pages
      // (code, libraries) and shared memory it maps.
      rssAnonMB: kinds.anon,
      rssFileMB: kinds.file,
      rssShmemMB: kinds.shmem,
      fds: p.openFds,
      eldP99Ms: p.eventLoopDelayMs?.p99,
      eldMaxMs: p.eventLoopDelayMs?.max,
      rngKBs: prev === undefined ? 0 : Math.round((now.rng - prev.rng) / dt / 1024),
      txKBs: prev === undefined ? 0 : Math.round((now.tx - prev.tx) / dt / 1024),
      rxBs: prev === undefined ? 0 : Math.round((now.rx - prev.rx) / dt),
      blkKBs: prev === undefined ? 0 : Math.round((now.blk - prev.blk) / dt / 1024),
      netKBs: prev === undefined ? 0 : Math.round((now.net - prev.net) / dt / 1024),
      logLines,
      alive: daemon.exitCode === null,
    };
    prev = now;
    rows.push(row);
    console.log(`soak ${JSON.stringify(row)}`);
  };
  let statusFailures = 0;
  for (let tries = 0; ; tries += 1) {
    try {
      await sample();
      break;
    } catch (err) {
      if (tries >= 30) throw err;
      await sleep(1000);
    }
  }
  while (Date.now() - t0 < durationS * 1000 && daemon.exitCode === null) {
    await sleep(Math.min(intervalS * 1000, durationS * 1000 - (Date.now() - t0)));
    await sample().catch((err) => {
      statusFailures += 1;
      console.log(`soak: status failed: ${err.message}`);
    });
  }
  clearInterval(typing);
  for (const l of loads) {
    try {
      process.kill(-l.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  client.destroy();
  daemon.kill('SIGTERM');
  const code = await Promise.race([new Promise((r) => daemon.on('exit', (c) => r(c))), sleep(20_000).then(() => 'timeout')]);
  const first = rows[1] ?? rows[0];
  const last = rows.at(-1);
  const summary = {
    durationS: Math.round((Date.now() - t0) / 1000),
    samples: rows.length,
    rssMB: [first?.rssMB, last?.rssMB],
    rssAnonMB: [first?.rssAnonMB, last?.rssAnonMB],
    rssFileMB: [first?.rssFileMB, last?.rssFileMB],
    rssShmemMB: [first?.rssShmemMB, last?.rssShmemMB],
    heapMB: [first?.heapMB, last?.heapMB],
    fds: [first?.fds, last?.fds],
    eldP99MsMax: Math.max(...rows.map((r) => r.eldP99Ms ?? 0)),
    rngKBsMean: Math.round(rows.slice(1).reduce((a, r) => a + r.rngKBs, 0) / Math.max(1, rows.length - 1)),
    txKBsMean: Math.round(rows.slice(1).reduce((a, r) => a + r.txKBs, 0) / Math.max(1, rows.length - 1)),
    blkKBsMean: Math.round(rows.slice(1).reduce((a, r) => a + r.blkKBs, 0) / Math.max(1, rows.length - 1)),
    netKBsMean: Math.round(rows.slice(1).reduce((a, r) => a + r.netKBs, 0) / Math.max(1, rows.length - 1)),
    consoleClientBytes: clientBytes,
    logLines,
    logBytes,
    exit: code,
  };
  const v = verdict(rows, code, statusFailures);
  summary.verdict = v.flat ? 'flat' : 'not flat';
  summary.checks = v.checks;
  console.log(`soak summary ${JSON.stringify(summary)}`);
  for (const c of v.checks) console.log(`soak check ${c.ok ? 'ok  ' : 'FAIL'} ${c.what}: ${c.detail}`);
  console.log(`soak verdict: ${v.flat ? 'FLAT' : 'NOT FLAT'}${v.flat ? '' : ` (${v.checks.filter((c) => !c.ok).map((c) => c.what).join(', ')})`}`);
  try {
    execFileSync('rmmod', ['bao_sim'], { timeout: 20_000 });
  } catch (err) {
    console.log(`soak: rmmod bao_sim failed (${err.message}); the verdict stands`);
  }
  process.exitCode = v.flat ? 0 : 1;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
};
const mean = (xs) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/**
 * Flat or not. The first quarter of the run (at least the first sample, taken before any load
 * figure exists) is warm-up: JIT, pools and buffers filling. The rest is cut in thirds, and the
 * last third is held against the first:
 *   * the daemon stayed alive, answered every sample, and exited 0 at SIGTERM;
 *   * RSS and heap: the lowest value of the last third (the level after GCs, not a sawtooth
 *     peak) is at most 10 % + 8 MiB above the lowest of the first third;
 *   * open fds: the highest of the last third is at most 2 above the highest of the first;
 *   * event-loop delay: the median p99 of the last third is at most 2x that of the first + 20 ms;
 *   * throughput (rng bytes, console output, block bytes read and written, net bytes both
 *     ways): the mean of the last third is at least half that of the first, and never zero for a
 *     whole third.
 * A run too short for three samples after warm-up cannot be judged: not flat.
 */
function verdict(rows, exitCode, statusFailures) {
  const checks = [];
  const check = (what, ok, detail) => checks.push({ what, ok, detail });
  const warm = Math.max(1, rows.findIndex((r) => r.elapsedS >= (rows.at(-1)?.elapsedS ?? 0) / 4));
  const judged = rows.slice(warm);
  check('daemon alive', rows.every((r) => r.alive) && exitCode === 0, `alive at every sample: ${rows.every((r) => r.alive)}; exit at SIGTERM: ${exitCode}`);
  check('status answered', statusFailures === 0, `${rows.length} samples, ${statusFailures} status requests failed`);
  if (judged.length < 3) {
    check('enough samples', false, `${judged.length} after warm-up; need 3 (a longer run or a shorter interval)`);
    return { flat: false, checks };
  }
  const third = Math.max(1, Math.floor(judged.length / 3));
  const a = judged.slice(0, third);
  const b = judged.slice(-third);
  const min = (rs, k) => Math.min(...rs.map((r) => r[k]));
  const max = (rs, k) => Math.max(...rs.map((r) => r[k]));
  for (const k of ['rssMB', 'heapMB']) {
    const from = min(a, k);
    const to = min(b, k);
    check(k === 'rssMB' ? 'RSS' : 'heap', to <= from * 1.1 + 8, `lowest ${from} MiB in the first third, ${to} MiB in the last (allowed ${(from * 1.1 + 8).toFixed(1)})`);
  }
  check('open fds', max(b, 'fds') <= max(a, 'fds') + 2, `highest ${max(a, 'fds')} in the first third, ${max(b, 'fds')} in the last`);
  const eldA = median(a.map((r) => r.eldP99Ms ?? 0));
  const eldB = median(b.map((r) => r.eldP99Ms ?? 0));
  check('event-loop delay', eldB <= 2 * eldA + 20, `median p99 ${eldA} ms in the first third, ${eldB} ms in the last`);
  for (const [k, what] of [
    ['rngKBs', 'rng throughput'],
    ['txKBs', 'console output throughput'],
    ['blkKBs', 'block throughput'],
    ['netKBs', 'net throughput'],
  ]) {
    const ta = mean(a.map((r) => r[k]));
    const tb = mean(b.map((r) => r[k]));
    check(what, tb >= ta / 2 && tb > 0, `mean ${ta.toFixed(1)} KiB/s in the first third, ${tb.toFixed(1)} KiB/s in the last`);
  }
  return { flat: checks.every((c) => c.ok), checks, warmupSamples: warm };
}

await main();
