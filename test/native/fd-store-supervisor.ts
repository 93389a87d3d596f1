// A stand-in for systemd's side of the fd store, for machines where systemd cannot run (this
// host's PID 1 is not systemd; the QEMU guest boots a plain init). It does what systemd does
// for a Type=notify service with FileDescriptorStoreMax=:
//   - binds a unix datagram socket and passes it as NOTIFY_SOCKET;
//   - takes the descriptors of a FDSTORE=1 message (SCM_RIGHTS) under its FDNAME, up to `max`,
//     closes the descriptors of any other message, and drops a name on FDSTOREREMOVE=1;
//   - keeps them while the service is killed and restarted, and starts the new process with
//     them at fd 3.. and LISTEN_FDS, LISTEN_FDNAMES (colon-separated) and LISTEN_PID set to the
//     new process's own pid (a shell sets it and execs, as systemd sets it between fork and exec).
// Not done: checking the sender's credentials (NotifyAccess=main) and systemd's de-duplication
// of a descriptor stored twice (kcmp); node-bao never stores again what it was handed back.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

import { FdPoller } from '../../lib/dispatcher/poller.js';
import { loadAddon } from '../../lib/native.js';

export interface StoredFd {
  readonly name: string;
  readonly fd: number;
}

export interface SupervisorOptions {
  readonly command: readonly string[];
  readonly socketPath: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** FileDescriptorStoreMax= (default 256). */
  readonly max?: number;
  readonly onOutput?: (text: string) => void;
}

export class FdStoreSupervisor {
  readonly store: StoredFd[] = [];
  /** Every notify message, in order (without their fds). */
  readonly messages: string[] = [];
  child: ChildProcess | undefined;
  private readonly addon = loadAddon();
  private readonly socketFd: number;
  private readonly poller: FdPoller;
  private readonly scratch = new Uint8Array(4096);
  private readyWaiters: (() => void)[] = [];
  /** READY=1 messages seen since the last start(). */
  ready = 0;

  constructor(private readonly options: SupervisorOptions) {
    fs.rmSync(options.socketPath, { force: true });
    this.socketFd = this.addon.unixDatagramBind(options.socketPath);
    this.poller = new FdPoller(this.socketFd, () => this.readable(), { addon: this.addon }).start();
  }

  private readable(): void {
    for (;;) {
      let got;
      try {
        got = this.addon.recvFds(this.socketFd, this.scratch);
      } catch {
        return; // EAGAIN: drained
      }
      const text = Buffer.from(this.scratch.subarray(0, got.bytes)).toString('utf8');
      this.messages.push(text);
      const fields = new Map(
        text.split('\n').flatMap((line) => {
          const at = line.indexOf('=');
          return at > 0 ? [[line.slice(0, at), line.slice(at + 1)] as const] : [];
        }),
      );
      const name = fields.get('FDNAME') ?? 'stored';
      let fds = got.fds;
      if (fields.get('FDSTORE') === '1') {
        for (const fd of fds) {
          if (this.store.length < (this.options.max ?? 256)) this.store.push({ name, fd });
          else fs.closeSync(fd);
        }
        fds = [];
      }
      for (const fd of fds) fs.closeSync(fd);
      if (fields.get('FDSTOREREMOVE') === '1') {
        for (let i = this.store.length - 1; i >= 0; i -= 1) {
          if (this.store[i]!.name === name) {
            fs.closeSync(this.store[i]!.fd);
            this.store.splice(i, 1);
          }
        }
      }
      if (fields.get('READY') === '1') {
        this.ready += 1;
        for (const w of this.readyWaiters.splice(0)) w();
      }
    }
  }

  /** Starts the service, handing it what the store holds. */
  start(): ChildProcess {
    this.ready = 0;
    const stored = [...this.store];
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.options.env, NOTIFY_SOCKET: this.options.socketPath };
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
    delete env.LISTEN_PID;
    if (stored.length > 0) {
      env.LISTEN_FDS = String(stored.length);
      env.LISTEN_FDNAMES = stored.map((s) => s.name).join(':');
    }
    const script = stored.length > 0 ? 'export LISTEN_PID=$$; exec "$@"' : 'exec "$@"';
    const child = spawn('sh', ['-c', script, 'sh', ...this.options.command], {
      env,
      ...(this.options.cwd === undefined ? {} : { cwd: this.options.cwd }),
      stdio: ['pipe', 'pipe', 'pipe', ...stored.map((s) => s.fd)],
    });
    const out = (d: Buffer): void => this.options.onOutput?.(d.toString());
    child.stdout!.on('data', out);
    child.stderr!.on('data', out);
    this.child = child;
    return child;
  }

  /** Resolves at the next READY=1 (or at once if one came since start()). */
  whenReady(timeoutMs: number): Promise<void> {
    if (this.ready > 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no READY=1 within ${timeoutMs} ms`)), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Kills the service (default SIGKILL, as a crash or the watchdog would) and waits for it to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await gone;
  }

  /** Stops the service and closes the store and the socket. */
  async close(): Promise<void> {
    await this.kill();
    this.poller.close();
    fs.closeSync(this.socketFd);
    fs.rmSync(this.options.socketPath, { force: true });
    for (const s of this.store.splice(0)) fs.closeSync(s.fd);
  }
}
