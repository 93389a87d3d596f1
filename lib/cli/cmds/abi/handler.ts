// `baoctl abi`: the ioctl numbers and struct layouts of every supported revision as the addon's
// C compiler computes them, side by side with lib/uapi's, and whether they agree. Exit 1 if not.

import { loadAddon, type NativeAddon, type NativeRevisionAbi } from '../../../native.js';
import { ABI, REVISIONS, hex32, type IoctlName, type Revision, type RevisionAbi, type StructName } from '../../../uapi/index.js';
import { writeJson, type Output } from '../../io.js';
import type { AbiArgs } from './options.js';

export interface AbiIo {
  readonly out?: Output;
  readonly addon?: () => Pick<NativeAddon, 'abi'>;
}

interface IoctlRow {
  readonly name: string;
  readonly value: string;
  readonly typescript: string | null;
  readonly agrees: boolean;
}

interface StructRow {
  readonly name: string;
  readonly size: number;
  readonly offsets: Readonly<Record<string, number>>;
  readonly agrees: boolean;
}

export interface AbiReport {
  readonly agrees: boolean;
  readonly revisions: Record<Revision, { ioctlType: string; ioctls: IoctlRow[]; structs: StructRow[] }>;
}

function sameRecord(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>> | undefined): boolean {
  if (b === undefined) return false;
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/** Compare one revision of the addon's table with lib/uapi's. */
export function compareRevision(native: NativeRevisionAbi, ts: RevisionAbi) {
  const ioctls: IoctlRow[] = Object.entries(native.ioctls).map(([name, value]) => {
    const t = ts.ioctls[name as IoctlName];
    return { name, value: hex32(value), typescript: t === undefined ? null : hex32(t), agrees: t === value };
  });
  const structs: StructRow[] = Object.entries(native.structs).map(([name, layout]) => {
    const t = ts.structs[name as StructName];
    return {
      name,
      size: layout.size,
      offsets: layout.offsets,
      agrees: t !== undefined && t.size === layout.size && sameRecord(layout.offsets, t.offsets),
    };
  });
  const agrees =
    native.ioctlType === ts.ioctlType &&
    Object.keys(native.ioctls).length === Object.keys(ts.ioctls).length &&
    Object.keys(native.structs).length === Object.keys(ts.structs).length &&
    ioctls.every((r) => r.agrees) &&
    structs.every((r) => r.agrees);
  return { ioctlType: `0x${native.ioctlType.toString(16).toUpperCase()}`, ioctls, structs, agrees };
}

export function abiReport(native: Record<Revision, NativeRevisionAbi>): AbiReport {
  let agrees = true;
  const revisions = {} as AbiReport['revisions'];
  for (const rev of REVISIONS) {
    const { agrees: ok, ...rest } = compareRevision(native[rev], ABI[rev]);
    agrees &&= ok;
    revisions[rev] = rest;
  }
  return { agrees, revisions };
}

const TITLES: Record<Revision, string> = {
  primary: 'primary (OOT / v1 / v2: /dev/bao-io-dispatcher, what bao-virtio-dm speaks)',
  revA: 'revA (one /dev/bao-dm<N> node per device model)',
  revB: 'revB (/dev/bao control node, CREATE_DM)',
};

/** Returns the exit code. */
export function runAbi(args: AbiArgs, io: AbiIo = {}): number {
  const out = io.out ?? process.stdout;
  const report = abiReport((io.addon ?? loadAddon)().abi());
  if (args.json) {
    writeJson(out, report);
  } else {
    for (const rev of REVISIONS) {
      const r = report.revisions[rev];
      out.write(`${TITLES[rev]}, ioctl type ${r.ioctlType}\n`);
      for (const row of r.ioctls) {
        out.write(`  ${row.name.padEnd(32)} ${row.value}${row.agrees ? '' : `  (TypeScript: ${row.typescript ?? 'missing'})`}\n`);
      }
      for (const s of r.structs) {
        const fields = Object.entries(s.offsets)
          .map(([f, o]) => `${f}@${o}`)
          .join(' ');
        out.write(`  struct ${s.name.padEnd(25)} ${String(s.size).padStart(2)} bytes: ${fields}${s.agrees ? '' : '  (TypeScript disagrees)'}\n`);
      }
      out.write('\n');
    }
    out.write(report.agrees ? 'C++ (addon) and TypeScript (lib/uapi) agree on every value.\n' : 'MISMATCH between the addon and lib/uapi: see the rows marked above.\n');
  }
  return report.agrees ? 0 : 1;
}
