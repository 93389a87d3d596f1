// A fresh directory under the system's temporary directory for the test being run, removed
// when that test finishes (whatever its outcome), so that runs leave nothing behind in /tmp.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onTestFinished } from 'vitest';

/** Call inside a test: the directory lives until that test has finished. */
export function testTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
