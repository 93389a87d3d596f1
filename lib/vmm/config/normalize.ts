// Turns a parsed YAML value into a DaemonConfig, or reports EVERY problem with its field path.
// Stage 1 is the zod schema (types of single keys), run per device so one broken entry does not
// hide the others; stage 2 is the rules zod cannot express on one key: served types and data
// planes (refused by name), per-type requirements, DM id range, window alignment, revB
// CREATE_DM triples, and cross-device conflicts (ids, windows, socket paths, PTY aliases).

import type { z } from 'zod';

import { ConfigInvalidError, type ConfigIssue, type SourcePosition } from '../errors.js';
import { DEVICE_KEYS, LOG_KEYS, ROOT_KEYS, type RawDevice, rawDeviceSchema, rawRootSchema } from './schema.js';
import {
  SERVED_DATA_PLANES,
  SERVED_DEVICE_TYPES,
  type ServedDeviceType,
  isKnownDataPlane,
  isKnownType,
  isServedDataPlane,
  isServedType,
} from './served.js';
import { KERNEL_VHOST_KEYS, kernelVhostTypeProblem, normalizeKernelVhost } from './vhost-kernel.js';
import { normalizeVhostUser, VHOST_USER_KEYS, vhostUserTypeProblem } from './vhost-user.js';
import {
  BLOCK_CACHE_MODES,
  BLOCK_ENGINES,
  type BlockCacheMode,
  type BlockDeviceConfig,
  type BlockEngineChoice,
  CONSOLE_BACKEND_KINDS,
  type ConsoleBackendConfig,
  type CreateDmParams,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  type DaemonConfig,
  type DeviceConfig,
  MMIO_WINDOW_SIZE,
  NET_DEFAULTS,
  NET_MAX_QUEUE_PAIRS,
  type NetDeviceConfig,
} from './types.js';

export type FieldPath = readonly (string | number)[];

export interface ValidateOptions {
  /** File name for messages. */
  readonly source?: string;
  /** Maps a field path to its position in the file (given by the YAML loader). */
  readonly locate?: (path: FieldPath) => SourcePosition | undefined;
  /** Refuse unknown keys (bao-virtio-dm ignores them, so by default they are only warnings). */
  readonly strict?: boolean;
}

export interface ValidatedConfig {
  readonly config: DaemonConfig;
  /** Things that do not stop the daemon but the user probably wants to know (ignored keys). */
  readonly warnings: readonly ConfigIssue[];
}

/** OOT/v1/v2 drivers have 16 device models (spec §3.1 `BAO_IO_MAX_DMS`, §3.10). */
export const MAX_DM_ID_V2 = 15;
/** v2 mmap wants a page-aligned shared region (spec §3.5); 4 KiB is the smallest page. */
const PAGE_SIZE = 0x1000n;
/** sun_path is 108 bytes on Linux, including the terminating NUL. */
const MAX_UNIX_SOCKET_PATH = 107;
const U64_LIMIT = 1n << 64n;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Keys each type uses beyond the common ones, to warn about keys that do nothing. */
const TYPE_KEYS: Readonly<Record<string, readonly string[]>> = {
  block: ['file_path', 'read_only', 'root_device', 'advertise_flush', 'serial', 'queues', 'queue_size', 'discard', 'engine', 'cache'],
  net: ['tap_name', 'mac_addr', 'create_tap', 'mtu', 'queue_pairs', 'queue_size'],
  vsock: ['guest_cid', 'socket_path'],
  fs: ['socket_path'],
  console: ['pty_alias', 'backend', 'socket_path'],
  rng: [],
};
const COMMON_KEYS = ['id', 'type', 'mmio_addr', 'data_plane', 'shmem_addr', 'shmem_size', 'irq'];
/** Keys older bao-virtio-dm configs carried (its DeviceConfig doc still lists them). */
const LEGACY_KEYS: Readonly<Record<string, string>> = {
  shmem_path: 'ignored: an older bao-virtio-dm key; the shared region comes from the driver',
};

export function formatFieldPath(path: FieldPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? part : `.${part}`;
  }
  return out;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

