// Who may use the status socket: `--status-socket-mode 0660 --status-socket-group monitor` lets a
// monitoring user in that group run `baoctl status` (or scrape /metrics) without root. The group
// is a name from /etc/group or a number; Node has no getgrnam, and /etc/group is what it reads.

import { chmod, chown, readFile } from 'node:fs/promises';

import { VmmError } from './errors.js';

export class SocketAccessError extends VmmError {
  constructor(message: string, options?: ErrorOptions) {
    super('STATUS_SOCKET_ACCESS', message, options);
    this.name = 'SocketAccessError';
  }
}

/** An octal mode such as 0660 or 660; undefined for anything else. */
export function parseSocketMode(text: string): number | undefined {
  if (!/^0?[0-7]{3}$/.test(text)) return undefined;
  return Number.parseInt(text, 8);
}

/** The gid of a group name or number, from /etc/group's text. */
export function resolveGroup(group: string, etcGroup: string): number | undefined {
  if (/^\d+$/.test(group)) return Number(group);
  for (const line of etcGroup.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

export interface SocketAccess {
  readonly mode?: number | undefined;
  readonly group?: string | undefined;
}

export async function applySocketAccess(
  path: string,
  access: SocketAccess,
  readGroupFile: () => Promise<string> = () => readFile('/etc/group', 'utf8'),
): Promise<void> {
  if (access.group !== undefined) {
    const gid = resolveGroup(access.group, /^\d+$/.test(access.group) ? '' : await readGroupFile().catch(() => ''));
    if (gid === undefined) {
      throw new SocketAccessError(`--status-socket-group ${access.group}: no such group in /etc/group; create it (groupadd ${access.group}) or give a gid`);
    }
    try {
      await chown(path, -1, gid);
    } catch (cause) {
      throw new SocketAccessError(`status socket ${path}: cannot give it to group ${access.group}: ${(cause as Error).message}`, { cause });
    }
  }
  if (access.mode !== undefined) {
    try {
      await chmod(path, access.mode);
    } catch (cause) {
      throw new SocketAccessError(`status socket ${path}: cannot set mode ${access.mode.toString(8)}: ${(cause as Error).message}`, { cause });
    }
  }
}
