import { describe, expect, it } from 'vitest';
import { rateLimitedLogger } from '../../../lib/virtio/log-limiter.js';
import type { Logger } from '../../../lib/virtio/logger.js';

function sink() {
  const lines: { level: string; msg: string; obj: object }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, msg: msg ?? '', obj });
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return { log, lines };
}

describe('rateLimitedLogger: guest-triggered log lines limited in time', () => {
  function limited(options: { linesPerSecond?: number; burst?: number } = {}) {
    let now = 0;
    const timers: { fn: () => void; ms: number }[] = [];
    const { log, lines } = sink();
    const out = rateLimitedLogger(log, { ...options, now: () => now, setTimer: (fn, ms) => void timers.push({ fn, ms }) });
    return { out, lines, timers, tick: (ms: number) => (now += ms) };
  }

  it('lets a burst through, then about ten lines a second whatever the flood', () => {
    const { out, lines, tick } = limited();
    for (let s = 0; s < 10; s += 1) {
      for (let i = 0; i < 1000; i += 1) out.warn({}, 'fault');
      tick(1000);
    }
    expect(lines.length).toBe(20 + 9 * 10);
  });

  it('reports what it dropped in one summary line per interval', () => {
    const { out, lines, timers } = limited({ linesPerSecond: 1, burst: 1 });
    for (let i = 0; i < 5; i += 1) out.error({}, 'x');
    expect(timers).toHaveLength(1);
    expect(timers[0]!.ms).toBe(5000);
    timers[0]!.fn();
    expect(lines.at(-1)).toMatchObject({ level: 'warn', msg: '4 similar log lines suppressed', obj: { suppressed: 4 } });
    timers[0]!.fn(); // nothing new dropped: no second summary
    expect(lines).toHaveLength(2);
  });

  it('shares one budget between a logger and its children (one device model, many modules)', () => {
    const { out, lines } = limited({ linesPerSecond: 1, burst: 2 });
    out.info({}, 'a');
    out.child({ queue: 0 }).warn({}, 'b');
    out.child({ queue: 1 }).warn({}, 'c');
    expect(lines.map((l) => l.msg)).toEqual(['a', 'b']);
  });

  it('does not limit debug lines (off unless asked for)', () => {
    const { out, lines } = limited({ linesPerSecond: 1, burst: 1 });
    for (let i = 0; i < 50; i += 1) out.debug({}, 'd');
    out.warn({}, 'w');
    expect(lines).toHaveLength(51);
  });
});