class IssueList {
  readonly errors: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];

  constructor(
    private readonly locate: ValidateOptions['locate'],
    /** --strict: unknown keys are errors, not warnings. */
    readonly strict = false,
  ) {}

  private make(path: FieldPath, message: string): ConfigIssue {
    const position = this.locate?.(path);
    return position ? { field: formatFieldPath(path), message, position } : { field: formatFieldPath(path), message };
  }

  error(path: FieldPath, message: string): void {
    this.errors.push(this.make(path, message));
  }

  warn(path: FieldPath, message: string): void {
    this.warnings.push(this.make(path, message));
  }

  zod(prefix: FieldPath, error: z.ZodError): void {
    for (const issue of error.issues) {
      this.error([...prefix, ...(issue.path as (string | number)[])], issue.message);
    }
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function suggest(key: string, known: readonly string[]): string {
  const best = known
    .map((k) => ({ k, d: editDistance(key, k) }))
    .filter((x) => x.d <= 2)
    .sort((x, y) => x.d - y.d)[0];
  return best ? ` (did you mean '${best.k}'?)` : '';
}

function checkUnknownKeys(
  obj: Record<string, unknown>,
  known: readonly string[],
  prefix: FieldPath,
  issues: IssueList,
): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const legacy = LEGACY_KEYS[key];
    if (legacy !== undefined) issues.warn([...prefix, key], legacy);
    else if (issues.strict) issues.error([...prefix, key], `unknown key${suggest(key, known)} (refused by --strict)`);
    else issues.warn([...prefix, key], `unknown key, ignored${suggest(key, known)}`);
  }
}

/** A device entry that passed the schema, with the facts cross-device checks need. */
interface ParsedEntry {
  readonly index: number;
  /** Keys that passed the schema; a key that failed (or is absent) is undefined and was reported. */
  readonly raw: Partial<RawDevice>;
}

/** A fully valid entry, ready for its type's normalizer. */
interface CompleteEntry extends ParsedEntry {
  readonly raw: RawDevice;
}

type Normalizer = (entry: CompleteEntry, common: CommonFields, issues: IssueList) => DeviceConfig | undefined;

interface CommonFields {
  readonly index: number;
  readonly id: number;
  readonly mmioAddr: bigint;
  readonly dataPlane: 'virtio';
  readonly createDm: CreateDmParams | undefined;
}

function normalizeConsoleBackend(entry: CompleteEntry, issues: IssueList): ConsoleBackendConfig | undefined {
  const { raw, index } = entry;
  const at = (key: string): FieldPath => ['devices', index, key];
  const kind = raw.backend ?? 'pty';
  if (!(CONSOLE_BACKEND_KINDS as readonly string[]).includes(kind)) {
    issues.error(at('backend'), `unknown console backend '${kind}'; expected one of ${CONSOLE_BACKEND_KINDS.join(', ')}`);
    return undefined;
  }
  if (raw.pty_alias !== undefined && kind !== 'pty') {
    issues.error(at('pty_alias'), `applies only to backend: pty (this console uses backend: ${kind}); remove it`);
  }
  if (raw.pty_alias !== undefined && raw.pty_alias.trim() === '') {
    issues.error(at('pty_alias'), 'must be a non-empty path (or leave pty_alias out to use the PTY name only)');
  }
  if (kind !== 'socket' && raw.socket_path !== undefined) {
    issues.warn(at('socket_path'), `ignored: a console uses socket_path only with backend: socket`);
  }
  switch (kind) {
    case 'pty':
      return { kind: 'pty', alias: raw.pty_alias };
    case 'stdio':
      return { kind: 'stdio' };
    case 'socket': {
      const path = raw.socket_path;
      if (path === undefined || path === '') {
        issues.error(at('socket_path'), 'required with backend: socket: the path of the unix socket the daemon listens on');
        return undefined;
      }
      if (Buffer.byteLength(path) > MAX_UNIX_SOCKET_PATH) {
        issues.error(at('socket_path'), `too long for a unix socket (${Buffer.byteLength(path)} bytes, at most ${MAX_UNIX_SOCKET_PATH}); use a shorter path`);
        return undefined;
      }
      return { kind: 'socket', path };
    }
    default:
      return undefined;
  }
}

/** Limits of the block device's queues (lib/devices/blk). */
const MAX_BLOCK_QUEUES = 64;
const MAX_QUEUE_SIZE = 32768;
const DEFAULT_BLOCK_QUEUE_SIZE = 256;
const MAX_SERIAL_BYTES = 20;

