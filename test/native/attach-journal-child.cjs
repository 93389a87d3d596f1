// Child of attach-journal.test.ts: maps the state file JOURNAL_FILE as the daemon does and starts
// an ATTACH loop on /dev/null with that journal, its thread stalled before its first ATTACH
// (testStallMs) with a journal slot armed as its request buffer. The parent plays the kernel
// (copies a request into the slot) and SIGKILLs this process.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '../..');
const addon = require('node-gyp-build')(root);
const fd = fs.openSync(process.env.JOURNAL_FILE, 'r+');
const bytes = fs.fstatSync(fd).size;
const PROT_READ_WRITE = 3;
const mapping = addon.mmap(fd, bytes, 0, PROT_READ_WRITE);
const devNull = fs.openSync('/dev/null', 'r+');
new addon.AttachLoop(devNull, 0, () => {}, { journal: mapping, journalOffset: 64, journalSlots: 64, testStallMs: 600000 });
process.stdout.write('started\n');
setInterval(() => {}, 1000);
