// Reading a config: file -> YAML document -> validateConfig. Integers are parsed as bigint so a
// u64 such as 0xffffffff_fffff000 survives; YAML 1.2 (the yaml package's default, like
// bao-virtio-dm's serde_yaml) keeps `52:54:00:aa:bb:01` a string where YAML 1.1 would read a
// sexagesimal number. Every failure is a typed error carrying the path and, where the YAML
// parser gives one, the line and column.

import { readFile as fsReadFile } from 'node:fs/promises';

import { LineCounter, isNode, parseDocument } from 'yaml';

import { ConfigFileError, ConfigSyntaxError, type SourcePosition } from '../errors.js';
import { type FieldPath, type ValidatedConfig, validateConfig } from './normalize.js';
import { resolveConfigPaths } from './paths.js';

export interface LoadConfigOptions {
  /** Injected for tests; defaults to fs.promises.readFile. */
  readonly readFile?: (path: string, encoding: 'utf8') => Promise<string>;
  /** Refuse unknown keys (`--strict`). */
  readonly strict?: boolean;
}

/** A config describes at most a few dozen devices; anything this large is a wrong file. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Parses and validates config text; `source` names it in messages. */
export function parseConfigText(text: string, source?: string, options: { readonly strict?: boolean } = {}): ValidatedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { intAsBigInt: true, lineCounter, prettyErrors: true, uniqueKeys: true });
  const name = source ?? 'config';
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = first.linePos?.[0];
    const position = pos === undefined ? undefined : { line: pos.line, column: pos.col };
    const where = position === undefined ? name : `${name}:${position.line}:${position.column}`;
    throw new ConfigSyntaxError(name, `${where}: YAML syntax error: ${first.message.split('\n')[0]}`, position, {
      cause: first,
    });
  }
  const locate = (path: FieldPath): SourcePosition | undefined => {
    // A missing key has no node: point at the closest enclosing one that exists.
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) {
        const p = lineCounter.linePos(node.range[0]);
        return { line: p.line, column: p.col };
      }
    }
    return undefined;
  };
  // Some YAML errors surface only when the document is turned into values (an alias naming no
  // anchor, an alias bomb beyond maxAliasCount): they are syntax errors of the file too.
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new ConfigSyntaxError(name, `${name}: YAML error: ${why}`, undefined, { cause: err });
  }
  const strict = options.strict === true;
  return validateConfig(value, source === undefined ? { locate, strict } : { source, locate, strict });
}

/**
 * Reads, parses and validates a config file; relative paths in it are made absolute against the
 * file's directory. Throws ConfigFileError, ConfigSyntaxError or ConfigInvalidError. */
export async function loadConfig(path: string, options: LoadConfigOptions = {}): Promise<ValidatedConfig> {
  const readFile = options.readFile ?? ((p: string, e: 'utf8') => fsReadFile(p, e));
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT') {
      throw new ConfigFileError('CONFIG_NOT_FOUND', path, `${path}: no such file; give the path of a YAML config`, { cause: err });
    }
    const why = code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new ConfigFileError('CONFIG_UNREADABLE', path, `${path}: cannot read the config: ${why}`, { cause: err });
  }
  if (text.length > MAX_CONFIG_BYTES) {
    throw new ConfigFileError(
      'CONFIG_TOO_LARGE',
      path,
      `${path}: ${text.length} bytes is more than a config can be (at most ${MAX_CONFIG_BYTES}); is this the right file?`,
    );
  }
  const validated = parseConfigText(text, path, { strict: options.strict === true });
  return { ...validated, config: resolveConfigPaths(validated.config, path) };
}
