// The device-facing API against a real I/O dispatcher: runs wherever a Bao node exists (a Bao
// backend VM, or the QEMU machine with bao-sim), and is reported skipped with the reason
// elsewhere. Request injection uses bao-sim's debugfs (`dm<N>/access`); on real Bao those tests
// skip. Pick the device model with BAO_TEST_DM_ID (default: a bao-sim DM without a frontend,
// else the first one found). BAO_TEST_DEV_ROOT overrides /dev.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { afterEach, describe, expect, it, type TestContext } from 'vitest';

import {
  openBaoDriver,
  scanBaoNodes,
  revisionOf,
  type BaoDriver,
  type DeviceModelHandle,
  type IoRequest,
} from '../../lib/dispatcher/index.js';
import { PACKAGE_ROOT } from '../../lib/native.js';
import { IoOp } from '../../lib/uapi/index.js';
import { eventually, threadCount } from './leaks.js';
import { skipBecause } from './skip.js';

const devRoot = process.env.BAO_TEST_DEV_ROOT ?? '/dev';
const revision = revisionOf(scanBaoNodes(devRoot));
const SIM = '/sys/kernel/debug/bao-sim';

function simInfo(id: number): Record<string, string> | undefined {
  try {
    const text = fs.readFileSync(path.join(SIM, `dm${id}`, 'info'), 'utf8');
    return Object.fromEntries(text.trim().split('\n').map((l) => l.split(/\s+/, 2) as [string, string]));
  } catch {
    return undefined;
  }
}

function pickDm(driver: BaoDriver): number {
  if (process.env.BAO_TEST_DM_ID !== undefined) return Number(process.env.BAO_TEST_DM_ID);
  const ids = driver.probeDeviceModels().map((d) => d.id);
  const idle = ids.find((id) => simInfo(id)?.frontend === 'none');
  const first = idle ?? ids[0];
  if (first === undefined) throw new Error('the dispatcher has no device model');
  return first;
}

let driver: BaoDriver | undefined;
let dm: DeviceModelHandle | undefined;

function open(ctx: TestContext): DeviceModelHandle {
  if (revision === undefined) skipBecause(ctx, `no Bao I/O dispatcher node under ${devRoot} (not a Bao backend VM)`);
  if (revision === 'revB' && process.env.BAO_TEST_SHMEM_ADDR === undefined) {
    skipBecause(ctx, 'revB needs BAO_TEST_SHMEM_ADDR, BAO_TEST_SHMEM_SIZE and BAO_TEST_IRQ to create a device model');
  }
  driver = openBaoDriver({ devRoot });
  const id = pickDm(driver);
  dm = driver.openDeviceModel(
    id,
    revision === 'revB'
      ? {
          shmemAddr: BigInt(process.env.BAO_TEST_SHMEM_ADDR ?? 0),
          shmemSize: BigInt(process.env.BAO_TEST_SHMEM_SIZE ?? 0),
          irq: Number(process.env.BAO_TEST_IRQ ?? 0),
        }
      : {},
  );
  return dm;
}

/** bao-sim's raw frontend access file for the open DM, or a skip. */
function accessFile(ctx: TestContext, handle: DeviceModelHandle): { file: string; base: number } {
  const info = simInfo(handle.id);
  if (info === undefined) skipBecause(ctx, `no ${SIM}/dm${handle.id}: requests can only be injected with bao-sim`);
  if (info.frontend !== 'none') skipBecause(ctx, `bao-sim DM ${handle.id} has a frontend driver that would interleave requests`);
  return { file: path.join(SIM, `dm${handle.id}`, 'access'), base: Number(info.mmio_base) };
}

afterEach(async () => {
  await dm?.close();
  await driver?.close();
  dm = undefined;
  driver = undefined;
});

