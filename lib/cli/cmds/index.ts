// The baoctl commands, in help order. To add one: create cmds/<name>/{index,options,handler}.ts
// and append its descriptor here.

import type { CommandModule } from 'yargs';

import { abiCommand } from './abi/index.js';
import { configCommand } from './config/index.js';
import { devicesCommand } from './devices/index.js';
import { ipcCommand } from './ipc/index.js';
import { restartCommand } from './restart/index.js';
import { runCommand } from './run/index.js';
import { statusCommand } from './status/index.js';
import { traceCommand } from './trace/index.js';

/** Each descriptor keeps its own typed args; the list only needs to hand them to yargs. */
export type BaoctlCommand = CommandModule<object, never>;

export const commands: BaoctlCommand[] = [
  abiCommand as BaoctlCommand,
  devicesCommand as BaoctlCommand,
  configCommand as BaoctlCommand,
  runCommand as BaoctlCommand,
  restartCommand as BaoctlCommand,
  statusCommand as BaoctlCommand,
  traceCommand as BaoctlCommand,
  ipcCommand as BaoctlCommand,
];
