// SharedDeadlines: the one timer behind the kick watchdogs of a process. Calls for the same
// instant are one timer expiry; a cancelled call never runs; one call that throws costs the others
// nothing.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { SharedDeadlines } from '../../../lib/vmm/kick-clock.js';

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(0);
});
afterEach(() => {
  vi.useRealTimers();
});

describe('SharedDeadlines', () => {
  it('runs the calls of one instant on one timer expiry, and the instants in order', () => {
    const clock = new SharedDeadlines();
    const ran: string[] = [];
    clock.at(200, () => ran.push('b1'));
    clock.at(100, () => ran.push('a'));
    clock.at(200, () => ran.push('b2'));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(250);
    expect(ran).toEqual(['a', 'b1', 'b2']);
    expect(clock.wakeups).toBe(2);
    expect(clock.calls).toBe(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('aligned(period) is the next multiple of the period, so that looks of one period meet', () => {
    const clock = new SharedDeadlines();
    vi.setSystemTime(4_321);
    expect(clock.aligned(2000)).toBe(6000);
    expect(clock.aligned(100)).toBe(4400);
    vi.setSystemTime(6000);
    expect(clock.aligned(2000)).toBe(8000);
  });

  it('never runs a cancelled call', () => {
    const clock = new SharedDeadlines();
    const ran: number[] = [];
    const cancel = clock.at(100, () => ran.push(1));
    clock.at(100, () => ran.push(2));
    cancel();
    cancel();
    vi.advanceTimersByTime(100);
    expect(ran).toEqual([2]);
    expect(clock.pending).toBe(0);
  });

  it('lets a call ask for its next instant while it runs', () => {
    const clock = new SharedDeadlines();
    const ran: number[] = [];
    const again = (): void => {
      ran.push(Date.now());
      if (ran.length < 3) clock.at(clock.aligned(100), again);
    };
    clock.at(50, again);
    vi.advanceTimersByTime(1000);
    expect(ran).toEqual([50, 100, 200]);
  });

  it('runs the other calls of the instant and keeps its next expiry when one call throws, then rethrows', () => {
    const clock = new SharedDeadlines();
    const ran: string[] = [];
    clock.at(100, () => {
      throw new Error('one device model failed');
    });
    clock.at(100, () => ran.push('other'));
    clock.at(300, () => ran.push('later'));
    expect(() => vi.advanceTimersByTime(100)).toThrow(/one device model failed/);
    expect(ran).toEqual(['other']);
    vi.advanceTimersByTime(200);
    expect(ran).toEqual(['other', 'later']);
  });
});
