// DeviceStateFile.save is on the path of every trapped register write that goes to JS: an image
// equal to the last one saved is not written again, and after the file is formatted afresh
// (discard) the next save writes again. What a reader (the next process) loads is always the
// newest state either way.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import type { TransportState } from '../../../../lib/virtio/device-state.js';
import { DeviceStateFile } from '../../../../lib/vmm/state/device-state-file.js';

const identity = { dmId: 3, mmioAddr: 'a000000', type: 'rng' };
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function state(queueSel: number): { transport: TransportState } {
  return { transport: { queueSel } as unknown as TransportState };
}

/** Sequence number of the newest slot (state-image.ts layout: two slots at 8192, seq first). */
function newestSeq(file: DeviceStateFile): number {
  const v = new DataView(file.image.bytes.buffer, file.image.bytes.byteOffset);
  return Math.max(v.getUint32(8192, true), v.getUint32(8192 + 8192, true));
}

describe('DeviceStateFile.save', () => {
  it('writes a changed image, skips an unchanged one, and writes again after a discard', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-save-'));
    dirs.push(dir);
    const file = DeviceStateFile.open(dir, identity);
    expect(file.load().kind).toBe('none');
    file.save(state(0));
    const first = newestSeq(file);
    file.save(state(0));
    expect(newestSeq(file)).toBe(first);
    file.save(state(1));
    expect(newestSeq(file)).toBe(first + 1);
    file.save(state(1));
    expect(newestSeq(file)).toBe(first + 1);
    file.discard('test');
    file.save(state(1));
    expect(newestSeq(file)).toBeGreaterThan(0);
    file.close();
    const again = DeviceStateFile.open(dir, identity);
    const loaded = again.load();
    expect(loaded.kind).toBe('found');
    expect(loaded.kind === 'found' && (loaded.state.transport as unknown as { queueSel: number }).queueSel).toBe(1);
    again.close();
  });
});
