// `baoctl run --log-file PATH`: log lines appended to a file that SIGHUP reopens, so logrotate
// can move it away and the daemon continues in a new file at the same path. Writes are
// synchronous (pino's SonicBoom with sync: true): no line is lost when the process ends.

import pino from 'pino';

export interface LogFile {
  readonly stream: NodeJS.WritableStream;
  reopen(): void;
  close(): void;
}

export function openLogFile(path: string): LogFile {
  const boom = pino.destination({ dest: path, append: true, mkdir: true, sync: true });
  return {
    stream: boom as unknown as NodeJS.WritableStream,
    reopen: () => boom.reopen(),
    close: () => {
      try {
        boom.flushSync();
      } catch {
        // nothing buffered, or already closed
      }
      boom.end();
    },
  };
}
