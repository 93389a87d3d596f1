// DeviceModelServer: serves one VirtioDevice on one Bao device model. It is where the hot path
// of ARCHITECTURE.md runs: the ATTACH thread hands bursts of trapped MMIO accesses to
// onRequests(), each is routed by address to the device's MmioTransport and completed at once;
// queue kicks bypass it through one ioeventfd per queue (bao-abi.md §3.7), and used buffers are
// signalled through the irqfd (§3.8) after the transport has set InterruptStatus. A kick
// watchdog serves buffers whose kick went astray (a previous daemon's ioeventfds, §3.7).
//
// Lives in lib/vmm because it joins the two halves that must not know each other: lib/dispatcher
// (Bao, the addon) and lib/virtio (the transport).

import type { AttachLoop, DeviceModelHandle, EventFd, IoRequest } from '../dispatcher/index.js';
import { IoOp } from '../uapi/constants.js';
import { GuestMemory } from '../virtio/guest-memory.js';
import { worthLogging, type Logger } from '../virtio/logger.js';
import { MMIO_QUEUE_NOTIFY, MMIO_WINDOW_SIZE } from '../virtio/mmio-registers.js';
import { MmioTransport } from '../virtio/mmio-transport.js';
import type { VirtioDevice } from '../virtio/device.js';
import { formatStatus } from '../virtio/status.js';
import { HotRegisters } from './hot-registers.js';
import { KickWatchdog, type KickWatchdogOptions } from './kick-watchdog.js';
import type { DeviceModelSnapshot } from './status.js';

export interface DeviceModelServerStats {
  /** Trapped accesses answered through ATTACH/COMPLETE. */
  requests: number;
  /** Accesses outside this device's window (answered 0, logged). */
  strayAccesses: number;
  /** COMPLETEs the hypervisor refused (status non-zero). */
  rejectedCompletions: number;
  /** Queue kicks that arrived through an ioeventfd. */
  ioeventfdKicks: number;
  /** Times the kick watchdog found buffers no kick had announced (transport.stats.missedKicks counts queues). */
  watchdogFinds: number;
  /** Trapped accesses the native thread answered from hot register cells (not in `requests`). */
  hotAccesses?: number;
  /** COMPLETEs of those the hypervisor refused. */
  hotRejectedCompletions?: number;
}

export interface DeviceModelServerOptions {
  readonly handle: DeviceModelHandle;
  readonly device: VirtioDevice;
  /** Frontend GPA of the device's virtio-mmio window (remio `va`). */
  readonly mmioAddr: number;
  readonly log: Logger;
  /** Timing of the kick watchdog (defaults in KickWatchdog). */
  readonly kickWatchdog?: Pick<KickWatchdogOptions, 'idleMs' | 'maxIdleMs' | 'fastMs' | 'holdMs'>;
  /** Answer the hot registers in the native thread (lib/vmm/hot-registers.ts). Default: on, unless NODE_BAO_HOT_REGISTERS=0. */
  readonly hotRegisters?: boolean;
}

export class DeviceModelServer {
  readonly stats: DeviceModelServerStats = { requests: 0, strayAccesses: 0, rejectedCompletions: 0, ioeventfdKicks: 0, watchdogFinds: 0 };
  readonly transport: MmioTransport;
  /** Settles when the request loop ends by itself (DM gone, syscall error): the reason. */
  readonly stopped: Promise<void>;

  private readonly handle: DeviceModelHandle;
  private readonly mmioAddr: number;
  private readonly log: Logger;
  private readonly device: VirtioDevice;
  private readonly irq: EventFd;
  private readonly loop: AttachLoop;
  /** Queue index -> its kick eventfd. Never deassigned: DEASSIGN is broken in the drivers (§3.7). */
  private readonly kicks = new Map<number, EventFd>();
  private readonly watchdog: KickWatchdog;
  private readonly hot: HotRegisters | undefined;
  private closing: Promise<void> | undefined;

  private constructor(options: DeviceModelServerOptions) {
    this.handle = options.handle;
    this.mmioAddr = options.mmioAddr;
    this.log = options.log;
    this.device = options.device;
    const mapping = this.handle.map();
    const memory = new GuestMemory(Number(this.handle.info.shmemAddr), mapping.bytes);
    this.irq = this.handle.createEventFd();
    this.handle.assignIrqfd(this.irq);
    const irq = this.irq;
    const hot = (options.hotRegisters ?? process.env['NODE_BAO_HOT_REGISTERS'] !== '0') ? new HotRegisters(options.mmioAddr) : undefined;
    this.hot = hot;
    this.transport = new MmioTransport(options.device, {
      ...(hot === undefined ? {} : { interruptStatusWord: hot.interruptStatus }),
      memory,
      interrupt: { signal: () => irq.signal() },
      log: options.log,
      onActivate: (info) => {
        this.armKicks(info.queues);
        this.watchdog.poke();
      },
    });
    let end: (error?: Error) => void = () => {};
    this.stopped = new Promise<void>((resolve, reject) => {
      end = (error) => (error === undefined ? resolve() : reject(error));
    });
    // The daemon may never look at `stopped`; an unobserved rejection must not kill the process.
    this.stopped.catch(() => {});
    hot?.publish(this.transport);
    this.watchdog = new KickWatchdog({
      ...options.kickWatchdog,
      serve: () => this.transport.serveUnkicked(),
      pending: () => this.transport.awaitingKick,
      dormant: () => !this.transport.active,
      onMissed: () => this.missedKicks(),
    });
    this.loop = this.handle.attach(
      (requests) => this.onRequests(requests),
      (error) => {
        this.log.error({ err: error }, 'request loop ended');
        end(error);
      },
      hot === undefined ? {} : { cells: hot.table },
    );
    this.watchdog.start();
  }

