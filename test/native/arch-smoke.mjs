// Smoke check of the addon on whatever architecture runs this script (plain JavaScript, so an
// emulated foreign node, e.g. Debian's arm64 node under qemu-user, runs it without vitest).
// Usage: node arch-smoke.mjs <package root with prebuilds/ or build/> '<expected abi() JSON>' [emulated]
// `emulated`: under qemu-user, which answers ioctls it has no translation for with ENOSYS
// instead of passing them to the kernel, so the Bao ioctls cannot reach the ENOTTY path there.
// Prints "ARCH-SMOKE OK <arch> <n> checks" or throws.

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

const [root, expectedJson, mode] = process.argv.slice(2);
const NOT_BAO = mode === 'emulated' ? ['ENOTTY', 'ENOSYS'] : ['ENOTTY'];
const require = createRequire(import.meta.url);
const addon = require('node-gyp-build')(root);
let checks = 0;

function check(name, ok, detail = '') {
  if (!ok) throw new Error(`arch smoke: ${name} failed ${detail}`);
  checks++;
}

function throwsCode(name, fn, codes, syscall) {
  try {
    fn();
  } catch (e) {
    check(name, codes.includes(e.code) && (syscall === undefined || e.syscall === syscall), JSON.stringify({ code: e.code, syscall: e.syscall }));
    return e;
  }
  check(name, false, '(did not throw)');
}

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

// 1. The ABI as this target's compiler computes it.
if (expectedJson !== undefined) {
  const got = JSON.stringify(addon.abi());
  check('abi() equals lib/uapi', got === expectedJson, `\n got ${got}\nwant ${expectedJson}`);
}

// 2. eventfd round trip and a poll wake-up.
const c = addon.constants;
const efd = addon.eventfd(0, c.EFD_NONBLOCK | c.EFD_CLOEXEC);
const buf = Buffer.alloc(8);
buf.writeBigUInt64LE(5n);
fs.writeSync(efd, buf);
let woke = 0;
const poller = new addon.Poller(efd, (err) => {
  if (err === null) woke++;
  fs.readSync(efd, buf, 0, 8, null);
});
poller.start();
await tick();
check('poller wakes on a readable eventfd', woke === 1);
check('eventfd read returns the sum', buf.readBigUInt64LE() === 5n);
poller.close();
poller.close();
fs.closeSync(efd);

// 3. One file mapped twice: a write through one mapping shows through the other; unmap detaches.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-smoke-'));
const file = path.join(dir, 'shm');
fs.writeFileSync(file, Buffer.alloc(8192));
const fd = fs.openSync(file, 'r+');
const a = addon.mmap(fd, 8192, 0, c.PROT_READ | c.PROT_WRITE);
const b = addon.mmap(fd, 8192, 0, c.PROT_READ | c.PROT_WRITE);
new Uint8Array(a)[4097] = 0x5a;
check('MAP_SHARED mappings share', new Uint8Array(b)[4097] === 0x5a);
addon.munmap(a);
addon.munmap(a);
check('munmap detaches', a.byteLength === 0);
addon.munmap(b);
fs.closeSync(fd);
fs.rmSync(dir, { recursive: true, force: true });

// 4. Bao ioctls on a non-Bao fd: ENOTTY, with the ioctl named.
const nul = fs.openSync('/dev/null', 'r+');
throwsCode('DM_GET_INFO is ENOTTY', () => addon.dmGetInfo(nul, 0), NOT_BAO, 'ioctl(BAO_IOCTL_DM_GET_INFO)');
throwsCode('COMPLETE is ENOTTY', () => addon.complete(nul, 0, 0, 0, 1, 0n, 4, 0), NOT_BAO, 'ioctl(BAO_IOCTL_IO_REQUEST_COMPLETE)');
throwsCode('eventfd with bad flags is EINVAL', () => addon.eventfd(0, 0x7fffffff), ['EINVAL'], 'eventfd');

// 5. The attach thread reports ENOTTY as its end and is joined.
const end = await new Promise((resolve) => {
  const loop = new addon.AttachLoop(nul, 0, (reqs, count, err, reason) => {
    if (reason !== null) resolve({ err, reason, loop });
  });
});
check('attach ends with ENOTTY', end.reason === 'error' && NOT_BAO.includes(end.err.code) && end.err.syscall === 'ioctl(BAO_IOCTL_IO_CLIENT_ATTACH)');
await end.loop.stop();
check('attach loop no longer running', end.loop.running === false);
fs.closeSync(nul);

// 6. A raw pty.
const pty = addon.openpty();
check('openpty gives a /dev/pts slave', /^\/dev\/pts\/\d+$/.test(pty.path));
fs.closeSync(pty.fd);

console.log(`ARCH-SMOKE OK ${process.arch} ${checks} checks`);
