// The PTY console backend, bao-virtio-dm's default (spec §5.2): a new pseudo-terminal whose
// slave a user opens (screen, minicom), optionally reachable through a symlink (`pty_alias`).
// openpty needs the addon, which lib/devices must not import, so the daemon injects a
// PtyOpener. Unlike bao-virtio-dm (which fails when the alias exists) a stale symlink is
// replaced; anything else at the alias path is left alone and reported. The alias is removed
// on close if it still points at our PTY.

import { lstat, readlink, symlink, unlink } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';

import type { Logger } from '../../../virtio/logger.js';
import { silentLogger } from '../../../virtio/logger.js';
import { ConsoleBackendError } from '../errors.js';
import { type ConsoleBackend, StreamBackend } from './backend.js';

/** A PTY as the opener hands it over: the master's streams and the slave's path. */
export interface OpenedPty {
  /** Slave device path, e.g. /dev/pts/3. */
  readonly path: string;
  /** Reads from the master: what the user types into the slave. */
  readonly input: Readable;
  /** Writes to the master: what the user sees on the slave. */
  readonly output: Writable;
  /** Closes the master. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens a new PTY. Contract for implementers (the addon side): the slave must be in raw mode
 * with echo off (cfmakeraw), otherwise guest output written to the master is echoed back by
 * the line discipline as guest input while nobody holds the slave open (bao-virtio-dm works
 * around that by scanning /proc for slave users, spec §5.4 item 7); and the opener should hold
 * a slave fd open itself, because reading the master fails with EIO whenever no slave fd is open
 * (before the first user attaches and after each one leaves).
 */
export type PtyOpener = () => Promise<OpenedPty>;

export interface PtyBackendOptions {
  readonly opener: PtyOpener;
  readonly alias?: string | undefined;
  readonly log?: Logger;
  /** Guest output queued for a slow or absent terminal before the rest is discarded. */
  readonly maxQueuedBytes?: number;
}

/** Enough for a screenful of boot messages waiting for someone to attach. */
export const DEFAULT_PTY_MAX_QUEUED_BYTES = 64 * 1024;

async function placeAlias(alias: string, target: string): Promise<void> {
  try {
    const st = await lstat(alias);
    if (!st.isSymbolicLink()) {
      throw new ConsoleBackendError('CONSOLE_PTY_ALIAS_OCCUPIED', `${alias} exists and is not a symlink; not replacing it`, 'pty_alias');
    }
    await unlink(alias); // a stale alias from an earlier run
  } catch (err) {
    if (err instanceof ConsoleBackendError) throw err;
    if ((err as { code?: unknown }).code !== 'ENOENT') {
      throw new ConsoleBackendError('CONSOLE_PTY_ALIAS_FAILED', `${alias}: ${(err as Error).message}`, 'pty_alias', { cause: err });
    }
  }
  try {
    await symlink(target, alias);
  } catch (err) {
    throw new ConsoleBackendError('CONSOLE_PTY_ALIAS_FAILED', `${alias}: cannot create the symlink: ${(err as Error).message}`, 'pty_alias', { cause: err });
  }
}

async function removeAlias(alias: string, target: string): Promise<void> {
  try {
    if ((await readlink(alias)) === target) await unlink(alias);
  } catch {
    // Already gone or replaced by someone else: not ours to remove.
  }
}

export async function openPtyBackend(options: PtyBackendOptions): Promise<ConsoleBackend> {
  const log = options.log ?? silentLogger;
  let pty: OpenedPty;
  try {
    pty = await options.opener();
  } catch (err) {
    throw new ConsoleBackendError('CONSOLE_PTY_OPEN_FAILED', `cannot open a PTY: ${(err as Error).message}`, undefined, { cause: err });
  }
  const alias = options.alias;
  if (alias !== undefined) {
    try {
      await placeAlias(alias, pty.path);
    } catch (err) {
      await pty.close();
      throw err;
    }
  }
  const description = alias === undefined ? `pty ${pty.path}` : `pty ${pty.path} (alias ${alias})`;
  // bao-virtio-dm prints this line so users know where to attach; we log it.
  log.info({ pty: pty.path, alias }, `console at ${alias ?? pty.path}`);
  // Lossy output: a PTY is read only while someone has a terminal on it; the guest's console
  // (often its kernel console) must not stall meanwhile.
  const policy = { kind: 'lossy', maxQueuedBytes: options.maxQueuedBytes ?? DEFAULT_PTY_MAX_QUEUED_BYTES } as const;
  return new StreamBackend(
    'pty',
    description,
    pty.input,
    pty.output,
    async () => {
      if (alias !== undefined) await removeAlias(alias, pty.path);
      await pty.close();
    },
    policy,
  );
}
