// The JS turn of a trapped access, in process: what the addon's delivery callback runs for an
// access that goes to JavaScript (the AttachLoop wrapper's decoding, DeviceModelServer, the
// transport, the state file's journal and save, DeviceModelHandle.complete down to the addon
// call), without the threads, the wake-ups and the syscalls that dominate bench/handoff's round
// trips on this host. The native side is played as the addon plays it: the request is written
// into a journal slot marked TAKEN (the ATTACH thread's record), then delivered in the buffer the
// addon passes; the addon's complete() is a counter. CPU per access (process user + system time)
// over --accesses accesses per class, median of --rounds rounds, the classes taking turns.
//
//   node node_modules/vite-node/vite-node.mjs bench/handoff/js-turn.bench.ts [--accesses 200000] [--rounds 7] [--only features-read,queuesel-write,queuesel-change]

import * as fs from 'node:fs';

import { DeviceModelHandle, EventFd, type IoRequest } from '../../lib/dispatcher/index.js';
import { RngDevice } from '../../lib/devices/rng/index.js';
import { loadAddon, type NativeAddon } from '../../lib/native.js';
import { IoOp } from '../../lib/uapi/constants.js';
import { VIRTIO_REQUEST } from '../../lib/uapi/layouts.js';
import { REVISION_ID } from '../../lib/uapi/index.js';
import { silentLogger } from '../../lib/virtio/logger.js';
import { DeviceModelServer } from '../../lib/vmm/device-model-server.js';
import { DeviceStateFile } from '../../lib/vmm/state/index.js';
import { JOURNAL_OFFSET, JOURNAL_SLOT_BYTES } from '../../lib/vmm/state/state-image.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ACCESSES = arg('accesses', 200_000);
const ROUNDS = arg('rounds', 7);
const MMIO = 0xa00_0000;
const REGION = 1 << 20;
const real = loadAddon();

type Deliver = (buffer: ArrayBuffer, count: number, error: null, end: null) => void;
let deliver: Deliver | undefined;
let completes = 0;
// The addon as the request path sees it: the ATTACH loop hands its callback over, complete() counts.
const addon = {
  ...real,
  AttachLoop: class {
    constructor(_fd: number, _rev: number, cb: Deliver) {
      deliver = cb;
    }
    stop(): Promise<void> {
      return Promise.resolve();
    }
    get running(): boolean {
      return true;
    }
  },
  complete: () => {
    completes += 1;
  },
} as unknown as NativeAddon;

const dir = fs.mkdtempSync(`${fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp'}/nb-jsturn-`);
const stateFile = DeviceStateFile.open(dir, { dmId: 0, mmioAddr: MMIO.toString(16), type: 'rng' }, real);
const info = { id: 0, shmemAddr: 0x4000_0000n, shmemSize: BigInt(REGION), irq: 48 };
const dm = new DeviceModelHandle({ addon, revision: 'primary', revisionId: REVISION_ID.primary, fd: 900, info, closePolicy: 'keep-open', keepKey: 'js-turn' });
const bytes = new Uint8Array(REGION);
const handle = {
  info,
  fd: 900,
  map: () => ({ bytes, address: 0x7f00_0000_0000n }),
  createEventFd: () => EventFd.create({ addon: real }),
  adoptEventFd: (efd: number) => EventFd.adopt(efd, { addon: real }),
  assignIrqfd: () => undefined,
  deassignIrqfd: () => undefined,
  assignIoeventfd: () => undefined,
  attach: dm.attach.bind(dm),
  complete: dm.complete.bind(dm),
  close: async () => undefined,
} as unknown as DeviceModelHandle;
const server = DeviceModelServer.start({ handle, device: new RngDevice({ queueSize: 256 }), mmioAddr: MMIO, log: silentLogger, stateFile, hotRegisters: false });

// The journal slot the ATTACH thread records into (slot 0: one access in flight at a time).
const journal = new Int32Array(stateFile.image.bytes.buffer, stateFile.image.bytes.byteOffset + JOURNAL_OFFSET, JOURNAL_SLOT_BYTES / 4);
const delivery = new ArrayBuffer(VIRTIO_REQUEST.size);
const raw = new DataView(delivery);
const O = VIRTIO_REQUEST.offsets as Record<string, number>;

function access(offset: number, op: number, value: number, id: number): void {
  raw.setUint32(O['dm_id']!, 0, true);
  raw.setUint32(O['addr']!, MMIO + offset, true);
  raw.setUint32(O['op']!, op, true);
  raw.setUint32(O['value']!, value, true);
  raw.setUint32(O['access_width']!, 4, true);
  raw.setUint32(O['request_id']!, id, true);
  // the ATTACH thread: the request copied into the slot, marked TAKEN (native/journal.h)
  new Uint8Array(journal.buffer, journal.byteOffset + 8, VIRTIO_REQUEST.size).set(new Uint8Array(delivery));
  Atomics.store(journal, 0, 1);
  deliver!(delivery, 1, null, null);
}

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1]!.split(',') : undefined;
const all: Record<string, (i: number) => void> = {
  'features-read': (i) => access(0x10, IoOp.Read, 0, i),
  'queuesel-write': (i) => access(0x30, IoOp.Write, 0, i),
  // QueueSel 0 and 1 in turn: each write changes the state, which is saved before it completes
  'queuesel-change': (i) => access(0x30, IoOp.Write, i & 1, i),
};
const classes = Object.fromEntries(Object.entries(all).filter(([name]) => only === undefined || only.includes(name)));
if (deliver === undefined) throw new Error('the server did not attach');
const perRound: Record<string, number[]> = {};
let id = 0;
for (let round = -1; round < ROUNDS; round += 1) {
  const names = Object.keys(classes);
  if (round % 2 === 1) names.reverse();
  for (const name of names) {
    const run = classes[name]!;
    const t0 = process.cpuUsage();
    for (let i = 0; i < ACCESSES; i += 1) run(id++);
    const t = process.cpuUsage(t0);
    if (round >= 0) (perRound[name] ??= []).push(((t.user + t.system) * 1000) / ACCESSES);
  }
}
if (completes !== id) throw new Error(`${id} accesses, ${completes} completions`);
console.log(`JS turn in process (${ACCESSES} accesses per class and round, median of ${ROUNDS} rounds; ${new Date().toISOString().slice(0, 16)}Z, load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
for (const [name, v] of Object.entries(perRound)) {
  const s = [...v].sort((a, b) => a - b);
  console.log(`${name.padEnd(16)} ${s[Math.floor(s.length / 2)]!.toFixed(0).padStart(6)} ns CPU per access (min ${s[0]!.toFixed(0)}, max ${s[s.length - 1]!.toFixed(0)})`);
}
console.log(`# ${server.snapshot().server.requests} requests served, ${completes} completed`);
stateFile.close();
fs.rmSync(dir, { recursive: true, force: true });
process.exit(0);
