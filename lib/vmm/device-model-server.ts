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
import { low32 } from '../dispatcher/request.js';
import { IoOp } from '../uapi/constants.js';
import { GuestMemory } from '../virtio/guest-memory.js';
import { worthLogging, type Logger } from '../virtio/logger.js';
import { MMIO_QUEUE_NOTIFY, MMIO_STATUS, MMIO_WINDOW_SIZE } from '../virtio/mmio-registers.js';
import { MmioTransport } from '../virtio/mmio-transport.js';
import type { VirtioDevice } from '../virtio/device.js';
import { formatStatus } from '../virtio/status.js';
import { HotRegisters } from './hot-registers.js';
import { InFlightRequests } from './in-flight-requests.js';
import type { KickClock } from './kick-clock.js';
import { KickWatchdog, type KickWatchdogOptions } from './kick-watchdog.js';
import { NO_TAP, type DeviceTap, type TraceHub } from './trace/hub.js';
import type { DeviceModelSnapshot } from './status.js';
import { resumeFromStateFile, type StateFileServing } from './state/resume.js';
import type { DeviceStateFile } from './state/device-state-file.js';

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
  /** Requests whose op was neither READ nor WRITE: a guest fault, answered 0, never executed. */
  badOps: number;
  /** Errors thrown while a trapped access, a kick or the watchdog was handled (each put the device in NEEDS_RESET). */
  handlerErrors: number;
  /** Device resets that did not finish within resetTimeoutMs (the access was completed anyway). */
  resetTimeouts: number;
  /** Poll errors on a queue's kick eventfd (that queue is then served by the kick watchdog). */
  pollErrors: number;
  /** Interrupts that could not be raised (irqfd write failed). */
  irqErrors: number;
  /** Bursts of accesses cut at a slice's end, their rest served after a turn of the event loop. */
  requestYields: number;
  /** Kernel objects (irqfd, queue kicks) taken over from a previous process instead of made anew. */
  keptKernelObjects?: number;
  /** Trapped accesses the native thread answered from hot register cells (not in `requests`). */
  hotAccesses?: number;
  /** COMPLETEs of those the hypervisor refused. */
  hotRejectedCompletions?: number;
}

/** How long a trapped access may wait for the device's reset to finish before it is completed anyway. */
export const DEFAULT_RESET_TIMEOUT_MS = 1000;
/**
 * Accesses served from one burst before yielding to the event loop (serveInOrder). Small: an
 * access costs microseconds here, and the slice is what another device model's access may wait
 * behind; large enough that a probe's burst (a few dozen accesses at most) is rarely cut.
 */
export const REQUEST_SLICE = 16;
/**
 * And for about this long (ms): the slice's real bound where accesses are dearer than their
 * count says (a slow or emulated CPU: under TCG one costs about 0.4 ms of JavaScript, and 16 of
 * them kept another device model's access waiting 5-15 ms; an activation or a logged fault costs
 * more). Half a millisecond keeps that wait within about twice the cost of an access of its own.
 */
export const REQUEST_SLICE_MS = 0.5;

const performanceNow = (): number => performance.now();

type Settled = 'done' | 'timeout' | { error: unknown };

