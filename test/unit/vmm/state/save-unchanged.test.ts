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
import { fnv1a } from '../../../../lib/vmm/state/state-image.js';

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

  it('writes the bytes of JSON.stringify({ identity, transport }), which a reader checks with FNV-1a', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-save-'));
    dirs.push(dir);
    const file = DeviceStateFile.open(dir, identity);
    const transport = { queueSel: 1, queues: [{ size: 256, ready: true, desc: '0x1000' }], offered: '130000000' } as unknown as TransportState;
    expect(file.load().kind).toBe('none');
    file.save({ transport });
    const read = file.image.read();
    expect(read.kind).toBe('ok');
    const payload = read.kind === 'ok' ? new TextDecoder().decode(read.payload) : '';
    expect(payload).toBe(JSON.stringify({ identity, transport }));
    expect(file.load()).toEqual({ kind: 'found', state: { transport } });
    // The published FNV-1a 32-bit vectors: the checksum of every image written before stays valid.
    const enc = (t: string) => new TextEncoder().encode(t);
    expect([fnv1a(enc('')), fnv1a(enc('a')), fnv1a(enc('foobar'))]).toEqual([0x811c9dc5, 0xe40c292c, 0xbf9cf968]);
    file.close();
  });
});
