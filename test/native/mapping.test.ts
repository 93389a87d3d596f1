// Mapping through the addon's mmap: MAP_SHARED really shares, unmap is explicit, idempotent and
// turns later access into a typed error instead of a crash.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { Mapping, MappingClosedError } from '../../lib/dispatcher/index.js';
import { loadAddon } from '../../lib/native.js';

const PAGE = 4096;
let dir: string;
let file: string;
let fd: number;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-map-'));
  file = path.join(dir, 'shmem');
  fs.writeFileSync(file, Buffer.alloc(4 * PAGE));
  fd = fs.openSync(file, 'r+');
});

afterEach(() => {
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('Mapping', () => {
  it('maps one file twice and a write through one mapping is seen through the other', () => {
    const a = Mapping.map(fd, 4 * PAGE);
    const b = Mapping.map(fd, 4 * PAGE);
    a.bytes[123] = 0x5a;
    a.bytes.set([1, 2, 3], PAGE);
    expect(b.bytes[123]).toBe(0x5a);
    expect([...b.view(PAGE, 3)]).toEqual([1, 2, 3]);
    a.unmap();
    b.unmap();
  });

  it('writes through to the file (MAP_SHARED)', () => {
    const m = Mapping.map(fd, PAGE);
    m.bytes[7] = 42;
    m.unmap();
    expect(fs.readFileSync(file)[7]).toBe(42);
  });

  it('maps at a page offset', () => {
    const whole = Mapping.map(fd, 4 * PAGE);
    whole.bytes[2 * PAGE + 1] = 9;
    const part = Mapping.map(fd, PAGE, { offset: 2 * PAGE });
    expect(part.bytes[1]).toBe(9);
    whole.unmap();
    part.unmap();
  });

  it('after unmap throws MAPPING_CLOSED and leaves old views zero-length (detached)', () => {
    const m = Mapping.map(fd, PAGE);
    const stale = m.bytes;
    const buffer = m.arrayBuffer;
    m.unmap();
    expect(m.closed).toBe(true);
    expect(() => m.bytes).toThrow(MappingClosedError);
    expect(() => m.view(0, 1)).toThrow(expect.objectContaining({ code: 'MAPPING_CLOSED' }));
    expect(buffer.byteLength).toBe(0);
    expect(stale.length).toBe(0);
    expect(stale[0]).toBeUndefined();
  });

  it('unmaps idempotently, natively too', () => {
    const addon = loadAddon();
    const ab = addon.mmap(fd, PAGE, 0, addon.constants.PROT_READ);
    addon.munmap(ab);
    addon.munmap(ab);
    expect(ab.byteLength).toBe(0);
    const m = Mapping.map(fd, PAGE);
    m.unmap();
    m.unmap();
  });

  it('maps read-only when asked, and rejects views outside the mapping', () => {
    const m = Mapping.map(fd, PAGE, { writable: false });
    expect(m.bytes.length).toBe(PAGE);
    expect(() => m.view(PAGE - 1, 2)).toThrow(/outside/);
    m.unmap();
  });

  it('reports mmap failures with errno fields', () => {
    const ro = fs.openSync(file, 'r');
    try {
      expect(() => Mapping.map(ro, PAGE)).toThrow(expect.objectContaining({ code: 'EACCES', syscall: 'mmap' }));
    } finally {
      fs.closeSync(ro);
    }
    expect(() => Mapping.map(1_000_000, PAGE)).toThrow(expect.objectContaining({ code: 'EBADF', errno: -9, syscall: 'mmap' }));
    expect(() => Mapping.map(fd, 0)).toThrow(/positive/);
  });

  it('refuses to munmap a buffer that mmap did not return', () => {
    expect(() => loadAddon().munmap(new ArrayBuffer(8))).toThrow(TypeError);
  });
});
