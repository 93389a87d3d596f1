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
  CONSOLE_BACKEND_KINDS,
  type ConsoleBackendConfig,
  type CreateDmParams,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  type DaemonConfig,
  type DeviceConfig,
  MMIO_WINDOW_SIZE,
} from './types.js';

export type FieldPath = readonly (string | number)[];

export interface ValidateOptions {
  /** File name for messages. */
  readonly source?: string;
  /** Maps a field path to its position in the file (given by the YAML loader). */
  readonly locate?: (path: FieldPath) => SourcePosition | undefined;
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
  block: ['file_path', 'read_only', 'root_device', 'advertise_flush'],
  net: ['tap_name', 'mac_addr'],
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

  constructor(private readonly locate: ValidateOptions['locate']) {}

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

/** One normalizer per served type: the record type makes adding a served type a compile error until handled. */
const NORMALIZERS: { readonly [T in ServedDeviceType]: Normalizer } = {
  console: (entry, common, issues) => {
    const backend = normalizeConsoleBackend(entry, issues);
    return backend === undefined ? undefined : { ...common, type: 'console', backend };
  },
  rng: (_entry, common) => ({ ...common, type: 'rng' }),
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
      issues.error(at('shmem_addr'), `${hex(addr)} is not page aligned (4 KiB); the driver maps the region from its base (spec §3.5)`);
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
    issues.error(at('id'), `DM id ${raw.id} is out of range: the OOT/v1/v2 I/O dispatcher has 16 device models (0..15, spec §3.1); for revB's CREATE_DM also give shmem_addr, shmem_size and irq`);
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

function checkConflicts(entries: readonly ParsedEntry[], issues: IssueList): void {
  const byId = new Map<bigint, number>();
  const windows: { index: number; start: bigint }[] = [];
  const socketPaths = new Map<string, number>();
  const aliases = new Map<string, number>();
  let stdioAt: number | undefined;
  for (const { raw, index } of entries) {
    if (raw.id !== undefined) {
      const sameId = byId.get(raw.id);
      if (sameId !== undefined) {
        issues.error(['devices', index, 'id'], `DM id ${raw.id} is already used by devices[${sameId}]; each device needs its own device model (spec §3.10: one DM per virtio device)`);
      } else byId.set(raw.id, index);
    }

    const start = raw.mmio_addr;
    if (start !== undefined) {
      const other = windows.find((w) => start < w.start + MMIO_WINDOW_SIZE && w.start < start + MMIO_WINDOW_SIZE);
      if (other !== undefined) {
        issues.error(['devices', index, 'mmio_addr'], `the window ${hex(start)}..${hex(start + MMIO_WINDOW_SIZE - 1n)} overlaps devices[${other.index}]'s window at ${hex(other.start)} (each window is 0x200 bytes)`);
      } else windows.push({ index, start });
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
  const issues = new IssueList(options.locate);

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
    if (ms === 0n || ms > 600_000n) issues.error(['shutdown_timeout_ms'], 'must be between 1 and 600000 milliseconds');
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
          ? normalizeKernelVhost(complete.raw, { index, id: common.id, mmioAddr: common.mmioAddr, createDm }, issues)
          : NORMALIZERS[complete.raw.type as ServedDeviceType](complete, common, issues);
    if (device !== undefined) devices.push(device);
  });
  checkConflicts(parsed, issues);
  const sockets = new Map<string, number>();
  const cids = new Map<bigint, number>();
  for (const d of devices) {
    if (d.dataPlane === 'vhost') {
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
