// A service for the fd-store tests (run with vite-node under the stand-in supervisor): it takes
// what LISTEN_FDS hands it through the daemon's own setupKeptFds, for a config with one device
// model (id 0, two queues), uses a kept irqfd and kick eventfd or makes new ones (published to
// the fd store), and prints one JSON report. On "read" from stdin it prints the irq eventfd's counter.
import * as readline from 'node:readline';

import { EventFd } from '../../lib/dispatcher/eventfd.js';
import { loadAddon } from '../../lib/native.js';
import { setupKeptFds } from '../../lib/vmm/restart/setup.js';
import type { Logger } from '../../lib/virtio/logger.js';

const warnings: string[] = [];
const log: Logger = {
  debug: () => {},
  info: () => {},
  warn: (_o, msg) => warnings.push(msg ?? ''),
  error: (_o, msg) => warnings.push(msg ?? ''),
  child: () => log,
};
const kept = setupKeptFds({ env: process.env, log, addon: loadAddon });
const irqFd = kept.takeIrq(0);
const kicks = kept.takeKicks(0, 2);
const irq = irqFd === undefined ? EventFd.create() : EventFd.adopt(irqFd);
kept.publish({ kind: 'irq', dm: 0 }, irq.fd);
const kick0 = kicks.get(0) ?? EventFd.create().fd;
kept.publish({ kind: 'kick', dm: 0, queue: 0 }, kick0);
kept.closeUnused();
console.log(
  JSON.stringify({
    pid: process.pid,
    keptIrq: irqFd !== undefined,
    keptKicks: [...kicks.keys()],
    counts: kept.counts,
    warnings,
    listenLeft: Object.keys(process.env).filter((k) => k.startsWith('LISTEN_')),
  }),
);
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'read') console.log(JSON.stringify({ irqCounter: String(irq.read()) }));
});