describe('a device model on a real dispatcher', () => {
  it('opens with its info and maps its whole shared region read-write', (ctx) => {
    const h = open(ctx);
    expect(h.revision).toBe(revision);
    expect(h.info.shmemSize).toBeGreaterThan(0n);
    const m = h.map();
    expect(BigInt(m.length)).toBe(h.info.shmemSize);
    m.bytes[0] = 0xa5;
    expect(m.bytes[0]).toBe(0xa5);
    expect(h.map()).toBe(m);
    const sim = simInfo(h.id);
    if (sim !== undefined) {
      expect(h.info.shmemAddr).toBe(BigInt(sim.shmem_addr ?? -1));
      expect(h.info.irq).toBe(Number(sim.irq));
    }
  });

  it('stops an attach loop blocked in ATTACH promptly, and its thread ends (repeatedly)', async (ctx) => {
    const h = open(ctx);
    const threads = threadCount();
    for (let i = 0; i < 20; i++) {
      const errors: Error[] = [];
      const loop = h.attach(() => {}, (e) => errors.push(e));
      await new Promise((r) => setTimeout(r, i % 2 === 0 ? 0 : 20));
      const t0 = Date.now();
      await loop.stop();
      expect(Date.now() - t0).toBeLessThan(5000); // promptly: a loop left blocked in ATTACH would never return
      expect((await loop.ended).reason).toBe('stopped');
      expect(errors).toEqual([]);
    }
    expect(await eventually(() => threadCount() === threads)).toBe(true);
  });

  it('delivers a posted WRITE as a request and completes it', async (ctx) => {
    const h = open(ctx);
    const { file, base } = accessFile(ctx, h);
    const got: IoRequest[] = [];
    const loop = h.attach(
      (reqs) => {
        for (const r of reqs) {
          got.push(r);
          h.complete(r);
        }
      },
      () => {},
    );
    fs.writeFileSync(file, 'kick 0x70 4 0x12345678');
    expect(await eventually(() => got.length > 0)).toBe(true);
    expect(got[0]).toMatchObject({ dmId: h.id, addr: base + 0x70, op: IoOp.Write, value: 0x12345678n, accessWidth: 4 });
    await loop.stop();
  });

  it('answers a READ: the frontend gets the value given to complete()', async (ctx) => {
    const h = open(ctx);
    const { file, base } = accessFile(ctx, h);
    const loop = h.attach(
      (reqs) => {
        for (const r of reqs) h.complete(r, r.op === IoOp.Read && r.addr === base + 0x8 ? 0xdeadbeef : 0);
      },
      () => {},
    );
    // The frontend access blocks until completion: issue it from the libuv pool, not this thread.
    const fh = await fs.promises.open(file, 'r+');
    try {
      await fh.write('read 0x8 4');
      const buf = Buffer.alloc(64);
      const { bytesRead } = await fh.read(buf, 0, 64, null);
      expect(buf.subarray(0, bytesRead).toString().trim()).toBe('0xdeadbeef');
    } finally {
      await fh.close();
    }
    await loop.stop();
  });

  it('rejects a completion the hypervisor does not know with BAO_COMPLETE_REJECTED', (ctx) => {
    const h = open(ctx);
    const bogus: IoRequest = { dmId: h.id, addr: 0, op: IoOp.Read, value: 0n, accessWidth: 4, requestId: 0x7fff_fff0 };
    expect(() => h.complete(bogus)).toThrow(expect.objectContaining({ code: 'BAO_COMPLETE_REJECTED' }));
  });

  it('assigns and deassigns an irqfd, and refuses the same eventfd twice (EBUSY)', (ctx) => {
    const h = open(ctx);
    const irq = h.createEventFd();
    h.assignIrqfd(irq);
    expect(() => h.assignIrqfd(irq)).toThrow(expect.objectContaining({ code: 'EBUSY', syscall: 'ioctl(BAO_IOCTL_IRQFD)' }));
    irq.signal();
    h.deassignIrqfd(irq);
  });

  it('routes a matching QueueNotify write to an ioeventfd instead of ATTACH', async (ctx) => {
    const h = open(ctx);
    const { file, base } = accessFile(ctx, h);
    const kick = h.createEventFd();
    h.assignIoeventfd({ eventfd: kick, addr: base + 0x50, len: 4, datamatch: 1 });
    let kicks = 0n;
    kick.poll(() => {
      kicks += kick.read() ?? 0n;
    });
    const got: IoRequest[] = [];
    const loop = h.attach(
      (reqs) => {
        for (const r of reqs) {
          got.push(r);
          h.complete(r);
        }
      },
      () => {},
    );
    fs.writeFileSync(file, 'kick 0x50 4 1');
    expect(await eventually(() => kicks === 1n)).toBe(true);
    expect(got).toEqual([]);
    await loop.stop();
  });

  it('closes idempotently, cascading to mapping, loops and owned eventfds', async (ctx) => {
    const h = open(ctx);
    const m = h.map();
    const e = h.createEventFd();
    const loop = h.attach(() => {}, () => {});
    await h.close();
    await h.close();
    expect(m.closed).toBe(true);
    expect(e.closed).toBe(true);
    expect(loop.running).toBe(false);
    expect(() => h.fd).toThrow(expect.objectContaining({ code: 'HANDLE_CLOSED' }));
  });
});

// A script (CommonJS, no TypeScript) that attaches to a DM and leaves the loop running.
const ATTACH_AND_LEAVE = `
const fs = require('node:fs');
const addon = require(${JSON.stringify(path.join(PACKAGE_ROOT, 'node_modules/node-gyp-build'))})(${JSON.stringify(PACKAGE_ROOT)});
const ctl = fs.openSync(process.env.NB_NODE, 'r+');
const info = addon.dmGetInfo(ctl, Number(process.env.NB_DM));
new addon.AttachLoop(info.fd, 0, () => {});
`;

describe('teardown with an attach loop still blocked in ATTACH', () => {
  function primaryDm(ctx: TestContext): { node: string; id: number } {
    if (revision !== 'primary') skipBecause(ctx, `needs a primary-ABI dispatcher under ${devRoot} (found: ${revision ?? 'none'})`);
    const d = openBaoDriver({ devRoot });
    const id = pickDm(d);
    void d.close();
    return { node: path.join(devRoot, 'bao-io-dispatcher'), id };
  }

  it('a terminated worker stops its loop through the env cleanup hook, promptly', async (ctx) => {
    const { node, id } = primaryDm(ctx);
    const threads = threadCount();
    const worker = new Worker(
      `${ATTACH_AND_LEAVE}; require('node:worker_threads').parentPort.postMessage('attached');`,
      { eval: true, env: { ...process.env, NB_NODE: node, NB_DM: String(id) } },
    );
    await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await worker.terminate();
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await eventually(() => threadCount() <= threads, 5000)).toBe(true);
  });

  it('process.exit() does not hang on it', async (ctx) => {
    const { node, id } = primaryDm(ctx);
    const child = spawn(process.execPath, ['-e', `${ATTACH_AND_LEAVE}; setTimeout(() => process.exit(7), 100);`], {
      env: { ...process.env, NB_NODE: node, NB_DM: String(id) },
      stdio: 'inherit',
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 20000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code).toBe(7);
  });
});
