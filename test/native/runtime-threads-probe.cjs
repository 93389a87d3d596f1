// Preloaded (node --require) into `bin/baoctl run`: notes the threads that exist before the
// entry point runs (the JavaScript thread and Node's own helpers), lets the entry's synchronous
// part run, starts libuv's thread pool with one fs job, then prints on stderr the nice value of
// each group: {"main", "helpers": [...], "pool": [...]}, and ends the process.
'use strict';
const fs = require('fs');
const os = require('os');

const tids = () => fs.readdirSync('/proc/self/task').map(Number);
const before = new Set(tids());

setImmediate(() => {
  fs.readFile(__filename, () => {
    const nice = (t) => os.getPriority(t);
    const helpers = [...before].filter((t) => t !== process.pid).map(nice);
    const pool = tids().filter((t) => !before.has(t)).map(nice);
    process.stderr.write('PROBE ' + JSON.stringify({ main: nice(process.pid), helpers, pool }) + '\n');
    process.exit(0);
  });
});
