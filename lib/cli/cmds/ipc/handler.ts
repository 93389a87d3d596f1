// `baoctl ipc list | read | write | watch`: the IPC shared-memory channels (/dev/baoipcN) from
// the command line. Offsets and lengths are checked against the channel before any access (a
// bad range is a usage error, exit 2); `read` prints a hex dump or the raw bytes; `watch` polls
// the range and prints each 16-byte row that changed, until Ctrl-C or --count changes.

import { IpcDevice, IpcError, listIpcDevices } from '../../../ipc/index.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../../exit-codes.js';
import { hex, writeJson, type Output } from '../../io.js';
import { IpcRangeError, channelSize, checkRange, hexDump, parseByteCount, parseHexBytes } from './channel.js';
import type { IpcListArgs, IpcReadArgs, IpcWatchArgs, IpcWriteArgs } from './options.js';

export interface IpcIo {
  readonly out?: Output;
  readonly err?: Output;
  readonly stdin?: () => Promise<Buffer>;
  /** Ends a watch like Ctrl-C (tests). */
  readonly signal?: AbortSignal;
  readonly sleep?: (ms: number) => Promise<void>;
}

function openDevice(device: string, devRoot: string): IpcDevice {
  return /^\d+$/.test(device) ? IpcDevice.open(Number(device), { devRoot }) : IpcDevice.open(device);
}

/** Runs `body` with the device open; maps the expected errors to a message and an exit code. */
async function withDevice(args: { device: string; devRoot: string }, err: Output, body: (d: IpcDevice, size: number) => Promise<number> | number): Promise<number> {
  let device: IpcDevice;
  try {
    device = openDevice(args.device, args.devRoot);
  } catch (e) {
    err.write(`baoctl ipc: ${e instanceof IpcError ? e.message : (e as Error).message}\n`);
    return EXIT_FAILURE;
  }
  try {
    return await body(device, channelSize(device));
  } catch (e) {
    if (e instanceof IpcRangeError) {
      err.write(`baoctl ipc: ${e.message}\n`);
      return EXIT_USAGE;
    }
    err.write(`baoctl ipc: ${device.path}: ${(e as Error).message}\n`);
    return EXIT_FAILURE;
  } finally {
    device.close();
  }
}

function parseRange(args: { offset: string; length?: string | undefined }, err: Output): { offset: number; length: number | undefined } | undefined {
  const offset = parseByteCount(args.offset);
  const length = args.length === undefined ? undefined : parseByteCount(args.length);
  if (offset === undefined) err.write(`baoctl ipc: --offset: expected a byte offset (decimal or 0x hex), got '${args.offset}'\n`);
  else if (args.length !== undefined && length === undefined) err.write(`baoctl ipc: --length: expected a byte count (decimal or 0x hex), got '${args.length}'\n`);
  else return { offset, length };
  return undefined;
}

export function runIpcList(args: IpcListArgs, io: IpcIo = {}): number {
  const out = io.out ?? process.stdout;
  const channels = listIpcDevices(args.devRoot).map((n) => {
    try {
      const d = IpcDevice.open(n.path);
      try {
        return { id: n.id, path: n.path, size: channelSize(d) as number | undefined };
      } finally {
        d.close();
      }
    } catch (e) {
      return { id: n.id, path: n.path, size: undefined, error: (e as Error).message };
    }
  });
  if (args.json) {
    writeJson(out, channels);
  } else if (channels.length === 0) {
    out.write(`No IPC shared-memory devices under ${args.devRoot} (baoipc<N>): the Bao IPC driver is not loaded, or no channel is described.\n`);
  } else {
    for (const c of channels) {
      out.write(c.size !== undefined ? `baoipc${c.id}  ${c.path}  read channel ${hex(c.size)} (${c.size} bytes)\n` : `baoipc${c.id}  ${c.path}  cannot open: ${c.error}\n`);
    }
  }
  return EXIT_OK;
}

export async function runIpcRead(args: IpcReadArgs, io: IpcIo = {}): Promise<number> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  const range = parseRange(args, err);
  if (range === undefined) return EXIT_USAGE;
  return withDevice(args, err, (device, size) => {
    const length = checkRange('read', range.offset, range.length, size);
    const bytes = device.read(range.offset, length);
    if (args.format === 'raw') (out as unknown as { write(b: Uint8Array): unknown }).write(bytes);
    else out.write(hexDump(bytes, range.offset));
    return EXIT_OK;
  });
}

export async function runIpcWrite(args: IpcWriteArgs, io: IpcIo = {}): Promise<number> {
  const err = io.err ?? process.stderr;
  const out = io.out ?? process.stdout;
  const offset = parseByteCount(args.offset);
  if (offset === undefined) {
    err.write(`baoctl ipc: --offset: expected a byte offset (decimal or 0x hex), got '${args.offset}'\n`);
    return EXIT_USAGE;
  }
  let data: Buffer;
  if (args.hex !== undefined) {
    const parsed = parseHexBytes(args.hex);
    if (parsed === undefined) {
      err.write(`baoctl ipc: --hex: expected hex bytes such as 'de ad be ef', got '${args.hex}'\n`);
      return EXIT_USAGE;
    }
    data = parsed;
  } else if (args.data !== undefined) {
    data = Buffer.from(args.data);
  } else {
    data = await (io.stdin ?? readStdin)();
  }
  return withDevice(args, err, (device, size) => {
    // The write channel is as large as the read one (each side's halves of the region).
    checkRange('write', offset, data.length, size);
    const n = device.write(data, offset);
    if (n !== data.length) {
      err.write(`baoctl ipc: ${device.path}: only ${n} of ${data.length} bytes were written at ${hex(offset)} (the write channel ends there)\n`);
      return EXIT_FAILURE;
    }
    out.write(`wrote ${n} bytes at ${hex(offset)} to ${device.path}\n`);
    return EXIT_OK;
  });
}

export async function runIpcWatch(args: IpcWatchArgs, io: IpcIo = {}): Promise<number> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  const sleep = io.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const range = parseRange(args, err);
  if (range === undefined) return EXIT_USAGE;
  return withDevice(args, err, async (device, size) => {
    const length = checkRange('watch', range.offset, range.length, size);
    let previous = device.read(range.offset, length);
    out.write(hexDump(previous, range.offset));
    let changes = 0;
    while (!io.signal?.aborted && (args.count === undefined || changes < args.count)) {
      await sleep(args.interval);
      const now = device.read(range.offset, length);
      for (let row = 0; row < length; row += 16) {
        const end = Math.min(row + 16, length);
        if (!now.subarray(row, end).equals(previous.subarray(row, end))) {
          out.write(`${new Date().toISOString()} changed:\n${hexDump(now.subarray(row, end), range.offset + row)}`);
          changes++;
        }
      }
      previous = now;
    }
    return EXIT_OK;
  });
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
