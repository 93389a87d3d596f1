// `baoctl trace [--dm N] [--json] [--socket path] [--count N]`: command descriptor (STYLE.md guideline 14).

import type { Argv, CommandModule } from 'yargs';

import { runTrace } from './handler.js';
import { traceOptions, type TraceArgs } from './options.js';

export const traceCommand: CommandModule<object, TraceArgs> = {
  command: 'trace',
  describe: "Live, decoded view of a running daemon's traffic: register accesses, kicks, used buffers, interrupts, guest faults",
  builder: (y) => y.options(traceOptions) as unknown as Argv<TraceArgs>,
  handler: async (args) => {
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // A closed pipe (`| head`) ends the trace quietly.
    process.stdout.on('error', stop);
    process.exitCode = await runTrace(args, { signal: ac.signal });
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  },
};
