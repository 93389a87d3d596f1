// `baoctl config check <file>`: validate a config without touching any device. Prints the
// normalized config (exit 0) or every error with its field (exit 2, a config error). Human mode writes errors to
// stderr; --json writes one document to stdout in both cases, so scripts read a single stream.

import {
  configToJson,
  configToText,
  issueToJson,
  loadConfig,
  type LoadConfigOptions,
  type ValidatedConfig,
} from '../../../vmm/config/index.js';
import { ConfigInvalidError, ConfigSyntaxError, VmmError, formatIssue } from '../../../vmm/errors.js';
import { EXIT_OK, EXIT_USAGE } from '../../exit-codes.js';
import { writeJson, type Output } from '../../io.js';
import type { ConfigCheckArgs } from './options.js';

export { EXIT_OK } from '../../exit-codes.js';
/** The config is invalid or could not be read: a config error (exit-codes.ts). */
export const EXIT_INVALID = EXIT_USAGE;

export interface ConfigCheckIo {
  readonly out?: Output;
  readonly err?: Output;
  readonly readFile?: LoadConfigOptions['readFile'];
}

/** Returns the exit code. */
export async function runConfigCheck(args: ConfigCheckArgs, io: ConfigCheckIo = {}): Promise<number> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  let result: ValidatedConfig;
  try {
    result = await loadConfig(args.file, { strict: args.strict === true, ...(io.readFile === undefined ? {} : { readFile: io.readFile }) });
  } catch (e) {
    if (!(e instanceof VmmError)) throw e;
    if (args.json) {
      const errors =
        e instanceof ConfigInvalidError
          ? e.issues.map(issueToJson)
          : [
              {
                field: '',
                message: e.message,
                ...(e instanceof ConfigSyntaxError && e.position ? { line: e.position.line, column: e.position.column } : {}),
              },
            ];
      writeJson(out, {
        ok: false,
        file: args.file,
        code: e.code,
        errors,
        warnings: e instanceof ConfigInvalidError ? e.warnings.map(issueToJson) : [],
      });
    } else if (e instanceof ConfigInvalidError) {
      err.write(`${args.file}: ${e.issues.length} error(s)\n`);
      for (const issue of e.issues) err.write(`  error: ${formatIssue(issue)}\n`);
      for (const warning of e.warnings) err.write(`  warning: ${formatIssue(warning)}\n`);
    } else {
      err.write(`${e.message}\n`);
    }
    return EXIT_INVALID;
  }
  if (args.json) {
    writeJson(out, { ok: true, file: args.file, config: configToJson(result.config), warnings: result.warnings.map(issueToJson) });
  } else {
    out.write(`${configToText(result.config, result.warnings)}\n`);
  }
  return EXIT_OK;
}
