// The daemon's last resort: an exception or rejection nobody handled completes every pending
// access, is logged, and ends the process non-zero, once.

import { EventEmitter } from 'node:events';

import { describe, expect, it } from 'vitest';

import { installLastResort, type LastResortTarget } from '../../../lib/vmm/last-resort.js';

function rig(completePending: () => number = () => 2) {
  const target = new EventEmitter();
  const lines: string[] = [];
  const log = {
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: (_o: object, msg?: string) => void lines.push(msg ?? ''),
    child: () => log,
  };
  const exits: number[] = [];
  let flushed = 0;
  const remove = installLastResort({
    target: target as unknown as LastResortTarget,
    log,
    completePending,
    flush: () => void (flushed += 1),
    exit: (code) => void exits.push(code),
  });
  return { target, lines, exits, flushed: () => flushed, remove };
}

describe('installLastResort', () => {
  it('on an unhandled rejection: completes pending accesses, logs, flushes and exits 1', () => {
    const r = rig();
    r.target.emit('unhandledRejection', new Error('lost promise'));
    expect(r.exits).toEqual([1]);
    expect(r.flushed()).toBe(1);
    expect(r.lines.join('\n')).toMatch(/fatal: unhandled rejection: lost promise.*\n.*completed 2 pending/);
  });

  it('exits even when completing the pending accesses throws, and acts only once', () => {
    const r = rig(() => {
      throw new Error('handle gone');
    });
    r.target.emit('uncaughtException', new Error('first'));
    r.target.emit('uncaughtException', new Error('second'));
    expect(r.exits).toEqual([1]);
    expect(r.lines.join('\n')).toMatch(/completing pending accesses failed/);
  });

  it('removes its handlers', () => {
    const r = rig();
    r.remove();
    expect(r.target.listenerCount('uncaughtException')).toBe(0);
    expect(r.target.listenerCount('unhandledRejection')).toBe(0);
  });
});
