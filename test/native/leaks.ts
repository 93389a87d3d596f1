// Counting this process's threads and fds through /proc, to show that native resources end.

import * as fs from 'node:fs';

export const threadCount = (): number => fs.readdirSync('/proc/self/task').length;
export const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

/** Polls `probe` until it returns true (threads exit shortly after join). */
export async function eventually(probe: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (probe()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return probe();
}
