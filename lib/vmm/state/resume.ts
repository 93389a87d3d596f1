// Taking a device model over from a process that died (or stopped): the transport resumes from
// the saved state, and the requests the old process had taken and not completed are handed back
// to be served as if they had just arrived. Lives apart from device-model-server.ts, which only
// calls it at start and uses the journal at each COMPLETE.

import type { IoRequest } from '../../dispatcher/request.js';
import { StateMismatchError } from '../../virtio/device-state.js';
import type { Logger } from '../../virtio/logger.js';
import type { MmioTransport } from '../../virtio/mmio-transport.js';
import type { DeviceStateFile, LoadOutcome } from './device-state-file.js';
import type { RequestJournal } from './request-journal.js';

export interface StateFileServing {
  readonly file: DeviceStateFile;
  readonly journal: RequestJournal;
  /** Requests the previous process took and never completed, recorded again: serve them. */
  readonly leftovers: IoRequest[];
  /** Test builds only (NODE_BAO_TEST_KILL_AFTER_TAKE): kills the process after a request was taken. */
  readonly testKill?: () => void;
}

export interface ResumeOptions {
  readonly file: DeviceStateFile;
  readonly loaded: LoadOutcome;
  readonly transport: MmioTransport;
  readonly log: Logger;
}

export function resumeFromStateFile(options: ResumeOptions): StateFileServing {
  const { file, loaded, transport, log } = options;
  if (loaded.kind === 'discarded') {
    log.warn({ path: file.path, reason: loaded.reason }, `saved device state discarded (${loaded.reason}); the device starts from reset`);
  } else if (loaded.kind === 'found') {
    try {
      const outcome = transport.resume(loaded.state.transport);
      log.info(
        { path: file.path, outcome, status: transport.status, sinceStartMs: Math.round(process.uptime() * 1000) },
        outcome === 'active' ? 'device resumed from saved state: the driver keeps it' : 'device registers restored from saved state (the driver was setting it up)',
      );
    } catch (err) {
      const reason = err instanceof StateMismatchError ? err.message : `cannot resume: ${String(err)}`;
      log.warn({ path: file.path, reason, ...(err instanceof StateMismatchError ? err.detail : {}) }, `saved device state discarded (${reason}); the device starts from reset`);
      file.discard(reason);
    }
  }
  const { taken, uncertain } = file.journal.takeLeftovers();
  for (const req of taken) file.journal.record(req);
  if (taken.length > 0 || uncertain > 0) {
    log.warn(
      { completing: taken.length, uncertain },
      `the previous process left ${taken.length} trapped access(es) uncompleted: completing them now` +
        (uncertain > 0 ? `; ${uncertain} it was killed while completing or recording are not repeated` : ''),
    );
  }
  const testKill = testKillHook();
  return { file, journal: file.journal, leftovers: taken, ...(testKill === undefined ? {} : { testKill }) };
}

/**
 * NODE_BAO_TEST_KILL_AFTER_TAKE=<probability>: for crash tests, the process kills itself with
 * SIGKILL when requests were handed over and before any is completed, so that a kill lands
 * between ATTACH and COMPLETE on purpose. Off unless set.
 */
function testKillHook(): (() => void) | undefined {
  const raw = process.env['NODE_BAO_TEST_KILL_AFTER_TAKE'];
  if (raw === undefined || raw === '') return undefined;
  const p = Number(raw);
  if (!(p > 0 && p <= 1)) return undefined;
  return () => {
    if (Math.random() < p) process.kill(process.pid, 'SIGKILL');
  };
}
