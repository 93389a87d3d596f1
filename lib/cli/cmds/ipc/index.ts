// `baoctl ipc list | read | write | watch`: command descriptors (STYLE.md guideline 14).

import type { Argv, CommandModule } from 'yargs';

import { runIpcList, runIpcRead, runIpcWatch, runIpcWrite } from './handler.js';
import { devRootOption, rangeOptions, type IpcListArgs, type IpcReadArgs, type IpcWatchArgs, type IpcWriteArgs } from './options.js';

const deviceArg = { type: 'string', demandOption: true, description: 'the channel: N of /dev/baoipcN, or a path' } as const;
const format = { type: 'string', choices: ['hex', 'raw'], default: 'hex', description: 'hex dump, or the raw bytes (to a file or a pipe)' } as const;

const list: CommandModule<object, IpcListArgs> = {
  command: 'list',
  describe: 'The IPC shared-memory devices and the size of their channels',
  builder: (y) => y.options({ ...devRootOption, json: { type: 'boolean', default: false } }) as unknown as Argv<IpcListArgs>,
  handler: (args) => {
    process.exitCode = runIpcList(args);
  },
};

const read: CommandModule<object, IpcReadArgs> = {
  command: 'read <device>',
  describe: 'Read the read channel (what the other side wrote)',
  builder: (y) => y.positional('device', deviceArg).options({ ...devRootOption, ...rangeOptions, format }) as unknown as Argv<IpcReadArgs>,
  handler: async (args) => {
    process.exitCode = await runIpcRead(args);
  },
};

const write: CommandModule<object, IpcWriteArgs> = {
  command: 'write <device>',
  describe: 'Write to the write channel and notify the other side (--data text, --hex bytes, or stdin)',
  builder: (y) =>
    y.positional('device', deviceArg).options({
      ...devRootOption,
      offset: rangeOptions.offset,
      data: { type: 'string', description: 'the bytes to write, as text' },
      hex: { type: 'string', description: "the bytes to write, in hex ('de ad be ef')" },
    }).conflicts('data', 'hex') as unknown as Argv<IpcWriteArgs>,
  handler: async (args) => {
    process.exitCode = await runIpcWrite(args);
  },
};

const watch: CommandModule<object, IpcWatchArgs> = {
  command: 'watch <device>',
  describe: 'Print the read channel, then every 16-byte row that changes, until Ctrl-C',
  builder: (y) =>
    y.positional('device', deviceArg).options({
      ...devRootOption,
      ...rangeOptions,
      format,
      interval: { type: 'number', default: 100, description: 'poll period in ms' },
      count: { type: 'number', description: 'stop after this many changed rows' },
    }) as unknown as Argv<IpcWatchArgs>,
  handler: async (args) => {
    const ac = new AbortController();
    process.once('SIGINT', () => ac.abort());
    process.exitCode = await runIpcWatch(args, { signal: ac.signal });
  },
};

export const ipcCommand: CommandModule<object, object> = {
  command: 'ipc <command>',
  describe: 'Read, write and watch the IPC shared-memory devices (/dev/baoipcN)',
  builder: (y) =>
    y
      .command(list as CommandModule<object, never>)
      .command(read as CommandModule<object, never>)
      .command(write as CommandModule<object, never>)
      .command(watch as CommandModule<object, never>)
      .demandCommand(1, 'Give an ipc subcommand (list, read, write, watch).'),
  handler: () => {},
};
