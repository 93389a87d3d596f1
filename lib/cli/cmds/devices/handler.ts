// `baoctl devices`: which Bao nodes this system has, which ABI revision they speak, and the info
// of every device model found (spec §2, §3.4). Without Bao it says so and exits 0. A node that is
// present but does not answer (ENOTTY, permissions) is reported with what to do, exit 1.

import { BaoDriver, DispatcherError, revisionOf, scanBaoNodes, type DeviceModelInfo } from '../../../dispatcher/index.js';
import { loadAddon, type NativeAddon } from '../../../native.js';
import type { Revision } from '../../../uapi/revisions.js';
import { hex, writeJson, type Output } from '../../io.js';
import type { DevicesArgs } from './options.js';

export interface DevicesIo {
  readonly out?: Output;
  readonly sysRoot?: string;
  readonly addon?: () => NativeAddon;
}

export interface DevicesReport {
  readonly devRoot: string;
  readonly revision: Revision | null;
  /** Every Bao node found (dispatcher, control, bao-dm<N>, baoipc<N>). */
  readonly nodes: string[];
  readonly deviceModels: DeviceModelInfo[];
  readonly ipc: { id: number; path: string }[];
  readonly notes: string[];
  readonly errors: { code: string; message: string }[];
}

export function devicesReport(args: Pick<DevicesArgs, 'devRoot' | 'probe'>, io: DevicesIo = {}): DevicesReport {
  const nodes = scanBaoNodes(args.devRoot);
  const revision = revisionOf(nodes) ?? null;
  const report: DevicesReport = {
    devRoot: args.devRoot,
    revision,
    nodes: [
      ...(nodes.dispatcher === undefined ? [] : [nodes.dispatcher]),
      ...(nodes.control === undefined ? [] : [nodes.control]),
      ...nodes.deviceModels.map((n) => n.path),
      ...nodes.ipc.map((n) => n.path),
    ],
    deviceModels: [],
    ipc: nodes.ipc.map((n) => ({ id: n.id, path: n.path })),
    notes: [],
    errors: [],
  };
  if (revision === null) return report;
  let driver: BaoDriver | undefined;
  try {
    driver = new BaoDriver(revision, nodes, {
      addon: (io.addon ?? loadAddon)(),
      ...(io.sysRoot === undefined ? {} : { sysRoot: io.sysRoot }),
    });
    if (revision === 'revB') {
      report.notes.push('revB creates device models on demand (CREATE_DM from the VMM config): none exist before the VMM runs');
    } else if (revision === 'primary' && driver.flavour === 'oot-or-v1' && !args.probe) {
      report.notes.push(
        'the dispatcher is the out-of-tree or v1 driver, where querying a device model opens and closes its fd, which can crash ' +
          'the backend kernel if a daemon holds it: device models are not listed here (pass --probe to query them anyway, with no daemon running)',
      );
    } else {
      report.deviceModels.push(...driver.probeDeviceModels());
    }
  } catch (e) {
    const raw = e instanceof DispatcherError ? e.code : (e as { code?: unknown } | null)?.code;
    const code = typeof raw === 'string' ? raw : 'ERROR';
    report.errors.push({ code, message: e instanceof Error ? e.message : String(e) });
  } finally {
    void driver?.close();
  }
  return report;
}

/** Returns the exit code. */
export function runDevices(args: DevicesArgs, io: DevicesIo = {}): number {
  const out = io.out ?? process.stdout;
  const report = devicesReport(args, io);
  if (args.json) {
    writeJson(out, report);
    return report.errors.length > 0 ? 1 : 0;
  }
  if (report.nodes.length === 0) {
    out.write(
      `No Bao device nodes under ${report.devRoot} (looked for bao-io-dispatcher, bao-dm<N>, bao, baoipc<N>): ` +
        'this is not a Bao backend VM, or the Bao drivers are not loaded.\n',
    );
    return 0;
  }
  out.write(`Bao device nodes under ${report.devRoot}: ${report.nodes.join(', ')}\n`);
  out.write(report.revision === null ? 'No I/O dispatcher node (IPC only).\n' : `I/O dispatcher ABI revision: ${report.revision}\n`);
  for (const dm of report.deviceModels) {
    out.write(
      `  device model ${dm.id}: shared memory ${hex(dm.shmemAddr)} size ${hex(dm.shmemSize)} (${dm.shmemSize} bytes), irq ${dm.irq}\n`,
    );
  }
  if (report.revision !== null && report.deviceModels.length === 0 && report.errors.length === 0 && report.notes.length === 0) {
    out.write('  no device models found\n');
  }
  for (const ipc of report.ipc) out.write(`  IPC shared memory ${ipc.id}: ${ipc.path}\n`);
  for (const n of report.notes) out.write(`note: ${n}\n`);
  for (const e of report.errors) out.write(`error (${e.code}): ${e.message}\n`);
  return report.errors.length > 0 ? 1 : 0;
}
