// Finding the Bao device nodes and telling which ABI revision they speak, by name only
// (spec §2, §8): /dev/bao-io-dispatcher -> primary (OOT/v1/v2); /dev/bao-dm<N> -> revA;
// /dev/bao -> revB. The dev root is injectable so tests can use a directory of plain files.

import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Revision } from '../uapi/revisions.js';
import { BaoNotPresentError } from './errors.js';

export const DISPATCHER_NODE = 'bao-io-dispatcher';
export const REVB_CONTROL_NODE = 'bao';
const DM_NODE = /^bao-dm(\d+)$/;
const IPC_NODE = /^baoipc(\d+)$/;

export interface NumberedNode {
  readonly id: number;
  readonly path: string;
}

export interface BaoNodes {
  readonly devRoot: string;
  /** primary: /dev/bao-io-dispatcher */
  readonly dispatcher: string | undefined;
  /** revB: /dev/bao */
  readonly control: string | undefined;
  /** revA: /dev/bao-dm<N>, sorted by id */
  readonly deviceModels: readonly NumberedNode[];
  /** IPC shared memory: /dev/baoipc<N>, sorted by id */
  readonly ipc: readonly NumberedNode[];
}

function numbered(names: readonly string[], re: RegExp, devRoot: string): NumberedNode[] {
  const out: NumberedNode[] = [];
  for (const name of names) {
    const m = re.exec(name);
    if (m?.[1] !== undefined) out.push({ id: Number(m[1]), path: path.join(devRoot, name) });
  }
  return out.sort((a, b) => a.id - b.id);
}

/** Every Bao node present under `devRoot` (an absent dev root reads as "none"). */
export function scanBaoNodes(devRoot = '/dev'): BaoNodes {
  let names: string[];
  try {
    names = fs.readdirSync(devRoot);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') names = [];
    else throw e;
  }
  const has = (n: string): string | undefined => (names.includes(n) ? path.join(devRoot, n) : undefined);
  return {
    devRoot,
    dispatcher: has(DISPATCHER_NODE),
    control: has(REVB_CONTROL_NODE),
    deviceModels: numbered(names, DM_NODE, devRoot),
    ipc: numbered(names, IPC_NODE, devRoot),
  };
}

/** The revision the nodes speak, or undefined when there is no I/O dispatcher node at all. */
export function revisionOf(nodes: BaoNodes): Revision | undefined {
  // A kernel carries one revision; if several names show up, the primary ABI wins (it is what
  // bao-virtio-dm and the published patches speak), then revB (its control node), then revA.
  if (nodes.dispatcher !== undefined) return 'primary';
  if (nodes.control !== undefined) return 'revB';
  if (nodes.deviceModels.length > 0) return 'revA';
  return undefined;
}

export interface DetectedRevision {
  readonly revision: Revision;
  readonly nodes: BaoNodes;
}

/** The revision spoken under `devRoot`; throws BaoNotPresentError (code BAO_NOT_PRESENT) without one. */
export function detectRevision(devRoot = '/dev'): DetectedRevision {
  const nodes = scanBaoNodes(devRoot);
  const revision = revisionOf(nodes);
  if (revision === undefined) {
    throw new BaoNotPresentError(devRoot, [
      path.join(devRoot, DISPATCHER_NODE),
      path.join(devRoot, 'bao-dm<N>'),
      path.join(devRoot, REVB_CONTROL_NODE),
    ]);
  }
  return { revision, nodes };
}

/**
 * Which build of the primary-ABI driver is loaded, from sysfs: v2 registers a misc device,
 * OOT and v1 a class of their own. It matters because closing a DM fd is a use-after-free on
 * OOT and destroys the DM on v1, but is harmless on v2 (spec §3.5).
 */
export type DispatcherFlavour = 'v2' | 'oot-or-v1' | 'unknown';

export function dispatcherFlavour(sysRoot = '/sys'): DispatcherFlavour {
  if (fs.existsSync(path.join(sysRoot, 'class/misc', DISPATCHER_NODE))) return 'v2';
  if (fs.existsSync(path.join(sysRoot, 'class', DISPATCHER_NODE))) return 'oot-or-v1';
  return 'unknown';
}
