// One human line per trace event (`baoctl trace` without --json). The daemon sends JSON lines
// (hub.ts TraceEvent); this turns them into what a user reads while a frontend's driver comes up.

import type { TraceEvent } from './hub.js';

function clock(t: number): string {
  const d = new Date(t);
  const us = Math.min(999_999, Math.round((t % 1000) * 1000))
    .toString()
    .padStart(6, '0');
  return `${d.toISOString().slice(11, 19)}.${us}`;
}

function hex32(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, '0')}`;
}

function duration(us: number): string {
  return us >= 10_000 ? `${(us / 1000).toFixed(1)}ms` : `${us}us`;
}

/** Device type names by DM id, learnt from `hello` and `device-added` lines. */
export type TypeNames = Map<number, string>;

/** The line for one event (without "\n"); `types` is updated from hello/device-added. */
export function formatTraceEvent(e: TraceEvent, types: TypeNames): string {
  if (e.kind === 'hello') {
    for (const d of e.devices) types.set(d.dm, d.type);
    const list = e.devices.map((d) => `dm ${d.dm} ${d.type} at ${d.mmioAddr}${d.external ? ' (data plane outside this process: register accesses only)' : ''}`);
    const which = e.filter.dm === undefined ? 'every device model' : `device model ${e.filter.dm}`;
    const hot = e.devices.filter((d) => d.hotCells === 'paused');
    const note = hot.length > 0 ? `; hot register cells paused while tracing (${hot.map((d) => `dm ${d.dm}: ${d.hotAccessesBefore} accesses answered natively before`).join(', ')})` : '';
    return `tracing ${which}: ${list.length === 0 ? 'none serving yet' : list.join(', ')}${note}`;
  }
  if (e.kind === 'end' || e.kind === 'dropped') return `${clock(e.t)} trace ${e.kind === 'end' ? 'ended' : 'DROPPED'}: ${e.reason}`;
  if (e.kind === 'device-added' || e.kind === 'device-removed') {
    if (e.kind === 'device-added') types.set(e.dm, e.type);
    return `${clock(e.t)} dm${e.dm} ${e.type.padEnd(7)} ${e.kind === 'device-added' ? 'serving (device model opened)' : 'stopped (device model closed)'}`;
  }
  const head = `${clock(e.t)} dm${e.dm} ${(types.get(e.dm) ?? '?').padEnd(7)}`;
  switch (e.kind) {
    case 'access': {
      const op = e.op === 'read' ? 'R' : e.op === 'write' ? 'W' : '?';
      const width = e.width === 4 ? '' : `/${e.width}`;
      return `${head} ${op}${width.padEnd(2)} ${e.register.padEnd(17)} ${hex32(e.value)}  ${e.decoded}${e.decoded === '' ? '' : '  '}(${duration(e.us)})`;
    }
    case 'kick':
      return `${head} kick queue ${e.queue}${e.delivered ? '' : ' (dropped: the device is not live)'}`;
    case 'used':
      return `${head} used queue ${e.queue} idx ${e.usedIdx}${e.entries === undefined ? '' : ` (+${e.entries})`}, ${e.interrupt ? 'interrupt' : 'no interrupt (suppressed by the driver)'}${e.sinceKickUs === undefined ? '' : `, ${duration(e.sinceKickUs)} after the kick`}`;
    case 'interrupt':
      return `${head} irq  InterruptStatus ${e.decoded}`;
    case 'fault': {
      const detail = Object.entries(e.detail)
        .map(([k, v]) => `${k}=${typeof v === 'number' && k === 'offset' ? `0x${v.toString(16)}` : String(v)}`)
        .join(' ');
      return `${head} FAULT ${e.code}${detail === '' ? '' : ` ${detail}`}`;
    }
    case 'needs-reset':
      return `${head} DEVICE_NEEDS_RESET: ${e.reason}`;
  }
}
