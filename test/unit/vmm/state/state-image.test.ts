// The state file's format: whatever store a SIGKILL interrupts, the newest whole image (or the
// one before it) is read back, never a torn or scribbled one.

import { describe, expect, it } from 'vitest';

import { RequestJournal } from '../../../../lib/vmm/state/request-journal.js';
import { SLOT_BASE, SLOT_BYTES, STATE_FILE_BYTES, StateImage } from '../../../../lib/vmm/state/state-image.js';
import { encodeRequests } from '../../../../lib/dispatcher/request.js';

const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

function fresh(): { file: Uint8Array; image: StateImage } {
  const file = new Uint8Array(STATE_FILE_BYTES);
  const image = new StateImage(file);
  image.format();
  return { file, image };
}

const flip = (file: Uint8Array, at: number): void => {
  file[at] = (file[at] ?? 0) ^ 0x01;
};

/** A second process opening the same file. */
const reopen = (file: Uint8Array): StateImage => new StateImage(file);

describe('the state image', () => {
  it('reads back the last image written, from a new process', () => {
    const { file, image } = fresh();
    expect(image.read()).toEqual({ kind: 'empty' });
    image.write(bytes('one'));
    image.write(bytes('two'));
    image.write(bytes('three'));
    const read = reopen(file).read();
    expect(read.kind).toBe('ok');
    expect(read.kind === 'ok' && text(read.payload)).toBe('three');
  });

  it('a zeroed file is empty; foreign bytes are corrupt', () => {
    expect(new StateImage(new Uint8Array(STATE_FILE_BYTES)).read()).toEqual({ kind: 'empty' });
    const junk = new Uint8Array(STATE_FILE_BYTES).fill(0x5a);
    expect(new StateImage(junk).read().kind).toBe('corrupt');
  });

  it('a write cut short at any byte leaves the previous image readable', () => {
    const { file, image } = fresh();
    image.write(bytes('{"good":1}'));
    const before = file.slice();
    // Replay the next write store by store: record each byte the write changes, in order.
    const after = (() => {
      const copy = before.slice();
      const im = new StateImage(copy);
      im.read();
      im.write(bytes('{"newer":2222222}'));
      return copy;
    })();
    const changed: number[] = [];
    for (let i = 0; i < STATE_FILE_BYTES; i += 1) if (before[i] !== after[i]) changed.push(i);
    expect(changed.length).toBeGreaterThan(10);
    // Any prefix of the changed bytes (a kill in the middle of the write) reads as old or new.
    for (let cut = 0; cut <= changed.length; cut += 1) {
      const torn = before.slice();
      for (const i of changed.slice(0, cut)) torn[i] = after[i] as number;
      const read = reopen(torn).read();
      expect(read.kind, `cut at ${cut}`).toBe('ok');
      const got = read.kind === 'ok' ? text(read.payload) : '';
      expect(['{"good":1}', '{"newer":2222222}']).toContain(got);
    }
  });

  it('a slot scribbled over fails its checksum and the other one is used', () => {
    const { file, image } = fresh();
    image.write(bytes('older'));
    image.write(bytes('newer'));
    // 'newer' went to slot 1; flip one payload byte there.
    flip(file, SLOT_BASE + SLOT_BYTES + 16);
    const read = reopen(file).read();
    expect(read.kind === 'ok' && text(read.payload)).toBe('older');
    // Both slots bad: corrupt, with the reason.
    flip(file, SLOT_BASE + 16);
    const bad = reopen(file).read();
    expect(bad.kind).toBe('corrupt');
    expect(bad.kind === 'corrupt' && bad.reason).toMatch(/checksum/);
  });

  it('a hostile length is refused, not followed', () => {
    const { file, image } = fresh();
    image.write(bytes('x'));
    new DataView(file.buffer).setUint32(SLOT_BASE + 4, 0xffff_ffff, true);
    expect(reopen(file).read().kind).toBe('corrupt');
  });

  it('refuses a payload larger than a slot', () => {
    const { image } = fresh();
    expect(() => image.write(new Uint8Array(SLOT_BYTES))).toThrow(RangeError);
  });
});

describe('the request journal', () => {
  const req = (requestId: number, addr = 0xa000070) => ({ dmId: 0, addr, op: 0, value: 3, accessWidth: 4, requestId });

  it('gives the next process the requests taken and never completed, and only those', () => {
    const { file } = fresh();
    const journal = new RequestJournal(file);
    const a = journal.record(req(7));
    const b = journal.record(req(8));
    const c = journal.record(req(9));
    journal.release(a); // completed
    journal.markCompleting(b); // killed inside COMPLETE: not repeated
    expect(c).toBeGreaterThanOrEqual(0);
    const next = new RequestJournal(file);
    const left = next.takeLeftovers();
    expect(left.taken).toEqual([req(9)]);
    expect(left.uncertain).toBe(1);
    // Cleared: a third process finds nothing.
    expect(new RequestJournal(file).takeLeftovers()).toEqual({ taken: [], uncertain: 0 });
  });

  it('finds a request by id and address, as the native thread wrote it', () => {
    const { file } = fresh();
    const journal = new RequestJournal(file);
    // What native/journal.cc stores: state TAKEN, then the raw 48-byte request at +8.
    const raw = new Uint8Array(encodeRequests([req(42, 0xa000050)]));
    const slot = 5;
    file.set(raw, 64 + slot * 64 + 8);
    new DataView(file.buffer).setUint32(64 + slot * 64, 1, true);
    expect(journal.find(req(42, 0xa000050))).toBe(slot);
    expect(journal.find(req(42, 0xa000070))).toBe(-1);
    journal.release(slot);
    expect(journal.find(req(42, 0xa000050))).toBe(-1);
  });

  it('an ARMED slot is taken once the kernel copied a request over its marker, free while it holds the marker', () => {
    const { file } = fresh();
    const view = new DataView(file.buffer);
    const ARMED = 4;
    const arm = (slot: number, request: Uint8Array): void => {
      file.set(request, 64 + slot * 64 + 8);
      view.setUint32(64 + slot * 64, ARMED, true);
    };
    // The marker native/journal.cc writes: all zero, op = ASK (2) at request byte 16.
    const marker = new Uint8Array(48);
    marker[16] = 2;
    arm(0, marker);
    // What ATTACH copied into the slot before the process died (a READ and a WRITE).
    const read = { dmId: 1, addr: 0xa000050, op: 1, value: 0, accessWidth: 4, requestId: 3 };
    arm(1, new Uint8Array(encodeRequests([req(11)])));
    arm(2, new Uint8Array(encodeRequests([read])));
    // Neither the marker nor a READ/WRITE (op 5): nothing to complete.
    const odd = new Uint8Array(encodeRequests([req(12)]));
    odd[16] = 5;
    arm(3, odd);
    // Killed while arming slot 4 (WRITING, the marker written): nothing handed over, not uncertain.
    file.set(marker, 64 + 4 * 64 + 8);
    view.setUint32(64 + 4 * 64, 3, true);
    const left = new RequestJournal(file).takeLeftovers();
    expect(left.taken).toEqual([req(11), read]);
    expect(left.uncertain).toBe(0);
    for (let slot = 0; slot < 5; slot += 1) expect(view.getUint32(64 + slot * 64, true)).toBe(0);
    expect(new RequestJournal(file).takeLeftovers()).toEqual({ taken: [], uncertain: 0 });
  });
});
