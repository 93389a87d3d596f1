// Preloaded (node --require) into `bin/baoctl run`: once the entry point's synchronous part
// has run (bin/baoctl has set UV_THREADPOOL_SIZE by then), it queues PROBE_READS one-byte reads
// on a FIFO, each a libuv pool job that blocks in read(2) until data arrives, and counts the
// threads blocked in read on that FIFO (/proc/self/task/*/syscall) until PROBE_EXPECT are, then
// prints {"blocked", "threads"} on stderr and writes the bytes that let every read finish.
'use strict';
const fs = require('fs');

const fifo = process.env.PROBE_FIFO;
const expect = Number(process.env.PROBE_EXPECT);
const reads = Number(process.env.PROBE_READS || '100');
const NR_READ = { x64: 0, arm64: 63, riscv64: 63 }[process.arch];

function blockedIn(fd) {
  let blocked = 0;
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const f = fs.readFileSync('/proc/self/task/' + tid + '/syscall', 'utf8').split(' ');
      if (Number(f[0]) === NR_READ && Number(f[1]) === fd) blocked += 1;
    } catch (err) {
      // the thread ended
    }
  }
  return blocked;
}

setImmediate(function () {
  const fd = fs.openSync(fifo, fs.constants.O_RDWR);
  const buf = Buffer.alloc(reads);
  for (let i = 0; i < reads; i += 1) fs.read(fd, buf, i, 1, null, function () {});
  const deadline = Date.now() + 120000;
  let most = 0;
  const look = function () {
    const n = blockedIn(fd);
    most = Math.max(most, n);
    if (n < expect && Date.now() < deadline) {
      setTimeout(look, 20);
      return;
    }
    const threads = fs.readdirSync('/proc/self/task').length;
    process.stderr.write('PROBE ' + JSON.stringify({ blocked: most, threads: threads }) + '\n');
    fs.writeSync(fd, Buffer.alloc(reads, 0x61));
  };
  look();
});
