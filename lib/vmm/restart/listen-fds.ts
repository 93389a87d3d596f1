// Descriptors handed to this process at exec by systemd (sd_listen_fds_with_names(3)): when
// LISTEN_PID is our pid, LISTEN_FDS descriptors start at fd 3, named by the colon-separated
// LISTEN_FDNAMES. As sd_listen_fds does, the variables are removed from the environment (a
// child must not take them for its own) and each fd is made close-on-exec. A LISTEN_PID of
// another process means the variables were inherited by mistake: nothing is ours then.

export const LISTEN_FDS_START = 3;

export interface ListenedFd {
  readonly fd: number;
  /** The FDNAME it was stored under ('unknown' when systemd gave no name). */
  readonly name: string;
}

export interface ListenFdsResult {
  readonly fds: readonly ListenedFd[];
  /** Why the variables were present but not used (for a warning). */
  readonly ignored?: string;
}

export interface ListenFdsOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly pid?: number;
  /** Makes an fd close-on-exec (the addon's setCloexec); default: leave it. */
  readonly setCloexec?: (fd: number) => void;
  /** Remove LISTEN_* from `env` (default true). */
  readonly unset?: boolean;
}

/** More than this is not a fd store of ours (systemd's own cap on FileDescriptorStoreMax is higher; ours is 256 in the unit). */
const MAX_LISTEN_FDS = 4096;

export function listenFds(options: ListenFdsOptions = {}): ListenFdsResult {
  const env = options.env ?? process.env;
  const pidText = env.LISTEN_PID;
  const countText = env.LISTEN_FDS;
  const namesText = env.LISTEN_FDNAMES;
  if (options.unset !== false) {
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
  }
  if (countText === undefined || countText === '') return { fds: [] };
  const pid = options.pid ?? process.pid;
  if (pidText === undefined || !/^\d+$/.test(pidText)) return { fds: [], ignored: `LISTEN_FDS is set but LISTEN_PID is not a pid (${pidText ?? 'unset'})` };
  if (Number(pidText) !== pid) return { fds: [], ignored: `LISTEN_PID=${pidText} is another process (this one is ${pid})` };
  if (!/^\d+$/.test(countText) || Number(countText) > MAX_LISTEN_FDS) return { fds: [], ignored: `LISTEN_FDS=${countText} is not a count of descriptors` };
  const count = Number(countText);
  const names = namesText === undefined || namesText === '' ? [] : namesText.split(':');
  const fds: ListenedFd[] = [];
  for (let i = 0; i < count; i += 1) {
    const fd = LISTEN_FDS_START + i;
    try {
      options.setCloexec?.(fd);
    } catch {
      // Not open: KeptFds reports it under its name and takes nothing from it.
    }
    fds.push({ fd, name: names[i] !== undefined && names[i] !== '' ? names[i]! : 'unknown' });
  }
  return { fds };
}