function normalizeBlock(entry: CompleteEntry, common: CommonFields, issues: IssueList): BlockDeviceConfig | undefined {
  const { raw, index } = entry;
  const at = (key: string): FieldPath => ['devices', index, key];
  const before = issues.errors.length;
  const filePath = raw.file_path;
  if (filePath === undefined || filePath.trim() === '') {
    issues.error(at('file_path'), 'required for a block device: the path of its disk image or block device');
  }
  const serial = raw.serial;
  if (serial !== undefined) {
    if (serial === '' || Buffer.byteLength(serial) > MAX_SERIAL_BYTES) {
      issues.error(at('serial'), `must be 1 to ${MAX_SERIAL_BYTES} bytes (the guest reads at most 20), got ${Buffer.byteLength(serial)}`);
    } else if (!/^[\x20-\x7e]+$/.test(serial)) {
      issues.error(at('serial'), 'must be printable ASCII (the guest shows it in /sys/block/vdX/serial)');
    }
  }
  const queues = raw.queues === undefined ? 1 : Number(raw.queues);
  if (queues < 1 || queues > MAX_BLOCK_QUEUES) {
    issues.error(at('queues'), `must be between 1 and ${MAX_BLOCK_QUEUES}, got ${queues}`);
  }
  const queueSize = raw.queue_size === undefined ? DEFAULT_BLOCK_QUEUE_SIZE : Number(raw.queue_size);
  if (queueSize < 2 || queueSize > MAX_QUEUE_SIZE || (queueSize & (queueSize - 1)) !== 0) {
    issues.error(at('queue_size'), `must be a power of two between 2 and ${MAX_QUEUE_SIZE}, got ${queueSize}`);
  }
  const engine = raw.engine ?? 'auto';
  if (!(BLOCK_ENGINES as readonly string[]).includes(engine)) {
    issues.error(at('engine'), `unknown I/O engine '${engine}'; expected one of ${BLOCK_ENGINES.join(', ')}`);
  }
  const cache = raw.cache ?? 'writeback';
  if (!(BLOCK_CACHE_MODES as readonly string[]).includes(cache)) {
    issues.error(at('cache'), `unknown cache mode '${cache}'; expected one of ${BLOCK_CACHE_MODES.join(', ')}`);
  }
  if (raw.read_only === true && raw.discard === true) {
    issues.error(at('discard'), 'a read-only disk cannot discard; remove discard or set read_only: false');
  }
  if (issues.errors.length !== before || filePath === undefined) return undefined;
  return {
    ...common,
    type: 'block',
    filePath,
    readOnly: raw.read_only ?? false,
    rootDevice: raw.root_device ?? false,
    advertiseFlush: raw.advertise_flush ?? true,
    serial,
    queues,
    queueSize,
    discard: raw.discard ?? false,
    engine: engine as BlockEngineChoice,
    cache: cache as BlockCacheMode,
  };
}

/** IFNAMSIZ is 16 with the NUL; '/' and whitespace cannot appear in an interface name. */
const IFNAME_RE = /^[^/\s:]{1,15}$/;

function normalizeNet(entry: CompleteEntry, common: CommonFields, issues: IssueList): NetDeviceConfig | undefined {
  const { raw, index } = entry;
  const at = (key: string): FieldPath => ['devices', index, key];
  const before = issues.errors.length;
  const tapName = raw.tap_name;
  if (tapName === undefined || tapName === '') {
    issues.error(at('tap_name'), 'required for type net: the tap interface the device sends and receives on (for example tap0)');
  } else if (!IFNAME_RE.test(tapName) || Buffer.byteLength(tapName) > 15 || tapName === '.' || tapName === '..') {
    issues.error(at('tap_name'), `'${tapName}' is not an interface name: at most 15 bytes, without '/', ':' or spaces`);
  }
  const mtu = raw.mtu === undefined ? NET_DEFAULTS.mtu : Number(raw.mtu);
  if (mtu < 68 || mtu > 65535) issues.error(at('mtu'), `${mtu} is out of range: an MTU is 68..65535 bytes`);
  const queuePairs = raw.queue_pairs === undefined ? NET_DEFAULTS.queuePairs : Number(raw.queue_pairs);
  if (queuePairs < 1 || queuePairs > NET_MAX_QUEUE_PAIRS) issues.error(at('queue_pairs'), `${queuePairs} is out of range: 1..${NET_MAX_QUEUE_PAIRS} queue pairs`);
  const queueSize = raw.queue_size === undefined ? NET_DEFAULTS.queueSize : Number(raw.queue_size);
  if (queueSize < 2 || queueSize > 32768 || (queueSize & (queueSize - 1)) !== 0) issues.error(at('queue_size'), `${queueSize} is not a power of two between 2 and 32768`);
  if (raw.mac_addr !== undefined && (parseInt(raw.mac_addr.slice(0, 2), 16) & 1) === 1) {
    issues.error(at('mac_addr'), `'${raw.mac_addr}' is a multicast address; a NIC needs a unicast one (the first byte even, like 52:54:00:aa:bb:01)`);
  }
  if (issues.errors.length !== before || tapName === undefined) return undefined;
  return {
    ...common,
    type: 'net',
    tapName,
    mac: raw.mac_addr?.toLowerCase(),
    createTap: raw.create_tap ?? false,
    mtu,
    queuePairs,
    queueSize,
  };
}

