// Fuzz target: the config loader (parseConfigText: YAML -> schema -> rules), which is what
// loadConfig runs on a file's text. The input decodes into a YAML document built from the
// config's own vocabulary (keys of the schema and unknown ones, device types, data planes,
// backends, integers in every spelling and range, strings, booleans, nulls, lists, mappings,
// anchors and aliases), with raw text spliced in now and then. Oracle: the loader either
// accepts or throws ConfigSyntaxError / ConfigInvalidError, the latter with at least one issue,
// each naming a field and saying something; and a config it accepts, printed back as a
// document (configToJson), is accepted again and means the same.

import { configToJson, parseConfigText } from '../../../lib/vmm/config/index.js';
import { DEVICE_KEYS, LOG_KEYS, ROOT_KEYS } from '../../../lib/vmm/config/schema.js';
import { KNOWN_DATA_PLANES, KNOWN_DEVICE_TYPES } from '../../../lib/vmm/config/served.js';
import { ConfigInvalidError, ConfigSyntaxError } from '../../../lib/vmm/errors.js';
import { FuzzInput } from '../decode.js';
import { beginInput, expectOnly, violated } from '../oracle.js';

const SCALARS: readonly string[] = [
  '0', '1', '15', '16', '-1', '0x0', '0xa003e00', '0xa000000', '0x1000', '0xfff', '0xffffffff', '0x100000000',
  '0xffffffffffffffff', '0x10000000000000000', '18446744073709551616', '4294967296', '1e3', '1.5', '.inf', '-.nan',
  '0o17', '0b101', '1_000', '"0x10"', "'12'", '" 7 "', 'true', 'false', 'yes', 'no', 'on', '~', 'null', '""', "''",
  'console', 'rng', 'block', 'net', 'vsock', 'fs', 'gpu', 'virtio', 'vhost', 'vhost_user', 'pty', 'stdio', 'socket',
  '/tmp/c0.sock', '/root/vm-console', 'relative/path', '"/tmp/with space"', `/${'x'.repeat(120)}`, '52:54:00:aa:bb:01',
  'info', 'debug', 'silent', 'json', 'pretty', 'LOUD', '[]', '{}', '[1, 2]', '{a: 1}', '!!str 5', '!!binary aGk=', '|\n    text',
  '>-\n    folded', '"\\u0000"', '"\\x41"', '*a', '&a 1', '- x',
];

const KEYS: readonly string[] = [...DEVICE_KEYS, ...ROOT_KEYS, ...LOG_KEYS, 'extra', '', '"quoted key"', '<<', '? complex'];

function scalar(input: FuzzInput): string {
  const b = input.u8();
  if (b < 0xc0) return input.pick(SCALARS);
  if (b < 0xe0) return String(input.u32() * (b & 1 ? 1 : 0x1_0000));
  if (b < 0xf0) return `0x${input.u32().toString(16)}${input.u32().toString(16)}`;
  return new TextDecoder().decode(input.bytes(input.below(24)));
}

function value(input: FuzzInput, indent: string, depth: number): string {
  const b = input.u8();
  if (depth > 3 || b < 0xb0) return ` ${scalar(input)}`;
  if (b < 0xd0) return ` [${Array.from({ length: input.below(4) }, () => scalar(input)).join(', ')}]`;
  if (b < 0xf0) return `\n${mapping(input, `${indent}  `, depth + 1, 1 + input.below(4))}`;
  return ` &a${input.below(3)} ${scalar(input)}`;
}

function mapping(input: FuzzInput, indent: string, depth: number, keys: number): string {
  const lines: string[] = [];
  for (let i = 0; i < keys; i += 1) lines.push(`${indent}${input.pick(KEYS)}:${value(input, indent, depth)}`);
  return lines.join('\n');
}

function device(input: FuzzInput): string {
  const lines: string[] = [];
  const f = input.u8();
  if ((f & 1) === 0) lines.push(`id: ${input.pick(['0', '1', '2', '15', '16', '0x0', '-1', '"3"', String(input.u8())])}`);
  if ((f & 2) === 0) lines.push(`type: ${input.pick([...KNOWN_DEVICE_TYPES, 'Console', 'unknown', '1'])}`);
  if ((f & 4) === 0) lines.push(`mmio_addr: ${input.pick(['0xa003e00', '0xa003c00', '0xa003e01', '0x0', '0xffffffffffffff00', String(input.u32())])}`);
  if ((f & 8) !== 0) lines.push(`data_plane: ${input.pick([...KNOWN_DATA_PLANES, 'virtio ', 'dpdk'])}`);
  const more = input.below(4);
  for (let i = 0; i < more; i += 1) lines.push(`${input.pick(KEYS)}:${value(input, '    ', 1)}`);
  return lines.map((l, i) => (i === 0 ? `  - ${l}` : `    ${l}`)).join('\n');
}

function documentText(input: FuzzInput): string {
  const parts: string[] = [];
  const f = input.u8();
  if ((f & 0x80) !== 0) return new TextDecoder().decode(input.bytes(512));
  if ((f & 1) === 0) {
    const n = input.below(5);
    parts.push(n === 0 && (f & 2) !== 0 ? 'devices: []' : 'devices:');
    for (let i = 0; i < n; i += 1) parts.push(device(input));
  }
  if ((f & 4) !== 0) parts.push(`log:\n  level: ${scalar(input)}\n  format: ${scalar(input)}`);
  if ((f & 8) !== 0) parts.push(`shutdown_timeout_ms: ${scalar(input)}`);
  if ((f & 16) !== 0) parts.push(mapping(input, '', 0, 1 + input.below(3)));
  if ((f & 32) !== 0) parts.push(new TextDecoder().decode(input.bytes(input.below(64))));
  return `${parts.join('\n')}\n`;
}

export function fuzz(data: Uint8Array): void {
  beginInput();
  const input = new FuzzInput(data);
  const text = documentText(input);
  let accepted;
  try {
    accepted = parseConfigText(text, 'fuzz.yaml');
  } catch (err) {
    expectOnly(err, [ConfigSyntaxError, ConfigInvalidError]);
    if (err instanceof ConfigInvalidError) {
      if (err.issues.length === 0) violated('CONFIG_NO_ISSUE', 'ConfigInvalidError without an issue');
      for (const issue of err.issues) {
        if (typeof issue.field !== 'string' || typeof issue.message !== 'string' || issue.message.length === 0) {
          violated('CONFIG_ISSUE', `issue without a message: ${JSON.stringify(issue)}`);
        }
      }
    }
    return;
  }
  const printed = configToJson(accepted.config);
  let again;
  try {
    again = parseConfigText(JSON.stringify(printed), 'printed.yaml');
  } catch (err) {
    violated('CONFIG_ROUND_TRIP', `an accepted config, printed, is refused: ${(err as Error).message}\n--- input\n${text}`);
  }
  const a = JSON.stringify(printed);
  const b = JSON.stringify(configToJson(again.config));
  if (a !== b) violated('CONFIG_ROUND_TRIP', `printed config reads back differently:\n${a}\n${b}`);
}
