// The root logger: JSON lines by default, pretty for terminals or on request, level from flag
// then environment, module children.

import { PassThrough } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { createRootLogger, resolveLogFormat, resolveLogLevel } from '../../../lib/vmm/logger.js';

function capture(isTTY = false): { stream: PassThrough & { isTTY?: boolean }; text: () => string } {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean };
  stream.isTTY = isTTY;
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('createRootLogger', () => {
  it('writes JSON lines when the destination is not a terminal, with module bindings on children', async () => {
    const out = capture(false);
    const log = createRootLogger({ destination: out.stream, env: {} });
    log.child({ module: 'daemon' }).info({ devices: 2 }, 'serving');
    await tick();
    const line = JSON.parse(out.text().trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, module: 'daemon', devices: 2, msg: 'serving', name: 'node-bao' });
  });

  it('writes human-readable lines for a terminal, in-process', async () => {
    const out = capture(true);
    const log = createRootLogger({ destination: out.stream, env: {} });
    log.warn({ module: 'x' }, 'hello there');
    await tick();
    expect(out.text()).toMatch(/WARN.*hello there/);
    expect(() => JSON.parse(out.text())).toThrow();
  });

  it('honours --log-format json on a terminal and pretty on a pipe', async () => {
    const tty = capture(true);
    createRootLogger({ destination: tty.stream, env: {}, format: 'json' }).info('a');
    const pipe = capture(false);
    createRootLogger({ destination: pipe.stream, env: {}, format: 'pretty' }).info('b');
    await tick();
    expect(JSON.parse(tty.text())).toMatchObject({ msg: 'a' });
    expect(pipe.text()).toMatch(/INFO.*b/);
  });

  it('filters below the level', async () => {
    const out = capture(false);
    const log = createRootLogger({ destination: out.stream, env: { BAO_LOG_LEVEL: 'warn' } });
    log.info('hidden');
    log.error('shown');
    await tick();
    expect(out.text()).not.toContain('hidden');
    expect(out.text()).toContain('shown');
  });
});

describe('level and format resolution', () => {
  it('prefers the flag, then BAO_LOG_LEVEL, then info', () => {
    expect(resolveLogLevel('debug', { BAO_LOG_LEVEL: 'error' })).toBe('debug');
    expect(resolveLogLevel(undefined, { BAO_LOG_LEVEL: 'ERROR' })).toBe('error');
    expect(resolveLogLevel(undefined, {})).toBe('info');
  });

  it('refuses unknown values with the valid list', () => {
    expect(() => resolveLogLevel('loud', {})).toThrow("unknown log level 'loud'; expected one of trace, debug, info, warn, error, fatal, silent");
    expect(() => resolveLogFormat('xml', {}, false)).toThrowError(expect.objectContaining({ code: 'LOG_FORMAT_INVALID' }));
  });

  it('defaults to pretty on a terminal and json otherwise', () => {
    expect(resolveLogFormat(undefined, {}, true)).toBe('pretty');
    expect(resolveLogFormat(undefined, {}, false)).toBe('json');
    expect(resolveLogFormat(undefined, { BAO_LOG_FORMAT: 'pretty' }, false)).toBe('pretty');
  });
});