/** One normalizer per served type: the record type makes adding a served type a compile error until handled. */
const NORMALIZERS: { readonly [T in ServedDeviceType]: Normalizer } = {
  console: (entry, common, issues) => {
    const backend = normalizeConsoleBackend(entry, issues);
    return backend === undefined ? undefined : { ...common, type: 'console', backend };
  },
  rng: (_entry, common) => ({ ...common, type: 'rng' }),
  block: normalizeBlock,
  net: normalizeNet,
};

function checkTypeAndPlane(entry: ParsedEntry, issues: IssueList): void {
  const { raw, index } = entry;
  const served = SERVED_DEVICE_TYPES.join(', ');
  if (raw.data_plane === 'vhost') {
    const problem = raw.type === undefined ? undefined : kernelVhostTypeProblem(raw.type);
    if (problem !== undefined) issues.error(['devices', index, 'type'], problem);
    return;
  }
  if (raw.data_plane === 'vhost_user') {
    // The backend serves the device: any type it knows, not only the in-process ones.
    const problem = raw.type === undefined ? undefined : vhostUserTypeProblem(raw.type);
    if (problem !== undefined) issues.error(['devices', index, 'type'], problem);
    return;
  }
  if (raw.type !== undefined && !isServedType(raw.type)) {
    if (isKnownType(raw.type)) {
      issues.error(['devices', index, 'type'], `'${raw.type}' is not served by node-bao yet; served types: ${served}`);
    } else {
      issues.error(['devices', index, 'type'], `unknown device type '${raw.type}'${suggest(raw.type, SERVED_DEVICE_TYPES)}; served types: ${served}`);
    }
  }
  const plane = raw.data_plane ?? 'virtio';
  if (!isServedDataPlane(plane)) {
    const servedPlanes = SERVED_DATA_PLANES.join(', ');
    if (isKnownDataPlane(plane)) {
      issues.error(['devices', index, 'data_plane'], `'${plane}' is not served by node-bao yet; served data planes: ${servedPlanes}`);
    } else {
      issues.error(['devices', index, 'data_plane'], `unknown data plane '${plane}'; expected virtio, vhost or vhost_user (node-bao serves: ${servedPlanes})`);
    }
  }
}