  /** Counters and virtio status now (copies: the caller may keep them). */
  snapshot(): DeviceModelSnapshot {
    this.countHot();
    const t = this.transport.stats;
    return { status: formatStatus(this.transport.status), server: { ...this.stats }, transport: { ...t, faults: { ...t.faults } } };
  }

  /** Map the region, wire the irqfd and start the ATTACH loop; the caller still owns `handle`. */
  static start(options: DeviceModelServerOptions): DeviceModelServer {
    return new DeviceModelServer(options);
  }

  private countHot(): void {
    if (this.hot === undefined) return;
    this.stats.hotAccesses = this.hot.hits;
    this.stats.hotRejectedCompletions = this.hot.table.completeFailures.count;
  }

  private onRequests(requests: readonly IoRequest[]): void {
    const transport = this.transport;
    for (const req of requests) {
      this.stats.requests += 1;
      const offset = req.addr - this.mmioAddr;
      const width = req.accessWidth;
      let readValue = 0;
      if (offset < 0 || offset >= MMIO_WINDOW_SIZE) {
        this.stray(req);
      } else if (req.op === IoOp.Read) {
        readValue = transport.read(offset, width);
      } else {
        // §3.9: the value is the whole source register; the transport keeps `width` bytes of it.
        transport.write(offset, width, Number(req.value & 0xffffffffn));
      }
      this.complete(req, readValue);
    }
  }

  private stray(req: IoRequest): void {
    this.stats.strayAccesses += 1;
    if (worthLogging(this.stats.strayAccesses)) {
      this.log.warn({ addr: `0x${req.addr.toString(16)}`, width: req.accessWidth, count: this.stats.strayAccesses }, 'access outside the device window');
    }
  }

  private complete(req: IoRequest, readValue: number): void {
    try {
      this.handle.complete(req, readValue);
    } catch (err) {
      // The frontend vCPU is still paused on this request; nothing we can retry safely.
      this.stats.rejectedCompletions += 1;
      if (worthLogging(this.stats.rejectedCompletions)) this.log.error({ err, requestId: req.requestId }, 'COMPLETE failed');
    }
  }

  private missedKicks(): void {
    this.stats.watchdogFinds += 1;
    if (!worthLogging(this.stats.watchdogFinds)) return;
    this.log.warn(
      { count: this.stats.watchdogFinds, ioeventfdKicks: this.stats.ioeventfdKicks },
      // Kicks that did arrive, by ioeventfd or as QueueNotify requests (served ones excluded).
      this.transport.stats.notifies === this.transport.stats.missedKicks
        ? 'queue kicks are not reaching this process: serving the queues by polling. On v2 drivers a previous daemon\'s ioeventfds stay registered until the driver is reloaded (bao-abi.md §3.7); reload it or reboot the backend VM for full speed'
        : 'buffers found without a queue kick: served by the kick watchdog',
    );
  }

  /** One ioeventfd per queue on QueueNotify with datamatch = index, registered once per DM. */
  private armKicks(queues: readonly number[]): void {
    const transport = this.transport;
    for (const index of queues) {
      if (this.kicks.has(index)) continue;
      const kick = this.handle.createEventFd();
      try {
        this.handle.assignIoeventfd({ eventfd: kick, addr: this.mmioAddr + MMIO_QUEUE_NOTIFY, len: 4, datamatch: index });
      } catch (err) {
        // Kicks still arrive as QueueNotify writes through ATTACH, just slower.
        kick.close();
        this.log.warn({ err, queue: index }, 'ioeventfd registration failed; queue kicks go through the request loop');
        continue;
      }
      this.kicks.set(index, kick);
      kick.poll(() => {
        if (kick.read() === null) return;
        this.stats.ioeventfdKicks += 1;
        transport.queueNotify(index);
      }, {
        // The watcher has stopped: this queue's kicks are now found by the kick watchdog.
        onError: (err) => this.log.warn({ err, queue: index }, 'queue kick eventfd cannot be watched; the kick watchdog serves this queue'),
      });
    }
  }

  /**
   * Stop taking requests, then reset the device, which finishes its in-flight work while the
   * shared region is still mapped, then release the irqfd and the device model (mapping,
   * eventfds, fd). Requests still queued in the driver stay there for the next device model
   * process, as on Bao (§3.11). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.watchdog.stop();
    await this.loop.stop();
    try {
      await this.device.reset();
    } catch (err) {
      this.log.error({ err }, 'device reset at shutdown failed');
    }
    try {
      this.handle.deassignIrqfd(this.irq);
    } catch (err) {
      this.log.warn({ err }, 'irqfd deassign failed');
    }
    await this.handle.close();
    this.countHot();
    this.log.info({ server: this.stats, transport: this.transport.stats }, 'device model closed');
  }
}
