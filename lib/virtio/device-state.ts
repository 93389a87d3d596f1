// What a transport keeps of itself so that another process can take the device over while its
// driver stays bound (a daemon restart or crash). This module only defines the state and the
// store interface; where the state lives (a memory-mapped file) is the host's business
// (lib/vmm/state), so lib/virtio stays free of the addon.
//
// Queue positions are not part of the saved state on purpose: the used index lives in the ring,
// in memory both sides share, and it is the one position the driver agrees with. A device that
// declares `resumesFromUsed` publishes the chains it takes in the order it took them (within the
// turn that took them, or held back by its queue workers' inOrder), so after a restart the chains
// it had taken and not published are exactly the avail entries from the used index on: they are
// taken again (redone). Everything read back
// (this state and the rings) is untrusted and checked as at first activation.

export const TRANSPORT_STATE_VERSION = 1;

export interface SavedQueueRegisters {
  readonly size: number;
  readonly ready: boolean;
  /** Guest-physical addresses (numbers: far below 2^53). */
  readonly desc: number;
  readonly driver: number;
  readonly device: number;
}

export interface TransportState {
  readonly version: number;
  /** What the state was saved for: a mismatch with the device now discards it. */
  readonly deviceId: number;
  /** The transport's offer (device features plus transport features), hex. */
  readonly offered: string;
  readonly queueMaxSizes: readonly number[];
  readonly status: number;
  /** The driver's accepted features, hex. */
  readonly driverFeatures: string;
  readonly generation: number;
  readonly interruptStatus: number;
  readonly queueSel: number;
  readonly deviceFeaturesSel: number;
  readonly driverFeaturesSel: number;
  readonly queues: readonly SavedQueueRegisters[];
}

/** What a transport saves and restores; `device` is the device's own bytes, if it keeps any. */
export interface SavedDeviceState {
  readonly transport: TransportState;
}

/** Where a transport's state is kept. save() must leave a consistent image whenever the process dies. */
export interface DeviceStateStore {
  save(state: SavedDeviceState): void;
}

/** Why a saved state was not resumed (the device then starts from reset). */
export class StateMismatchError extends Error {
  readonly code = 'STATE_MISMATCH';
  constructor(
    message: string,
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'StateMismatchError';
  }
}

function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
}

function isAddress(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isHex(v: unknown): v is string {
  return typeof v === 'string' && /^[0-9a-f]{1,16}$/.test(v);
}

/**
 * Checks the shape and ranges of a parsed state (hostile input: any JSON value) and that it was
 * saved for this device; throws StateMismatchError naming the first problem.
 */
export function checkTransportState(
  value: unknown,
  expect: { readonly deviceId: number; readonly offered: bigint; readonly queueMaxSizes: readonly number[] },
): TransportState {
  const bad = (what: string, detail: Record<string, unknown> = {}): never => {
    throw new StateMismatchError(what, detail);
  };
  if (typeof value !== 'object' || value === null) return bad('saved state is not an object');
  const s = value as Record<string, unknown>;
  if (s['version'] !== TRANSPORT_STATE_VERSION) bad('saved state has another format version', { version: s['version'] });
  if (s['deviceId'] !== expect.deviceId) bad('saved state is for another device type', { saved: s['deviceId'], now: expect.deviceId });
  if (!isHex(s['offered']) || BigInt(`0x${s['offered']}`) !== expect.offered) {
    bad('saved state was negotiated against other device features', { saved: s['offered'], now: expect.offered.toString(16) });
  }
  const maxSizes = s['queueMaxSizes'];
  if (!Array.isArray(maxSizes) || maxSizes.length !== expect.queueMaxSizes.length || maxSizes.some((m, i) => m !== expect.queueMaxSizes[i])) {
    bad('saved state has other queues', { saved: maxSizes, now: expect.queueMaxSizes });
  }
  for (const key of ['status', 'generation', 'interruptStatus', 'queueSel', 'deviceFeaturesSel', 'driverFeaturesSel'] as const) {
    if (!isU32(s[key])) bad(`saved ${key} is not a 32-bit value`, { [key]: s[key] });
  }
  if ((s['status'] as number) > 0xff) bad('saved status is not a status byte', { status: s['status'] });
  if (!isHex(s['driverFeatures'])) bad('saved driver features are malformed');
  const accepted = BigInt(`0x${s['driverFeatures'] as string}`);
  if ((accepted & ~expect.offered) !== 0n) bad('saved driver features are not a subset of the offer', { accepted: accepted.toString(16) });
  const queues = s['queues'];
  if (!Array.isArray(queues) || queues.length !== expect.queueMaxSizes.length) bad('saved queue registers do not match the queues');
  const checked = (queues as unknown[]).map((q, i) => {
    if (typeof q !== 'object' || q === null) return bad(`saved queue ${i} is not an object`);
    const r = q as Record<string, unknown>;
    const max = expect.queueMaxSizes[i] as number;
    const size = r['size'];
    if (!isU32(size) || size < 1 || size > max || (size & (size - 1)) !== 0) bad(`saved queue ${i} size is invalid`, { size, max });
    if (typeof r['ready'] !== 'boolean') bad(`saved queue ${i} ready flag is not a boolean`);
    for (const key of ['desc', 'driver', 'device'] as const) {
      if (!isAddress(r[key])) bad(`saved queue ${i} ${key} address is invalid`, { [key]: r[key] });
    }
    return { size: size as number, ready: r['ready'] as boolean, desc: r['desc'] as number, driver: r['driver'] as number, device: r['device'] as number };
  });
  return { ...(s as unknown as TransportState), queues: checked };
}