function checkCommon(entry: ParsedEntry, issues: IssueList): CreateDmParams | undefined {
  const { raw, index } = entry;
  const at = (key: string): FieldPath => ['devices', index, key];
  const triple = ['shmem_addr', 'shmem_size', 'irq'] as const;

  const given = triple.filter((k) => raw[k] !== undefined);
  let createDm: CreateDmParams | undefined;
  if (given.length > 0 && given.length < 3) {
    for (const k of triple.filter((k) => raw[k] === undefined)) {
      issues.error(at(k), `required together with ${given.join(' and ')}: revB's CREATE_DM needs shmem_addr, shmem_size and irq (or give none of them for the OOT/v1/v2 drivers)`);
    }
  } else if (raw.shmem_addr !== undefined && raw.shmem_size !== undefined && raw.irq !== undefined) {
    const { shmem_addr: addr, shmem_size: size } = raw;
    if (addr % PAGE_SIZE !== 0n) {
      issues.error(at('shmem_addr'), `${hex(addr)} is not page aligned (4 KiB); the driver maps the region from its base; give a multiple of 0x1000`);
    }
    if (size === 0n) {
      issues.error(at('shmem_size'), 'must be greater than 0');
    } else if (addr + size > U64_LIMIT) {
      issues.error(at('shmem_size'), `${hex(addr)} + ${hex(size)} runs past the end of the 64-bit address space`);
    }
    createDm = { shmemAddr: addr, shmemSize: size, irq: Number(raw.irq) };
  }

  // A rejected triple still means "revB was meant": do not add a second, misleading id error.
  if (given.length === 0 && raw.id !== undefined && raw.id > BigInt(MAX_DM_ID_V2)) {
    issues.error(at('id'), `DM id ${raw.id} is out of range: the OOT/v1/v2 I/O dispatcher has 16 device models (0..15); for revB's CREATE_DM also give shmem_addr, shmem_size and irq`);
  }

  const mmio = raw.mmio_addr;
  if (mmio !== undefined) {
    if (mmio % 4n !== 0n) {
      issues.error(at('mmio_addr'), `${hex(mmio)} is not 4-byte aligned; virtio-mmio registers are 32-bit aligned from the window base`);
    }
    if (mmio + MMIO_WINDOW_SIZE > U64_LIMIT) {
      issues.error(at('mmio_addr'), `the 0x200-byte window at ${hex(mmio)} runs past the end of the 64-bit address space`);
    }
    if (createDm !== undefined && mmio < createDm.shmemAddr + createDm.shmemSize && createDm.shmemAddr < mmio + MMIO_WINDOW_SIZE) {
      issues.error(at('mmio_addr'), `the window at ${hex(mmio)} overlaps this device's shared memory ${hex(createDm.shmemAddr)}..${hex(createDm.shmemAddr + createDm.shmemSize - 1n)}`);
    }
  }

  if (raw.mac_addr !== undefined && !MAC_RE.test(raw.mac_addr)) {
    issues.error(at('mac_addr'), `'${raw.mac_addr}' is not a MAC address; write six hex pairs separated by colons, like 52:54:00:aa:bb:01`);
  }
  return createDm;
}

function checkKeysForType(entry: ParsedEntry, issues: IssueList): void {
  const { raw, index } = entry;
  if (raw.type === undefined) return;
  const own = raw.data_plane === 'vhost_user' ? VHOST_USER_KEYS : raw.data_plane === 'vhost' ? KERNEL_VHOST_KEYS : TYPE_KEYS[raw.type];
  for (const key of Object.keys(raw)) {
    if (!DEVICE_KEYS.includes(key)) continue; // reported as unknown already
    if (COMMON_KEYS.includes(key) || own === undefined || own.includes(key)) continue;
    const owner = Object.entries(TYPE_KEYS).find(([, keys]) => keys.includes(key))?.[0];
    issues.warn(['devices', index, key], `ignored for type ${raw.type}${owner ? ` (it applies to ${owner})` : ''}`);
  }
}

/**
 * Window overlaps in O(n log n): sorted by address, each window is compared with the one that
 * reaches furthest among those before it. Windows that touch (one ends where the next begins)
 * are valid but warned about: Bao (v2.0.0 and later) routes an access to a window's first address
 * to the window just below it when two touch, so the upper device's MagicValue reads wrong.
 */
function checkWindows(windows: { index: number; start: bigint }[], issues: IssueList): void {
  const sorted = [...windows].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.index - b.index));
  let reach: { index: number; start: bigint } | undefined;
  for (const w of sorted) {
    if (reach !== undefined) {
      const end = reach.start + MMIO_WINDOW_SIZE;
      const [first, second] = reach.index < w.index ? [reach, w] : [w, reach];
      if (w.start < end) {
        issues.error(
          ['devices', second.index, 'mmio_addr'],
          `the window ${hex(second.start)}..${hex(second.start + MMIO_WINDOW_SIZE - 1n)} overlaps devices[${first.index}]'s window at ${hex(first.start)} (each window is 0x200 bytes)`,
        );
        continue;
      }
      if (w.start === end) {
        issues.warn(
          ['devices', w.index, 'mmio_addr'],
          `the window at ${hex(w.start)} starts where devices[${reach.index}]'s window (${hex(reach.start)}) ends; Bao routes an access to the first address of a window to the window below it when two touch, so this device would be misread: leave a gap, e.g. mmio_addr ${hex(w.start + MMIO_WINDOW_SIZE)} (in the frontend's device tree too)`,
        );
      }
    }
    reach = w;
  }
}

