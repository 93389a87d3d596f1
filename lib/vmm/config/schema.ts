// The zod schema of the config file: the shape and the type of every key, for bao-virtio-dm's
// keys (spec §5.1, same snake_case names) and node-bao's additions. It checks each value on its
// own; rules that relate several keys or devices live in normalize.ts. Objects are loose so
// that unknown keys reach normalize.ts, which reports them as warnings: bao-virtio-dm ignores
// unknown keys (its serde structs do not deny them), so refusing them would break drop-in use.

import { z } from 'zod';

import { LOG_FORMATS, LOG_LEVELS } from './types.js';

function show(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${String(value)}`;
}

function expected(what: string) {
  return (issue: { input?: unknown }): string =>
    issue.input === undefined ? `required: ${what}` : `expected ${what}, got ${show(issue.input)}`;
}

/** Accepts YAML integers (bigint with intAsBigInt), safe JS numbers and decimal/0x strings. */
export function toBigIntValue(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : undefined;
  if (typeof value === 'string') {
    const s = value.trim().replaceAll('_', '');
    if (/^0x[0-9a-f]+$/i.test(s) || /^[0-9]+$/.test(s)) return BigInt(s);
  }
  return undefined;
}

/** An unsigned integer of `bits` bits, kept as bigint (u64 addresses do not fit a double). */
export function unsignedInt(bits: 32 | 64, what: string, range?: { readonly min: bigint; readonly max: bigint }) {
  const max = (1n << BigInt(bits)) - 1n;
  return z.unknown().transform((value, ctx): bigint => {
    if (value === undefined) {
      ctx.addIssue({ code: 'custom', message: `required: ${what}` });
      return z.NEVER;
    }
    const n = toBigIntValue(value);
    if (n === undefined) {
      const hint =
        typeof value !== 'number' || !Number.isFinite(value)
          ? ''
          : Number.isInteger(value)
            ? ' (too large for a JSON number: write it as a YAML integer or a 0x string)'
            : ' (not a whole number)';
      ctx.addIssue({ code: 'custom', message: `expected ${what} (decimal or 0x hex), got ${show(value)}${hint}` });
      return z.NEVER;
    }
    if (range !== undefined && (n < range.min || n > range.max)) {
      ctx.addIssue({ code: 'custom', message: `must be between ${range.min} and ${range.max} (${what}), got ${n}` });
      return z.NEVER;
    }
    if (n < 0n || n > max) {
      ctx.addIssue({ code: 'custom', message: `${n} is out of range for ${what} (0..0x${max.toString(16)})` });
      return z.NEVER;
    }
    return n;
  });
}

const str = (what: string) => z.string({ error: expected(what) });
const bool = (what: string) => z.boolean({ error: expected(`${what} (true or false)`) });

/** One entry of the `devices:` list, every key as bao-virtio-dm spells it, plus ours. */
export const rawDeviceSchema = z.looseObject(
  {
    // bao-virtio-dm (spec §5.1)
    id: unsignedInt(32, 'a device-model id'),
    type: str('a device type such as console'),
    mmio_addr: unsignedInt(64, 'the guest-physical address of the virtio-mmio window'),
    data_plane: str('a data plane (virtio or vhost_user)').optional(),
    file_path: str('a file path').optional(),
    read_only: bool('read_only').optional(),
    root_device: bool('root_device').optional(),
    advertise_flush: bool('advertise_flush').optional(),
    tap_name: str('a TAP interface name').optional(),
    mac_addr: str('a MAC address like 52:54:00:aa:bb:01').optional(),
    guest_cid: unsignedInt(64, 'a vsock guest CID').optional(),
    socket_path: str('a socket path').optional(),
    pty_alias: str('a path for the PTY symlink').optional(),
    // node-bao: block device additions
    serial: str('a disk serial (at most 20 bytes)').optional(),
    queues: unsignedInt(32, 'a number of request queues').optional(),
    queue_size: unsignedInt(32, 'a queue size (a power of two)').optional(),
    discard: bool('discard').optional(),
    engine: str('an I/O engine (auto, io_uring or thread-pool)').optional(),
    cache: str('a cache mode (writeback, writethrough or unsafe)').optional(),
    // node-bao: net additions
    create_tap: bool('create_tap').optional(),
    mtu: unsignedInt(32, 'an MTU in bytes').optional(),
    queue_pairs: unsignedInt(32, 'a number of queue pairs').optional(),
    // node-bao: vhost_user devices (a socket named directly; the fs mount tag)
    socket: str('the path of a vhost-user backend socket').optional(),
    tag: str('a virtio-fs mount tag').optional(),
    // node-bao: console backend selection
    backend: str('a console backend (pty, stdio or socket)').optional(),
    // node-bao: revB CREATE_DM parameters (spec §3.3, §4.4)
    shmem_addr: unsignedInt(64, 'the shared-memory base address').optional(),
    shmem_size: unsignedInt(64, 'the shared-memory size in bytes').optional(),
    irq: unsignedInt(32, 'an interrupt line number').optional(),
  },
  { error: expected('a device mapping (id, type, mmio_addr, ...)') },
);
export type RawDevice = z.output<typeof rawDeviceSchema>;

export const rawLogSchema = z.looseObject(
  {
    level: z.enum(LOG_LEVELS, { error: expected(`a log level (${LOG_LEVELS.join(', ')})`) }).optional(),
    format: z.enum(LOG_FORMATS, { error: expected(`a log format (${LOG_FORMATS.join(', ')})`) }).optional(),
  },
  { error: expected('a mapping with level and/or format') },
);

/** The root: bao-virtio-dm's `devices:` list, plus node-bao's optional daemon settings. */
export const rawRootSchema = z.looseObject(
  {
    devices: z.array(z.unknown(), { error: expected('a list of devices (`devices:` as in bao-virtio-dm)') }),
    log: rawLogSchema.optional(),
    shutdown_timeout_ms: unsignedInt(64, 'milliseconds', { min: 1n, max: 600_000n }).optional(),
  },
  { error: expected('a mapping with a `devices:` list') },
);

export const DEVICE_KEYS: readonly string[] = Object.keys(rawDeviceSchema.shape);
export const ROOT_KEYS: readonly string[] = Object.keys(rawRootSchema.shape);
export const LOG_KEYS: readonly string[] = Object.keys(rawLogSchema.shape);