/** Waits for `work` at most `ms` milliseconds; never rejects. */
async function settleWithin(work: Promise<unknown>, ms: number): Promise<Settled> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    return await Promise.race([work.then(() => 'done' as const, (error: unknown) => ({ error })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface DeviceModelServerOptions {
  readonly handle: DeviceModelHandle;
  readonly device: VirtioDevice;
  /** Frontend GPA of the device's virtio-mmio window (remio `va`). */
  readonly mmioAddr: number;
  readonly log: Logger;
  /** Timing of the kick watchdog (defaults in KickWatchdog). */
  readonly kickWatchdog?: Pick<KickWatchdogOptions, 'idleMs' | 'maxIdleMs' | 'fastMs' | 'holdMs'>;
  /** The kick watchdogs' timer, shared by the device models of the process so that idle ones wake it together (default: one of its own). */
  readonly kickClock?: KickClock;
  /** Bound on the wait for a device's reset (a Status 0 write, shutdown); default DEFAULT_RESET_TIMEOUT_MS. */
  readonly resetTimeoutMs?: number;
  /** Answer the hot registers in the native thread (lib/vmm/hot-registers.ts). Default: on, unless NODE_BAO_HOT_REGISTERS=0. */
  readonly hotRegisters?: boolean;
  /** Where `baoctl trace` subscribes (lib/vmm/trace/hub.ts); none: this device model is not traceable. */
  readonly trace?: TraceHub;
  /**
   * The device model's state file (lib/vmm/state): its saved state is resumed at start, each
   * change is saved, and the native thread journals taken requests there. The server closes it.
   */
  readonly stateFile?: DeviceStateFile;
  /** The irqfd and queue kick eventfds a previous process registered on this DM (lib/vmm/restart), and where new ones are published. */
  readonly kept?: KeptKernelObjects;
  /** A monotonic clock in ms for the request slices' time bound (default performance.now; tests). */
  readonly now?: () => number;
}

/**
 * Kernel objects that outlive the process (bao-abi.md §3.7, §3.8): a kept irqfd eventfd is still
 * registered while any process holds it; a kept kick eventfd is the one the driver signals,
 * since an ioeventfd stays registered until the DM is destroyed and only the first one matching
 * is signalled. They are used instead of new ones, and registered again only to be sure
 * (EBUSY/EEXIST: still registered).
 */
export interface KeptKernelObjects {
  readonly irq?: number;
  readonly kicks?: ReadonlyMap<number, number>;
  /** Called with each eventfd in use, kept or new, so that it can be kept for the next process. */
  readonly publish?: (what: { readonly kind: 'irq' } | { readonly kind: 'kick'; readonly queue: number }, fd: number) => void;
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export class DeviceModelServer {
  readonly stats: DeviceModelServerStats = {
    requests: 0,
    strayAccesses: 0,
    rejectedCompletions: 0,
    ioeventfdKicks: 0,
    watchdogFinds: 0,
    badOps: 0,
    handlerErrors: 0,
    resetTimeouts: 0,
    pollErrors: 0,
    irqErrors: 0,
    requestYields: 0,
  };
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
  /** Kick eventfds kept from a previous process, by queue, until the queue is armed. */
  private readonly keptKicks: Map<number, number>;
  private readonly publish: KeptKernelObjects['publish'];
  private readonly watchdog: KickWatchdog;
  private readonly resetTimeoutMs: number;
  private readonly now: () => number;
  private readonly hot: HotRegisters | undefined;
  /** `baoctl trace`: `tap.on` is the hot path's one check while nobody traces. */
  private readonly tap: Pick<DeviceTap, 'on' | 'arrived' | 'completed' | 'interrupt' | 'close'>;
  private closing: Promise<void> | undefined;
  /** Set once close() began: kicks and the watchdog no longer reach the device. */
  private shuttingDown = false;
  /**
   * The access whose write is waiting for the device (a reset that must finish first), and the
   * requests that arrived meanwhile: they are handled in order once it is completed, so no
   * access sees the device half reset. Bounded by the frontend's vCPUs (each waits on one).
   */
  private waiting: { readonly req: IoRequest; readonly settled: Promise<void> } | undefined;
  private readonly held: IoRequest[] = [];
  /**
   * Set while the rest of a burst waits for the next turn of the event loop (serveInOrder): held
   * behind it like behind `waiting`.
   */
  private yielded: Promise<void> | undefined;
  /** Requests handed to us and not yet completed (for completePending), kept per batch. */
  private readonly uncompleted = new InFlightRequests();
  private readonly state: StateFileServing | undefined;

  private constructor(options: DeviceModelServerOptions) {
    this.handle = options.handle;
    this.mmioAddr = options.mmioAddr;
    this.log = options.log;
    this.device = options.device;
    this.resetTimeoutMs = options.resetTimeoutMs ?? DEFAULT_RESET_TIMEOUT_MS;
    this.now = options.now ?? performanceNow;
    const mapping = this.handle.map();
    const memory = new GuestMemory(Number(this.handle.info.shmemAddr), mapping.bytes);
    this.keptKicks = new Map(options.kept?.kicks ?? []);
    this.publish = options.kept?.publish;
    this.stats.keptKernelObjects = 0;
    if (options.kept?.irq !== undefined) {
      this.irq = this.handle.adoptEventFd(options.kept.irq);
      this.stats.keptKernelObjects += 1;
      try {
        this.handle.assignIrqfd(this.irq);
      } catch (err) {
        // EBUSY: still registered, as it should be (no process released it).
        if (errnoCode(err) !== 'EBUSY') throw err;
      }
    } else {
      this.irq = this.handle.createEventFd();
      this.handle.assignIrqfd(this.irq);
    }
    this.publish?.({ kind: 'irq' }, this.irq.fd);
    const irq = this.irq;
    // A device driven elsewhere (lib/vhost) takes the kick eventfds and the irqfd itself.
    const external = options.device.bindExternalQueues !== undefined;
    if (external) {
      options.device.bindExternalQueues?.({
        kickFd: (index) => this.kickFor(index).fd,
        callFd: irq.fd,
        region: { fd: this.handle.fd, guestAddress: this.handle.info.shmemAddr, size: this.handle.info.shmemSize, mappedAt: mapping.address },
      });
    }
    // The hot cells answer InterruptStatus from our own word: an external device's interrupts
    // (raised by the kernel or a vhost-user backend) are not in it, so it is answered in JS.
    const hot = !external && (options.hotRegisters ?? process.env['NODE_BAO_HOT_REGISTERS'] !== '0')
      ? new HotRegisters(options.mmioAddr)
      : undefined;
    this.hot = hot;
    const stateFile = options.stateFile;
    const loaded = stateFile?.load();
    this.transport = new MmioTransport(options.device, {
      ...(hot === undefined ? {} : { interruptStatusWord: hot.interruptStatus }),
      ...(stateFile === undefined ? {} : { state: stateFile }),
      memory,
      interrupt: { signal: () => this.raiseInterrupt(irq) },
      log: options.log,
      onActivate: (info) => {
        if (!external) this.armKicks(info.queues);
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
      ...(options.kickClock === undefined ? {} : { clock: options.kickClock }),
      serve: () => this.guarded('kick watchdog', () => this.transport.serveUnkicked(), 0),
      pending: () => this.transport.awaitingKick,
      dormant: () => !this.transport.active,
      onMissed: () => this.missedKicks(),
    });
    const transport = this.transport;
    this.tap =
      options.trace?.register({
        dm: this.handle.info.id,
        type: options.device.name,
        deviceId: options.device.deviceId,
        mmioAddr: options.mmioAddr,
        selectors: () => transport.selectors,
        setTransportTrace: (t) => (transport.trace = t),
        ...(hot === undefined ? {} : { hot }),
        external,
      }) ?? NO_TAP;
    try {
      // Before the first request: take the device over from the process that died, and complete
      // the accesses it had taken (their vCPUs wait for them).
      this.state = stateFile === undefined || loaded === undefined ? undefined : resumeFromStateFile({ file: stateFile, loaded, transport: this.transport, log: this.log });
      if (this.state !== undefined && this.state.leftovers.length > 0) this.onRequests(this.state.leftovers);
      const testKill = this.state?.testKill;
      this.loop = this.handle.attach(
        testKill === undefined ? (requests) => this.onRequests(requests) : (requests) => (testKill(), this.onRequests(requests)),
        (error) => {
          this.log.error({ err: error }, 'request loop ended');
          end(error);
        },
        {
          ...(hot === undefined ? {} : { cells: hot.table }),
          ...(stateFile === undefined ? {} : { journal: stateFile.journal.nativeTable }),
        },
      );
    } catch (err) {
      this.tap.close();
      throw err;
    }
    // Kicks of an external device never reach us: a watchdog would see only "lost" kicks.
    if (!external) this.watchdog.start();
  }

  /** Counters and virtio status now (copies: the caller may keep them). */
  snapshot(): DeviceModelSnapshot {
    this.countHot();
    const t = this.transport.stats;
    return { status: formatStatus(this.transport.status), server: { ...this.stats }, transport: { ...t, faults: { ...t.faults }, notifiesByQueue: [...t.notifiesByQueue], usedInterruptsByQueue: [...t.usedInterruptsByQueue], usedSuppressedByQueue: [...t.usedSuppressedByQueue] } };
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

  /**
   * Every request handed over is completed exactly once, whatever happens while it is handled:
   * an exception puts this device (only) in NEEDS_RESET and the access is answered 0; the rest
   * of the batch is still served.
   */
  private onRequests(requests: readonly IoRequest[]): void {
    this.stats.requests += requests.length;
    this.uncompleted.add(requests);
    if (this.tap.on) this.tap.arrived(requests);
    if (this.waiting !== undefined || this.yielded !== undefined) {
      this.held.push(...requests);
      return;
    }
    this.serveInOrder(requests, 0);
  }

  /**
   * In order, at most REQUEST_SLICE accesses and about REQUEST_SLICE_MS at a time: a longer burst
   * (posted writes pile up in the ATTACH thread's queue while this thread is busy: a kick or fault
   * flood hands over hundreds) yields to the event loop after each slice, so that another device
   * model's accesses, handed over meanwhile, wait for one slice of this one and not for all of it
   * (the frontend VMs are apart, this thread is shared). A burst of one access, nearly every
   * delivery, reads no clock.
   */
  private serveInOrder(requests: readonly IoRequest[], from: number): void {
    const deadline = requests.length - from > 1 ? this.now() + REQUEST_SLICE_MS : Infinity;
    for (let i = from; i < requests.length; i += 1) {
      if (i > from && (i - from === REQUEST_SLICE || this.now() >= deadline)) {
        this.held.unshift(...requests.slice(i));
        this.stats.requestYields += 1;
        this.yielded = new Promise<void>((resolve) =>
          setImmediate(() => {
            this.yielded = undefined;
            resolve();
            if (this.waiting === undefined) this.serveInOrder(this.held.splice(0), 0);
          }),
        );
        return;
      }
      const req = requests[i]!;
      const pending = this.handle1(req);
      if (pending !== undefined) {
        // The rest waits behind this access, in order.
        this.held.unshift(...requests.slice(i + 1));
        this.waitFor(req, pending);
        return;
      }
    }
  }

  /** Handles one access; completes it, or returns the device work its completion must wait for. */
  private handle1(req: IoRequest): Promise<void> | undefined {
    let readValue = 0;
    let pending: Promise<void> | undefined;
    try {
      const offset = req.addr - this.mmioAddr;
      const width = req.accessWidth;
      if (offset < 0 || offset >= MMIO_WINDOW_SIZE) {
        this.stray(req);
      } else if (req.op === IoOp.Read) {
        readValue = this.transport.read(offset, width);
      } else if (req.op === IoOp.Write) {
        // §3.9: the value is the whole source register; the transport keeps `width` bytes of it.
        const result = this.transport.write(offset, width, low32(req.value)) as void | Promise<void>;
        if (result instanceof Promise) pending = result;
      } else {
        this.badOp(req);
      }
    } catch (err) {
      readValue = 0;
      pending = undefined;
      this.deviceError('register access', err, { offset: req.addr - this.mmioAddr, op: req.op });
    } finally {
      if (pending === undefined) this.complete(req, readValue);
    }
    return pending;
  }

  /** Until nothing handed over waits behind a yield or a pending write (close, detach). */
  private async heldServed(): Promise<void> {
    for (let p = this.yielded ?? this.waiting?.settled; p !== undefined; p = this.yielded ?? this.waiting?.settled) await p;
  }

  private waitFor(req: IoRequest, work: Promise<void>): void {
    const settled = settleWithin(work, this.resetTimeoutMs).then((outcome) => {
      if (outcome === 'timeout') {
        this.stats.resetTimeouts += 1;
        this.transport.enterNeedsReset('device reset did not finish in time', { timeoutMs: this.resetTimeoutMs });
      } else if (outcome !== 'done') {
        this.deviceError('device reset', outcome.error, {});
      }
      this.waiting = undefined;
      this.complete(req, 0);
      const next = this.held.splice(0);
      this.serveInOrder(next, 0);
    });
    this.waiting = { req, settled };
  }

  /**
   * Completes, with 0, every access handed to this server and not answered yet (the one waiting
   * for a reset and those held behind it). The last resort before the process exits: the
   * frontend's vCPUs must not stay paused on a dead process. Returns how many were completed.
   */
  completePending(): number {
    const pending = this.uncompleted.drain();
    this.held.length = 0;
    for (const req of pending) this.answer(req, 0);
    return pending.length;
  }

  private badOp(req: IoRequest): void {
    this.stats.badOps += 1;
    if (worthLogging(this.stats.badOps)) {
      this.log.warn({ op: req.op, addr: `0x${req.addr.toString(16)}`, count: this.stats.badOps }, 'request with an op other than read or write: answered 0, not executed');
    }
  }

  /** A device callback or the transport threw: that device alone goes to NEEDS_RESET. */
  private deviceError(where: string, err: unknown, detail: Record<string, unknown>): void {
    this.stats.handlerErrors += 1;
    if (worthLogging(this.stats.handlerErrors)) this.log.error({ err, ...detail, count: this.stats.handlerErrors }, `error in ${where}`);
    try {
      this.transport.enterNeedsReset(`error in ${where}`, { error: String(err) });
    } catch (inner) {
      this.log.error({ err: inner }, 'could not set DEVICE_NEEDS_RESET');
    }
  }

  /** Runs `fn`; an exception is a device error (NEEDS_RESET) and yields `fallback`. */
  private guarded<T>(where: string, fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (err) {
      this.deviceError(where, err, {});
      return fallback;
    }
  }

  private raiseInterrupt(irq: EventFd): void {
    if (this.tap.on) this.tap.interrupt(this.transport.interruptStatus);
    try {
      irq.signal();
    } catch (err) {
      this.stats.irqErrors += 1;
      if (worthLogging(this.stats.irqErrors)) this.log.error({ err, count: this.stats.irqErrors }, 'cannot raise the frontend interrupt (irqfd write failed)');
    }
  }

  private stray(req: IoRequest): void {
    this.stats.strayAccesses += 1;
    if (worthLogging(this.stats.strayAccesses)) {
      this.log.warn({ addr: `0x${req.addr.toString(16)}`, width: req.accessWidth, count: this.stats.strayAccesses }, 'access outside the device window');
    }
  }

  private complete(req: IoRequest, readValue: number): void {
    if (this.uncompleted.take(req)) this.answer(req, readValue); // else already answered (completePending)
  }

  private answer(req: IoRequest, readValue: number): void {
    if (this.tap.on) this.tap.completed(req, readValue);
    const slot = this.state?.journal.find(req) ?? -1;
    try {
      this.state?.journal.markCompleting(slot);
      this.handle.complete(req, readValue);
      this.state?.journal.release(slot);
    } catch (err) {
      this.state?.journal.release(slot);
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

  /**
   * The kick eventfd of a queue of an external device: registered as its ioeventfd once per DM.
   * If registration fails it is still returned: kicks then arrive as QueueNotify requests and
   * the device passes them on through it.
   */
  private kickFor(index: number): EventFd {
    let kick = this.kicks.get(index);
    if (kick !== undefined) return kick;
    const kept = this.takeKeptKick(index);
    kick = kept ?? this.handle.createEventFd();
    try {
      this.handle.assignIoeventfd({ eventfd: kick, addr: this.mmioAddr + MMIO_QUEUE_NOTIFY, len: 4, datamatch: index });
    } catch (err) {
      if (kept === undefined || errnoCode(err) !== 'EEXIST') {
        this.log.warn({ err, queue: index }, 'ioeventfd registration failed; queue kicks go through the request loop and are passed on');
      }
    }
    this.kicks.set(index, kick);
    this.publish?.({ kind: 'kick', queue: index }, kick.fd);
    return kick;
  }

  /**
   * One ioeventfd per queue on QueueNotify with datamatch = index, registered once per DM. Runs
   * inside the DRIVER_OK write: a failure here (EMFILE creating the eventfd) is this device's
   * error (NEEDS_RESET), never the request loop's.
   */
  private armKicks(queues: readonly number[]): void {
    for (const index of queues) {
      if (this.kicks.has(index)) continue;
      let kick: EventFd;
      const kept = this.takeKeptKick(index);
      try {
        kick = kept ?? this.handle.createEventFd();
      } catch (err) {
        this.deviceError('queue kick setup', err, { queue: index });
        return;
      }
      try {
        this.handle.assignIoeventfd({ eventfd: kick, addr: this.mmioAddr + MMIO_QUEUE_NOTIFY, len: 4, datamatch: index });
      } catch (err) {
        // A kept kick is still registered (EEXIST): the driver signals it, which is the point.
        if (kept === undefined || errnoCode(err) !== 'EEXIST') {
          // Kicks still arrive as QueueNotify writes through ATTACH, just slower.
          kick.close();
          this.log.warn({ err, queue: index }, 'ioeventfd registration failed; queue kicks go through the request loop');
          continue;
        }
      }
      this.kicks.set(index, kick);
      this.publish?.({ kind: 'kick', queue: index }, kick.fd);
      try {
        const poller = kick.poll(() => this.onKick(kick, index), {
          onError: (err) => {
            // The kernel still signals the eventfd; the kick watchdog serves the queue from now on.
            this.stats.pollErrors += 1;
            this.log.error({ err, queue: index }, 'polling the queue kick eventfd failed; the queue is served by the kick watchdog');
            poller?.stop();
          },
        });
      } catch (err) {
        this.deviceError('queue kick setup', err, { queue: index });
        return;
      }
    }
  }

  private takeKeptKick(index: number): EventFd | undefined {
    const fd = this.keptKicks.get(index);
    if (fd === undefined) return undefined;
    this.keptKicks.delete(index);
    this.stats.keptKernelObjects = (this.stats.keptKernelObjects ?? 0) + 1;
    return this.handle.adoptEventFd(fd);
  }

  /**
   * The kernel objects a next process needs to take over: the DM fd, the irqfd and every queue
   * kick, armed or kept (a kept one not armed yet is still the one the driver signals).
   */
  keptFds(): { dm: number; irq: number; kicks: Map<number, number> } {
    const kicks = new Map<number, number>(this.keptKicks);
    for (const [queue, kick] of this.kicks) kicks.set(queue, kick.fd);
    return { dm: this.handle.fd, irq: this.irq.fd, kicks };
  }

  /**
   * Lets go of the device for a next process (a planned restart): no new requests are taken
   * (the ATTACH thread is joined: what the frontend asks meanwhile stays queued in the driver,
   * bao-abi.md §3.11) and kicks are no longer read (they stay counted in their eventfds), the
   * access in flight completes, and the device is left as it is: not reset, nothing deassigned,
   * no fd closed, so that the next process continues from here. Not undone; close() afterwards
   * would reset the device, so the process exits instead.
   */
  async detach(): Promise<void> {
    this.shuttingDown = true;
    this.watchdog.stop();
    for (const kick of this.kicks.values()) kick.stopPolling();
    await this.loop.stop();
    await this.heldServed();
  }

  private onKick(kick: EventFd, index: number): void {
    if (this.shuttingDown) return;
    try {
      if (kick.read() === null) return;
      this.stats.ioeventfdKicks += 1;
      this.transport.queueNotify(index);
    } catch (err) {
      this.deviceError('queue kick', err, { queue: index });
    }
  }

  /**
   * Stop taking requests (the ATTACH thread is joined), let a pending access finish, reset the
   * device through its transport and wait for the reset (bounded by resetTimeoutMs), which
   * finishes in-flight work while the shared region is still mapped; then release the irqfd and
   * the device model (mapping, eventfds, fd). A device whose reset did not finish keeps its
   * mapping until the process exits: late work must not fault on unmapped memory. Requests
   * still queued in the driver stay there for the next device model process, as on Bao (§3.11).
   * Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.shuttingDown = true;
    this.tap.close();
    this.watchdog.stop();
    await this.loop.stop();
    await this.heldServed();
    // The reset below is saved like any other: a daemon stopped on purpose does not leave a live
    // image behind, which the next start would resume on a frontend that may have rebooted since.
    // (A hand-over to a successor keeps it: transport.detachState() first.)
    let finished = true;
    try {
      // Status 0 through the transport: its queues are closed at once, so nothing reaches the
      // rings afterwards; the device's own reset is then awaited.
      const viaTransport = this.transport.write(MMIO_STATUS, 4, 0) as void | Promise<void>;
      // A transport that does not hand back the device's reset work: ask the device for it
      // (reset() is idempotent) so that it is awaited all the same.
      const work = viaTransport instanceof Promise ? viaTransport : Promise.resolve().then(() => this.device.reset());
      const outcome = await settleWithin(work, this.resetTimeoutMs);
      if (outcome === 'timeout') {
        finished = false;
        this.stats.resetTimeouts += 1;
        this.log.error({ timeoutMs: this.resetTimeoutMs }, 'device reset at shutdown did not finish; its shared memory stays mapped until the process exits');
      } else if (outcome !== 'done') {
        this.log.error({ err: outcome.error }, 'device reset at shutdown failed');
      }
    } catch (err) {
      this.log.error({ err }, 'device reset at shutdown failed');
    }
    try {
      this.handle.deassignIrqfd(this.irq);
    } catch (err) {
      this.log.warn({ err }, 'irqfd deassign failed');
    }
    if (finished) {
      await this.handle.close();
      this.state?.file.close();
    }
    this.countHot();
    const handOff = this.hot?.handOffTiming;
    this.log.info({ server: this.stats, transport: this.transport.stats, ...(handOff === undefined ? {} : { handOff }) }, 'device model closed');
  }
}