function checkConflicts(entries: readonly ParsedEntry[], issues: IssueList): void {
  const byId = new Map<bigint, number>();
  const windows: { index: number; start: bigint }[] = [];
  const socketPaths = new Map<string, number>();
  const aliases = new Map<string, number>();
  const images = new Map<string, { index: number; readOnly: boolean }>();
  const taps = new Map<string, number>();
  let stdioAt: number | undefined;
  for (const { raw, index } of entries) {
    if (raw.id !== undefined) {
      const sameId = byId.get(raw.id);
      if (sameId !== undefined) {
        issues.error(['devices', index, 'id'], `DM id ${raw.id} is already used by devices[${sameId}]; each device needs its own device model: give it an unused id`);
      } else byId.set(raw.id, index);
    }

    if (raw.mmio_addr !== undefined) windows.push({ index, start: raw.mmio_addr });

    if (raw.type === 'block' && raw.file_path !== undefined) {
      const prev = images.get(raw.file_path);
      const readOnly = raw.read_only ?? false;
      if (prev !== undefined && !(prev.readOnly && readOnly)) {
        issues.error(['devices', index, 'file_path'], `'${raw.file_path}' is already the disk of devices[${prev.index}]; two devices may share an image only if both are read_only`);
      } else if (prev === undefined) images.set(raw.file_path, { index, readOnly });
    }

    if (raw.type === 'net' && raw.tap_name !== undefined) {
      const prev = taps.get(raw.tap_name);
      if (prev !== undefined) issues.error(['devices', index, 'tap_name'], `'${raw.tap_name}' is already used by devices[${prev}]; give each net device its own tap`);
      else taps.set(raw.tap_name, index);
    }

    if (raw.type === 'console') {
      const kind = raw.backend ?? 'pty';
      if (kind === 'socket' && raw.socket_path !== undefined) {
        const prev = socketPaths.get(raw.socket_path);
        if (prev !== undefined) issues.error(['devices', index, 'socket_path'], `'${raw.socket_path}' is already used by devices[${prev}]; give each console its own socket`);
        else socketPaths.set(raw.socket_path, index);
      }
      if (kind === 'pty' && raw.pty_alias !== undefined) {
        const prev = aliases.get(raw.pty_alias);
        if (prev !== undefined) issues.error(['devices', index, 'pty_alias'], `'${raw.pty_alias}' is already used by devices[${prev}]; give each console its own alias`);
        else aliases.set(raw.pty_alias, index);
      }
      if (kind === 'stdio') {
        if (stdioAt !== undefined) issues.error(['devices', index, 'backend'], `only one console can use stdio; devices[${stdioAt}] already does`);
        else stdioAt = index;
      }
    }
  }
  checkWindows(windows, issues);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Schema-checks each key on its own, so one bad key does not hide the checks of the others. */
function parseDevice(value: unknown, index: number, issues: IssueList): ParsedEntry | undefined {
  if (!isPlainObject(value)) {
    issues.error(['devices', index], `expected a device mapping (id, type, mmio_addr, ...), got ${value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value}`);
    return undefined;
  }
  const raw: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(rawDeviceSchema.shape)) {
    const result = (schema as z.ZodType).safeParse(value[key]);
    if (!result.success) issues.zod(['devices', index, key], result.error);
    else if (result.data !== undefined) raw[key] = result.data;
  }
  checkUnknownKeys(value, DEVICE_KEYS, ['devices', index], issues);
  return { index, raw: raw as Partial<RawDevice> };
}

function deviceIndexOf(issue: ConfigIssue): number {
  const m = /^devices\[(\d+)\]/.exec(issue.field);
  return m ? Number(m[1]) : -1;
}

function fail(source: string | undefined, issues: IssueList): never {
  // Stable sort: root problems first, then device by device in file order.
  const byDevice = (a: ConfigIssue, b: ConfigIssue): number => deviceIndexOf(a) - deviceIndexOf(b);
  throw new ConfigInvalidError(source, [...issues.errors].sort(byDevice), [...issues.warnings].sort(byDevice));
}

