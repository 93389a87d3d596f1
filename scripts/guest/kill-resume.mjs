#!/usr/bin/env node
// Kill and resume, run inside the Bao-equivalent guest (test/qemu/crash/kill-resume.test.ts runs
// 20 iterations; scripts/stress-kill-resume.sh 100). One `baoctl run` serves a virtio-rng, a
// virtio-console and a virtio-blk device model, bound to the guest's own virtio_rng,
// virtio_console and virtio_blk drivers, while the frontend reads /dev/hwrng, talks both ways
// over /dev/hvc0 and writes numbered 4 KiB records to the disk, each with O_DIRECT and an fsync
// (a FLUSH), noting each record once its fsync returned. The daemon is killed with SIGKILL, at a
// random instant or (every other run) on purpose right after it took a trapped access and
// before completing it, and started again. Each run must resume: the drivers are never reset
// (no fresh activation, no driver reset in the daemon's log: every device model says it
// resumed), the access the dead process took is completed by the new one, no request is left
// queued or in flight in bao-sim, /dev/hwrng answers, the disk takes writes again, every record
// whose fsync had returned is on the disk's backing file at each kill (and reads back through
// the frontend at the end), no write failed, and console lines in both directions arrive
// exactly once and in order.
//
// Usage: node scripts/guest/kill-resume.mjs [--iterations N] [--json]

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';

import { dmInfo, dmStats, sleep, startDaemon, waitFor } from './guest-daemon.mjs';

const args = process.argv.slice(2);
const at = args.indexOf('--iterations');
const iterations = at >= 0 ? Number(args[at + 1]) : 20;
if (!Number.isInteger(iterations) || iterations < 1) {
  console.error('kill-resume: --iterations takes a whole number of runs, at least 1');
  process.exit(2);
}
const json = args.includes('--json');
const CONFIG = '/tmp/node-bao-kill-resume.yaml';
const STATUS = '/tmp/node-bao-kill-resume.status.sock';
const CONSOLE = '/tmp/node-bao-kill-resume.console.sock';
const STATE_DIR = '/tmp/node-bao-kill-resume.state';
const RX = '/tmp/node-bao-kill-resume.rx'; // what the frontend read from /dev/hvc0
const GO = '/tmp/node-bao-kill-resume.go'; // the frontend's load runs while this exists
const DISK = '/tmp/node-bao-kill-resume.disk'; // the virtio-blk backing (tmpfs)
const ACKS = '/tmp/node-bao-kill-resume.acks'; // record numbers whose fsync returned, one a line
const RNG_DM = 0;
const CONSOLE_DM = 1;
const BLK_DM = 2;
const DMS = [RNG_DM, CONSOLE_DM, BLK_DM];
const DISK_SERIAL = 'nb-kill-resume';
const RECORD = 4096;
const RECORDS = 4096; // 16 MiB: record i goes to slot i % RECORDS
const MMIO_STATUS = 0x70;
const LIVE_STATUS = 0x0f; // ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK

