// Every QEMU test file gets its own device-state directory (vitest setupFiles, qemu project):
// a daemon a test starts without --state-dir keeps its state files there, not in the shared
// /run/node-bao, so that what one file's killed daemons saved is never resumed by another
// file's daemon on a frontend that bao-sim has since reloaded. Daemons inherit it through
// NODE_BAO_STATE_DIR; tests that restart daemons within a file may still give --state-dir.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { expect } from 'vitest';

const file = expect.getState().testPath;
const name = file === undefined ? `pid-${process.pid}` : path.basename(file).replace(/\.test\.ts$/, '').replace(/[^A-Za-z0-9_.-]/g, '_');
const dir = `/tmp/node-bao-state/${name}`;
fs.rmSync(dir, { recursive: true, force: true });
process.env['NODE_BAO_STATE_DIR'] = dir;