/** Validates a parsed YAML/JSON value; throws ConfigInvalidError listing every error. */
export function validateConfig(input: unknown, options: ValidateOptions = {}): ValidatedConfig {
  const issues = new IssueList(options.locate, options.strict === true);

  if (input === null || input === undefined) {
    issues.error([], 'the config is empty; it needs a `devices:` list');
    fail(options.source, issues);
  }
  if (!isPlainObject(input)) {
    issues.error([], 'expected a mapping with a `devices:` list');
    fail(options.source, issues);
  }
  // Key by key, like devices: a bad `log:` must not hide the device errors.
  const root: { devices?: unknown[]; log?: z.output<typeof rawRootSchema.shape.log>; shutdown_timeout_ms?: bigint } = {};
  for (const [key, schema] of Object.entries(rawRootSchema.shape)) {
    const result = (schema as z.ZodType).safeParse(input[key]);
    if (!result.success) issues.zod([key], result.error);
    else if (result.data !== undefined) (root as Record<string, unknown>)[key] = result.data;
  }
  checkUnknownKeys(input, ROOT_KEYS, [], issues);
  if (root.log !== undefined) checkUnknownKeys(root.log, LOG_KEYS, ['log'], issues);
  let shutdownTimeoutMs = DEFAULT_SHUTDOWN_TIMEOUT_MS;
  if (root.shutdown_timeout_ms !== undefined) {
    const ms = root.shutdown_timeout_ms;
    if (ms === 0n || ms > 600_000n) issues.error(['shutdown_timeout_ms'], `must be between 1 and 600000 (milliseconds), got ${ms}`);
    else shutdownTimeoutMs = Number(ms);
  }
  const rawDevices = root.devices ?? [];

  if (root.devices !== undefined && rawDevices.length === 0) {
    issues.error(['devices'], 'the list is empty: add at least one device');
  }

  const parsed: ParsedEntry[] = [];
  const devices: DeviceConfig[] = [];
  rawDevices.forEach((value, index) => {
    const before = issues.errors.length;
    const entry = parseDevice(value, index, issues);
    if (entry === undefined) return;
    parsed.push(entry);
    checkTypeAndPlane(entry, issues);
    const createDm = checkCommon(entry, issues);
    checkKeysForType(entry, issues);
    if (issues.errors.length !== before) return;
    const complete = entry as CompleteEntry;
    const common: CommonFields = {
      index,
      id: Number(complete.raw.id),
      mmioAddr: complete.raw.mmio_addr,
      dataPlane: 'virtio',
      createDm,
    };
    const device =
      complete.raw.data_plane === 'vhost_user'
        ? normalizeVhostUser(complete.raw, { index, id: common.id, mmioAddr: common.mmioAddr, createDm }, issues)
        : complete.raw.data_plane === 'vhost'
          ? normalizeKernelVhost(complete.raw, { index, id: common.id, mmioAddr: common.mmioAddr, createDm }, issues, () => normalizeNet(complete, common, issues))
          : NORMALIZERS[complete.raw.type as ServedDeviceType](complete, common, issues);
    if (device !== undefined) devices.push(device);
  });
  checkConflicts(parsed, issues);
  const sockets = new Map<string, number>();
  const cids = new Map<bigint, number>();
  for (const d of devices) {
    if (d.dataPlane === 'vhost' && d.type === 'vsock') {
      const prev = cids.get(d.guestCid);
      if (prev !== undefined) issues.error(['devices', d.index, 'guest_cid'], `CID ${d.guestCid} is already used by devices[${prev}]; each frontend needs its own CID`);
      else cids.set(d.guestCid, d.index);
    }
    if (d.dataPlane !== 'vhost_user') continue;
    const prev = sockets.get(d.socket);
    if (prev !== undefined) issues.error(['devices', d.index, 'socket_path'], `the vhost-user socket ${d.socket} is already used by devices[${prev}]; each backend serves one device`);
    else sockets.set(d.socket, d.index);
  }

  if (issues.errors.length > 0) fail(options.source, issues);
  return {
    config: {
      source: options.source,
      log: { level: root.log?.level, format: root.log?.format },
      shutdownTimeoutMs,
      devices,
    },
    warnings: issues.warnings,
  };
}
