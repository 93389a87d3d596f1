// Unix-socket paths that servers listen on (the console's socket backend; the daemon's status
// socket uses it too). A socket file left by a crashed process is stale and replaced; a live
// server or a file that is not a socket is somebody else's and never removed.

import { lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';

/** Resolves true when something accepts connections on `path`. */
export function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Why `path` cannot be listened on: the caller turns it into its own error. */
export type SocketPathConflict = 'not-a-socket' | 'in-use';

/**
 * Makes `path` free to listen on: nothing there, or a stale socket file (removed). Otherwise
 * calls `conflict` and throws what it returns.
 */
export async function clearStaleSocket(path: string, conflict: (why: SocketPathConflict) => Error): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw conflict('not-a-socket');
  if (await isListening(path)) throw conflict('in-use');
  await unlink(path);
}
