// The trapped-access round trip on the host (bench/handoff/run.sh starts this under
// LD_PRELOAD=fake-bao.so, which plays the dispatcher on three fds and the frontend, see
// fake-bao.c): node-bao's real addon and DeviceModelServer serving a virtio-rng, once with its
// hot register cells and once with every access through JS, against a C ATTACH + COMPLETE loop,
// the three taking turns access by access. What the guest's `mmio` part measures, without TCG,
// so that a change to the hand-off shows in seconds: the ratios printed are the same.

import * as fs from 'node:fs';

import { DeviceModelHandle, EventFd } from '../../lib/dispatcher/index.js';
import { RngDevice } from '../../lib/devices/rng/index.js';
import { loadAddon } from '../../lib/native.js';
import { REVISION_ID } from '../../lib/uapi/index.js';
import { silentLogger } from '../../lib/virtio/logger.js';
import { DeviceModelServer } from '../../lib/vmm/device-model-server.js';
import { DeviceStateFile } from '../../lib/vmm/state/index.js';

const addon = loadAddon();
const base = Number(process.env['FAKE_BAO_FD']);
const mmio = Number(process.env['FAKE_BAO_BASE']);
const out = process.env['FAKE_BAO_OUT'];
if (!Number.isInteger(base) || !Number.isInteger(mmio) || out === undefined) throw new Error('run through bench/handoff/run.sh');
const REGION = 1 << 20;

/**
 * A DeviceModelHandle over a fake-bao fd: the real DeviceModel's ATTACH loop and COMPLETE (the
 * product's code on the request path), no shared memory, no eventfd registration.
 */
function handleOn(fd: number, id: number): DeviceModelHandle {
  const bytes = new Uint8Array(REGION);
  const info = { id, shmemAddr: 0x4000_0000n, shmemSize: BigInt(REGION), irq: 48 };
  const dm = new DeviceModelHandle({ addon, revision: 'primary', revisionId: REVISION_ID.primary, fd, info, closePolicy: 'keep-open', keepKey: `handoff-${id}` });
  return {
    info,
    fd,
    map: () => ({ bytes, address: 0x7f00_0000_0000n }),
    createEventFd: () => EventFd.create({ addon }),
    adoptEventFd: (efd: number) => EventFd.adopt(efd, { addon }),
    assignIrqfd: () => undefined,
    deassignIrqfd: () => undefined,
    assignIoeventfd: () => undefined,
    attach: dm.attach.bind(dm),
    complete: dm.complete.bind(dm),
    close: async () => undefined,
  } as unknown as DeviceModelHandle;
}

// As `baoctl run` serves by default: each device model keeps its state file (lib/vmm/state), here
// in a directory of its own on /dev/shm when there is one (tmpfs, as /run is). FAKE_BAO_STATE=none: without.
const stateDir = process.env['FAKE_BAO_STATE'] === 'none' ? undefined : fs.mkdtempSync(`${fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp'}/nb-handoff-`);
const stateFile = (id: number) => (stateDir === undefined ? {} : { stateFile: DeviceStateFile.open(stateDir, { dmId: id, mmioAddr: mmio.toString(16), type: 'rng' }, addon) });
const servers = [
  DeviceModelServer.start({ handle: handleOn(base, 0), device: new RngDevice({ queueSize: 256 }), mmioAddr: mmio, log: silentLogger, ...stateFile(0) }),
  DeviceModelServer.start({ handle: handleOn(base + 2, 2), device: new RngDevice({ queueSize: 256 }), mmioAddr: mmio, log: silentLogger, hotRegisters: false, ...stateFile(2) }),
];
console.log(`# state files: ${stateDir ?? 'none'}`);
const deadline = Date.now() + 600_000;
while (!fs.existsSync(out)) {
  if (Date.now() > deadline) throw new Error('the fake frontend did not finish');
  await new Promise((r) => setTimeout(r, 50));
}
for (const s of servers) {
  const snap = s.snapshot();
  const timing = (s as unknown as { hot?: { handOffTiming?: { handoff: { p50Us: number; p90Us: number }; turn: { p50Us: number; p90Us: number } } } }).hot?.handOffTiming;
  const t = timing === undefined ? '' : `; accesses through JS: hand-off p50 ${timing.handoff.p50Us} us p90 ${timing.handoff.p90Us} us, JS turn p50 ${timing.turn.p50Us} us p90 ${timing.turn.p90Us} us`;
  console.log(`# dm served: ${snap.server.requests} through JS, ${snap.server.hotAccesses ?? 0} by hot cells${t}`);
}
process.stdout.write(fs.readFileSync(out, 'utf8'));
if (stateDir !== undefined) fs.rmSync(stateDir, { recursive: true, force: true });
process.exit(0);
