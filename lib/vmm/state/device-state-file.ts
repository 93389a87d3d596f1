// DeviceStateFile: the file-backed DeviceStateStore of one device model (lib/virtio's
// device-state.ts defines what is saved; state-image.ts how it is laid out). One file per device
// model in the state directory (`<dir>/dm<id>.state`), memory-mapped, so that every save is a
// few stores into memory a process started after this one finds as they were, whatever killed
// this one. Also holds the request journal (request-journal.ts).
//
// The payload is JSON: a few hundred bytes, written at register writes (device setup, a reset),
// not on the data path. It is read back as untrusted: the identity must match this device model
// (type, window, DM id) and the transport checks the rest (checkTransportState).

import * as fs from 'node:fs';
import * as path from 'node:path';

import { Mapping } from '../../dispatcher/mapping.js';
import { loadAddon, type NativeAddon } from '../../native.js';
import type { DeviceStateStore, SavedDeviceState } from '../../virtio/device-state.js';
import { RequestJournal } from './request-journal.js';
import { MAX_PAYLOAD, STATE_FILE_BYTES, StateImage } from './state-image.js';

const encoder = new TextEncoder();
/** Where save() encodes: one per thread (save is synchronous), not one per device model. */
const scratch = new Uint8Array(MAX_PAYLOAD);

/** Where state files live unless the config or the command line says otherwise. */
export const DEFAULT_STATE_DIR = '/run/node-bao';

export interface StateIdentity {
  readonly dmId: number;
  /** The frontend window, hex. */
  readonly mmioAddr: string;
  readonly type: string;
}

export type LoadOutcome =
  | { readonly kind: 'none' }
  | { readonly kind: 'found'; readonly state: SavedDeviceState }
  | { readonly kind: 'discarded'; readonly reason: string };

export class DeviceStateFile implements DeviceStateStore {
  readonly image: StateImage;
  readonly journal: RequestJournal;
  private closed = false;
  /** The JSON of the image last written by save(); undefined when the file may hold another. */
  private lastSaved: string | undefined;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly mapping: Mapping,
    private readonly identity: StateIdentity,
  ) {
    this.image = new StateImage(mapping.bytes);
    this.journal = new RequestJournal(mapping.bytes);
  }

  /**
   * Opens (creating it and the directory if needed) and maps the state file of one device model,
   * locked so that a second daemon serving the same device model cannot share it.
   */
  static open(dir: string, identity: StateIdentity, addon: NativeAddon = loadAddon()): DeviceStateFile {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, `dm${identity.dmId}.state`);
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    try {
      addon.lockFile(fd, true);
      if (fs.fstatSync(fd).size !== STATE_FILE_BYTES) fs.ftruncateSync(fd, STATE_FILE_BYTES);
      const mapping = Mapping.map(fd, STATE_FILE_BYTES, { addon });
      return new DeviceStateFile(file, fd, mapping, identity);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** The saved state if it is whole and for this device model; a file that is not is formatted afresh. */
  load(): LoadOutcome {
    const read = this.image.read();
    if (read.kind === 'empty') {
      if (!this.image.formatted) this.image.format();
      this.lastSaved = undefined;
      return { kind: 'none' };
    }
    if (read.kind === 'corrupt') return this.discard(read.reason);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(read.payload));
    } catch {
      return this.discard('the saved state is not valid JSON');
    }
    const p = parsed as { identity?: Partial<StateIdentity>; transport?: unknown } | null;
    const id = p?.identity;
    if (id?.dmId !== this.identity.dmId || id.mmioAddr !== this.identity.mmioAddr || id.type !== this.identity.type) {
      return this.discard(`it was saved for another device model (${JSON.stringify(id ?? null)}, now ${JSON.stringify(this.identity)})`);
    }
    return { kind: 'found', state: { transport: p?.transport as SavedDeviceState['transport'] } };
  }

  /** Drops whatever the file holds (the device starts from reset); the journal is kept. */
  discard(reason: string): { kind: 'discarded'; reason: string } {
    const leftovers = this.journal.takeLeftovers();
    this.image.format();
    this.lastSaved = undefined;
    for (const req of leftovers.taken) this.journal.record(req);
    return { kind: 'discarded', reason };
  }

  /**
   * Saves `state` as the newest image. The transport saves after every register write, so this is
   * on the path of each trapped write that goes to JS: an image equal to the one last saved is
   * not written again (the file holds it already), and encoding allocates nothing.
   */
  save(state: SavedDeviceState): void {
    if (this.closed) return;
    const json = JSON.stringify({ identity: this.identity, transport: state.transport });
    if (json === this.lastSaved) return;
    const { read, written } = encoder.encodeInto(json, scratch);
    if (read !== json.length) throw new RangeError(`state of more than ${MAX_PAYLOAD} bytes exceeds the slot`);
    this.image.write(scratch.subarray(0, written));
    this.lastSaved = json;
  }

  /** Unmaps and closes (the file stays, for the next process). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.mapping.unmap();
    fs.closeSync(this.fd);
  }
}