/** The frontend's load, on the frontend CPU: hwrng reads, and console lines out while reading console input. */
function startFrontendLoad(disk) {
  fs.writeFileSync(GO, '');
  fs.writeFileSync(RX, '');
  const rng = spawn('taskset', ['-c', '0', 'sh', '-c', `while [ -e ${GO} ]; do dd if=/dev/hwrng bs=64 count=4 status=none; done > /dev/null`], { stdio: 'ignore' });
  const consoleScript = `exec 3<>/dev/hvc0; stty raw -echo <&3; cat <&3 > ${RX} & r=$!; i=0; while [ -e ${GO} ]; do printf 'G%06d\\n' $i >&3; i=$((i+1)); sleep 0.05; done; kill $r`;
  const con = spawn('taskset', ['-c', '0', 'sh', '-c', consoleScript], { stdio: 'ignore' });
  // Record i: "R<i>" padded with zeros to 4 KiB, written with O_DIRECT and fsync'ed; its number
  // is noted only once dd (and so the fsync) returned; a failed write is noted "E<i>".
  fs.writeFileSync(ACKS, '');
  const diskScript =
    `i=0; while [ -e ${GO} ]; do ` +
    `if printf 'R%08d\n' $i | dd of=/dev/${disk} bs=${RECORD} seek=$((i % ${RECORDS})) count=1 conv=sync,fsync oflag=direct status=none 2>/dev/null; ` +
    `then echo $i >> ${ACKS}; else echo E$i >> ${ACKS}; fi; i=$((i+1)); sleep 0.05; done`;
  const blk = spawn('taskset', ['-c', '0', 'sh', '-c', diskScript], { stdio: 'ignore' });
  const stopped = () => {
    try {
      return fs.readFileSync(`/proc/${con.pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T') === true;
    } catch {
      return true;
    }
  };
  return {
    /**
     * The console writer is stopped (between two lines) before a kill and continued once the
     * daemon resumed. In this machine the frontend is the backend's own kernel: a frontend stuck
     * in hvc output (which spins with interrupts off until the device takes the buffer) while no
     * daemon runs would stall the backend kernel, and with it the daemon's restart. On Bao they
     * are separate VMs.
     */
    pauseWriter: async () => {
      process.kill(con.pid, 'SIGSTOP');
      await waitFor(stopped, 30_000, 'the console writer to stop');
    },
    resumeWriter: () => process.kill(con.pid, 'SIGCONT'),
    stop: async () => {
      fs.rmSync(GO, { force: true });
      process.kill(con.pid, 'SIGCONT');
      const ended = (c) => new Promise((r) => (c.exitCode !== null ? r() : c.on('exit', r)));
      await Promise.race([Promise.all([rng, con, blk].map(ended)), sleep(30_000)]);
    },
  };
}

/** The console's backend side: one connection per daemon; everything received, across connections. */
class ConsoleClient {
  received = '';
  socket = undefined;

  async connect(deadlineMs) {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      try {
        const socket = net.createConnection(CONSOLE);
        await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        socket.on('data', (d) => (this.received += d.toString('latin1')));
        socket.on('error', () => {});
        this.socket = socket;
        return;
      } catch {
        if (Date.now() > deadline) throw new Error('the console socket did not accept a client');
        await sleep(100);
      }
    }
  }

  send(text) {
    this.socket?.write(text);
  }

  drop() {
    this.socket?.destroy();
    this.socket = undefined;
  }

  /** The daemon died: read what it had written before its end of the socket closed, then let go. */
  async drain(timeoutMs) {
    const socket = this.socket;
    if (socket === undefined) return;
    if (!socket.destroyed) await Promise.race([new Promise((r) => socket.once('close', r)), sleep(timeoutMs)]);
    this.drop();
  }
}

/**
 * Lines <prefix>000000.. must be consecutive: no gap, no duplicate (a last partial line is fine).
 * With `resends`, a line may also come as the client's marked resend (<prefix>NNNNNNR), and an
 * original followed by its resend counts once, in `resent`: the original was delivered late.
 */
function checkSequence(text, prefix, resends = false) {
  const lines = text.split('\n');
  lines.pop(); // partial or empty
  const bad = [];
  let resent = 0;
  let expect = 0;
  let last = '';
  const form = new RegExp(`^${prefix}(\\d{6})${resends ? '(R?)' : '()'}$`);
  for (const line of lines) {
    const m = form.exec(line);
    const n = m ? Number(m[1]) : -1;
    if (m && n === expect - 1 && m[2] === 'R' && last === `${prefix}${m[1]}`) {
      resent += 1; // the original, then the resend of the same line
    } else {
      if (n !== expect) bad.push(`expected ${prefix}${String(expect).padStart(6, '0')}, got ${JSON.stringify(line.slice(0, 20))}`);
      if (n >= 0) expect = n + 1;
      else expect += 1;
    }
    last = line;
  }
  return { lines: lines.length, bad, resent };
}

function logLines(output, what) {
  return output.split('\n').filter((l) => l.includes(what)).length;
}

/** The frontend's disk (vdX) with the test's serial, once virtio_blk has probed it. */
function diskBySerial(serial) {
  for (const name of fs.readdirSync('/sys/block')) {
    if (!name.startsWith('vd')) continue;
    try {
      if (fs.readFileSync(`/sys/block/${name}/serial`, 'utf8').trim() === serial) return name;
    } catch {
      // not probed yet
    }
  }
  return undefined;
}

/** Record numbers whose fsync returned, and the writes that failed. */
function readAcks() {
  const acked = [];
  const failed = [];
  for (const line of fs.readFileSync(ACKS, 'latin1').split('\n')) {
    if (/^\d+$/.test(line)) acked.push(Number(line));
    else if (/^E\d+$/.test(line)) failed.push(Number(line.slice(1)));
  }
  return { acked, failed };
}

/** Record number held by each slot of `bytes` (the disk's contents), -1 where none. */
function recordsIn(bytes) {
  const out = new Int32Array(RECORDS).fill(-1);
  for (let slot = 0; slot < RECORDS; slot += 1) {
    const at = slot * RECORD;
    if (bytes[at] !== 0x52) continue; // 'R'
    const m = /^R(\d{8})\n/.exec(bytes.subarray(at, at + 10).toString('latin1'));
    if (m) out[slot] = Number(m[1]);
  }
  return out;
}

/** Acknowledged records not on the disk: slot i % RECORDS holds neither i nor a later record of that slot. */
function missingRecords(acked, records) {
  const missing = [];
  for (const i of acked) {
    const held = records[i % RECORDS];
    if (held < i || held % RECORDS !== i % RECORDS) missing.push(i);
  }
  return missing;
}

async function main() {
  execFileSync('modprobe', ['virtio_rng']);
  execFileSync('modprobe', ['virtio_console']);
  execFileSync('modprobe', ['virtio_blk']);
  if (fs.existsSync('/sys/module/bao_sim')) execFileSync('rmmod', ['bao_sim']);
  execFileSync('modprobe', ['bao_sim', `ndms=${DMS.length}`, `frontends=${DMS.join(',')}`]);
  fs.rmSync(STATE_DIR, { recursive: true, force: true });
  fs.rmSync(CONSOLE, { force: true });
  fs.writeFileSync(DISK, '');
  fs.truncateSync(DISK, RECORDS * RECORD);
  fs.writeFileSync(
    CONFIG,
    [
      'devices:',
      `  - id: ${RNG_DM}`,
      '    type: rng',
      `    mmio_addr: ${dmInfo(RNG_DM).mmio_base}`,
      '    data_plane: virtio',
      `  - id: ${CONSOLE_DM}`,
      '    type: console',
      `    mmio_addr: ${dmInfo(CONSOLE_DM).mmio_base}`,
      '    data_plane: virtio',
      '    backend: socket',
      `    socket_path: ${CONSOLE}`,
      `  - id: ${BLK_DM}`,
      '    type: block',
      `    mmio_addr: ${dmInfo(BLK_DM).mmio_base}`,
      '    data_plane: virtio',
      `    file_path: ${DISK}`,
      '    advertise_flush: true',
      '    cache: writeback',
      `    serial: ${DISK_SERIAL}`,
      '',
    ].join('\n'),
  );
  const daemonArgs = [CONFIG, '--status-socket', STATUS, '--state-dir', STATE_DIR];
  let daemon = startDaemon(daemonArgs);
  await waitFor(() => fs.readFileSync('/sys/class/misc/hw_random/rng_available', 'utf8').includes('virtio_rng'), 240_000, 'virtio_rng to probe');
  await waitFor(() => {
    fs.closeSync(fs.openSync('/dev/hvc0', fs.constants.O_RDWR | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY));
    return true;
  }, 120_000, '/dev/hvc0');
  await waitFor(() => diskBySerial(DISK_SERIAL) !== undefined, 120_000, 'the disk to probe');
  const disk = diskBySerial(DISK_SERIAL);
  execFileSync('bao-cpu-split', ['0']);
  const devicesAtStart = fs.readdirSync('/sys/bus/virtio/devices').join(',');
  const client = new ConsoleClient();
  await client.connect(60_000);
  const load = startFrontendLoad(disk);
  let hostSent = 0; // H lines the frontend has read (confirmed)
  let pendingHost; // the H line written and not yet seen by the frontend (without its newline)
  const seenByFrontend = (line) => {
    const rx = fs.readFileSync(RX, 'latin1');
    return rx.includes(`${line}\n`) || rx.includes(`${line}R\n`);
  };
  /** One host-to-guest line at a time: the next only once the frontend read the previous. */
  const pumpHost = () => {
    if (pendingHost !== undefined) {
      if (!seenByFrontend(pendingHost)) return;
      hostSent += 1;
      pendingHost = undefined;
    }
    pendingHost = `H${String(hostSent).padStart(6, '0')}`;
    client.send(`${pendingHost}\n`);
  };
  let pump = setInterval(pumpHost, 150);
  await waitFor(() => client.received.includes('G000003'), 120_000, 'console output to flow');
  await waitFor(() => readAcks().acked.length >= 3, 120_000, 'fsync\'ed disk writes to flow');
  const missingAtKill = new Set(); // acknowledged records not on the backing file after a kill

  const results = [];
  for (let i = 0; i < iterations; i += 1) {
    const onPurpose = daemon.env !== undefined;
    const t0 = Date.now();
    let access;
    await load.pauseWriter();
    if (onPurpose) {
      // A frontend access (a vCPU paused on it) that the daemon takes, then dies on.
      const dm = DMS[Math.floor(i / 2) % DMS.length];
      access = { dm, value: frontendRead(dm, MMIO_STATUS) };
      if ((await Promise.race([daemon.exited, sleep(120_000).then(() => 'alive')])) === 'alive') {
        daemon.child.kill('SIGKILL'); // it never took the access: a plain kill then
        await daemon.exited;
      }
    } else {
      await sleep(300 + Math.floor(Math.random() * 1200));
      daemon.child.kill('SIGKILL');
      await daemon.exited;
    }
    clearInterval(pump);
    await client.drain(5000);
    const atKill = DMS.map((dm) => dmStats(dm));
    // No daemon runs: every record whose fsync returned must be on the backing file.
    const ackedAtKill = readAcks().acked;
    const lostNow = missingRecords(ackedAtKill, recordsIn(fs.readFileSync(DISK)));
    for (const r of lostNow) missingAtKill.add(r);
    // Every other restart makes the next daemon kill itself after taking a request.
    const nextOnPurpose = i + 1 < iterations && i % 2 === 0;
    const started = Date.now();
    daemon = startDaemon(daemonArgs, nextOnPurpose ? { NODE_BAO_TEST_KILL_AFTER_TAKE: '1' } : undefined);
    const d = daemon;
    let why = '';
    let resumeMs = -1;
    try {
      await waitFor(() => logLines(d.output(), 'the driver keeps it') >= DMS.length, 180_000, 'every device model to resume');
      resumeMs = Date.now() - started;
      if (lostNow.length > 0) why = `${lostNow.length} record(s) whose fsync had returned were not on the disk after the kill (first ${lostNow[0]})`;
      await client.connect(60_000);
      pump = setInterval(pumpHost, 150);
      load.resumeWriter();
      if (access !== undefined) {
        const value = await Promise.race([access.value, sleep(60_000).then(() => 'timeout')]);
        if (value !== LIVE_STATUS) why = `the access taken by the killed daemon (dm${access.dm} Status read) completed with ${value}, not 0x${LIVE_STATUS.toString(16)}`;
      }
      const before = client.received.length;
      const hostBefore = hostSent;
      await waitFor(() => client.received.length > before + 16, 60_000, 'console output after the restart');
      // A host line the killed daemon had received and not yet given to the guest died with it:
      // the client sends it again (once the frontend has had time to read what it did get),
      // marked R: the killed daemon may have given it to the guest after all, with the guest
      // reading it only after the resume's interrupt, later than this wait. Two copies of one
      // line, one of them R, are that; two identical copies would be the device's duplicate.
      await sleep(500);
      if (pendingHost !== undefined && !seenByFrontend(pendingHost)) client.send(`${pendingHost}R\n`);
      await waitFor(() => hostSent > hostBefore, 60_000, 'console input after the restart');
      if ((await readHwrng(32, 30_000)) !== 32) why ||= '/dev/hwrng did not answer';
      const acksBefore = ackedAtKill.length;
      await waitFor(() => readAcks().acked.length > acksBefore + 1, 60_000, 'fsync\'ed disk writes after the restart');
      await waitFor(() => DMS.every((dm) => dmStats(dm).queued === 0 && dmStats(dm).inflight === 0), 30_000, 'no request queued or in flight');
      const out = d.output();
      if (logLines(out, '"device activated"') > 0 || logLines(out, 'device reset by the driver') > 0) why ||= 'a driver reset its device';
      if (fs.readdirSync('/sys/bus/virtio/devices').join(',') !== devicesAtStart) why ||= 'the virtio devices changed';
    } catch (err) {
      why = String(err.message ?? err);
    }
    const leftovers = /left (\d+) trapped access/.exec(d.output())?.[1] ?? '0';
    const startup = /"startupMs":(\{[^}]*\})/.exec(d.output())?.[1];
    const r = {
      iteration: i + 1,
      kill: onPurpose ? 'after-take' : 'random',
      resumed: why === '',
      hang: /timed out/.test(why),
      reset: /reset its device|virtio devices changed/.test(why),
      resumeMs,
      startupMs: startup === undefined ? undefined : JSON.parse(startup),
      completedForDeadProcess: Number(leftovers),
      inflightAtKill: atKill.map((s) => s.inflight).join(','),
      queuedAtKill: atKill.map((s) => s.queued).join(','),
      ms: Date.now() - t0,
      ...(why ? { why, log: d.output().slice(-3000) } : {}),
    };
    results.push(r);
    console.log(
      `kill-resume ${i + 1}/${iterations} (${r.kill}): ${r.resumed ? 'resumed' : `NOT resumed (${why})`} in ${resumeMs} ms; ` +
        `accesses completed for the dead process: ${leftovers}; in flight at the kill: ${r.inflightAtKill}`,
    );
    if (!r.resumed) break;
  }
  clearInterval(pump);
  await load.stop();
  await sleep(500);
  // Every acknowledged record, read back through the frontend (O_DIRECT: from the daemon, not
  // the frontend's page cache), and on the backing file.
  const { acked, failed } = readAcks();
  let readBack = { missing: -1 };
  try {
    const viaFrontend = execFileSync('taskset', ['-c', '0', 'dd', `if=/dev/${disk}`, 'bs=1M', `count=${(RECORDS * RECORD) >> 20}`, 'iflag=direct', 'status=none'], {
      maxBuffer: RECORDS * RECORD + 1024,
      timeout: 120_000,
    });
    readBack = { missing: missingRecords(acked, recordsIn(viaFrontend)).length };
  } catch (err) {
    readBack = { missing: -1, error: String(err.message ?? err).slice(0, 200) };
  }
  const onBacking = missingRecords(acked, recordsIn(fs.readFileSync(DISK)));
  const out = checkSequence(client.received, 'G');
  const rxText = fs.readFileSync(RX, 'latin1').replace(/G\d{6}\n/g, '');
  const inp = checkSequence(rxText, 'H', true);
  client.drop();
  daemon.child.kill('SIGTERM');
  const code = await Promise.race([daemon.exited, sleep(15_000).then(() => 'timeout')]);
  const resumed = results.filter((r) => r.resumed).length;
  const times = results.filter((r) => r.resumeMs >= 0).map((r) => r.resumeMs).sort((a, b) => a - b);
  const median = (xs) => (xs.length === 0 ? -1 : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);
  // Where each restart's time went: the median of each start-up phase (ms since its process started).
  const phases = {};
  for (const r of results) for (const [k, v] of Object.entries(r.startupMs ?? {})) (phases[k] ??= []).push(v);
  const startupMedians = Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, median(v)]));
  const diskSummary = {
    records: acked.length,
    failedWrites: failed.length,
    missingAtKills: missingAtKill.size,
    missingOnBacking: onBacking.length,
    missingReadBack: readBack.missing,
    ...(readBack.error === undefined ? {} : { readBackError: readBack.error }),
  };
  const summary = {
    iterations,
    kills: results.length,
    resumed,
    failed: iterations - resumed,
    resets: results.filter((r) => r.reset).length,
    hangs: results.filter((r) => r.hang).length,
    disk: diskSummary,
    afterTake: results.filter((r) => r.kill === 'after-take' && r.resumed).length,
    completedForDeadProcess: results.reduce((n, r) => n + r.completedForDeadProcess, 0),
    consoleOut: { lines: out.lines, problems: out.bad.slice(0, 10), problemCount: out.bad.length },
    consoleIn: { lines: inp.lines, resentAfterLateDelivery: inp.resent, problems: inp.bad.slice(0, 10), problemCount: inp.bad.length },
    resumeMs: { median: times[Math.floor(times.length / 2)] ?? -1, max: times.at(-1) ?? -1 },
    startupMedianMs: startupMedians,
    lastExit: code,
    failures: results.filter((r) => !r.resumed),
  };
  const d = diskSummary;
  const diskOk = d.failedWrites === 0 && d.missingAtKills === 0 && d.missingOnBacking === 0 && d.missingReadBack === 0;
  console.log(
    [
      `kill-resume summary: ${results.length} kills, ${resumed} resumed, ${summary.resets} frontend resets, ${summary.hangs} hangs (of ${iterations} planned)`,
      `  console: guest->host ${out.lines} lines, ${out.bad.length} lost or duplicated; host->guest ${inp.lines} lines, ${inp.bad.length} lost or duplicated (${inp.resent} delivered late by a killed daemon and resent by the client, counted once)`,
      `  disk: ${d.records} fsync'ed records; missing after a kill ${d.missingAtKills}, on the backing at the end ${d.missingOnBacking}, read back through the frontend ${d.missingReadBack}; failed writes ${d.failedWrites}`,
      `  accesses taken by a killed daemon and completed by the next: ${summary.completedForDeadProcess} (kills after a take: ${summary.afterTake})`,
      `  resume (start to every device model resumed): median ${summary.resumeMs.median} ms, max ${summary.resumeMs.max} ms`,
      `  start-up phases, median ms since the process started: ${JSON.stringify(startupMedians)}`,
    ].join('\n'),
  );
  if (json) console.log(JSON.stringify(summary));
  try {
    execFileSync('rmmod', ['bao_sim'], { timeout: 20_000 });
  } catch {
    // left loaded: the guest is about to end
  }
  process.exitCode = resumed === iterations && out.bad.length === 0 && inp.bad.length === 0 && diskOk ? 0 : 1;
}

/** A frontend register read through bao-sim's debugfs, as a vCPU makes it: the value it completed with. */
function frontendRead(dm, offset) {
  const script = `exec 3<>/sys/kernel/debug/bao-sim/dm${dm}/access && echo "read ${offset} 4" >&3 && cat <&3`;
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d.toString()));
    child.on('close', () => resolve(/^0x[0-9a-f]+/.test(out.trim()) ? Number(out.trim()) : `failed (${out.trim()})`));
  });
}

/** Reads `count` bytes of /dev/hwrng from the frontend CPU, bounded. */
function readHwrng(count, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn('taskset', ['-c', '0', 'dd', 'if=/dev/hwrng', `bs=${count}`, 'count=1', 'iflag=fullblock', 'status=none'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let n = 0;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => (n += d.length));
    child.on('close', () => {
      clearTimeout(timer);
      resolve(n);
    });
  });
}

await main();
