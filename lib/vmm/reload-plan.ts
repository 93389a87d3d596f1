// What a config reload changes: entries are matched by device-model id (unique in a valid
// config). An entry equal in every key (its position aside) keeps its device running; one that
// differs is stopped and started anew; ids only in the old config stop, only in the new start.

import type { DeviceConfig } from './config/types.js';

export interface ReloadPlan {
  /** Old entries whose device keeps running. */
  readonly keep: readonly DeviceConfig[];
  /** Old entries whose device stops (removed or changed). */
  readonly stop: readonly DeviceConfig[];
  /** New entries whose device starts (added or changed), in config order. */
  readonly start: readonly DeviceConfig[];
}

function canonical(entry: DeviceConfig): string {
  const { index: _index, ...rest } = entry as DeviceConfig & { index: number };
  return JSON.stringify(rest, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

export function planReload(current: readonly DeviceConfig[], next: readonly DeviceConfig[]): ReloadPlan {
  const byId = new Map(next.map((e) => [e.id, e]));
  const keep: DeviceConfig[] = [];
  const stop: DeviceConfig[] = [];
  const keptIds = new Set<number>();
  for (const old of current) {
    const incoming = byId.get(old.id);
    if (incoming !== undefined && canonical(incoming) === canonical(old)) {
      keep.push(old);
      keptIds.add(old.id);
    } else {
      stop.push(old);
    }
  }
  return { keep, stop, start: next.filter((e) => !keptIds.has(e.id)) };
}
