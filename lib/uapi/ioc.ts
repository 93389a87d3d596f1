// The asm-generic ioctl number encoding (spec §3.2), used by arm64, arm EABI, riscv and x86_64:
// dir in bits 31..30 (WRITE = 1, READ = 2), size in bits 29..16, type in 15..8, nr in 7..0.
// Computed here so the ABI tables are data; the addon computes the same with the C macros.

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

const NRBITS = 8;
const TYPEBITS = 8;
const SIZEBITS = 14;
const NRSHIFT = 0;
const TYPESHIFT = NRSHIFT + NRBITS;
const SIZESHIFT = TYPESHIFT + TYPEBITS;
const DIRSHIFT = SIZESHIFT + SIZEBITS;

/** _IOC(dir, type, nr, size) as an unsigned 32-bit number. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  if (size < 0 || size >= 1 << SIZEBITS) throw new RangeError(`ioctl argument size ${size} does not fit in 14 bits`);
  if (type < 0 || type > 0xff || nr < 0 || nr > 0xff) throw new RangeError('ioctl type and nr are 8-bit values');
  return ((dir << DIRSHIFT) | (size << SIZESHIFT) | (type << TYPESHIFT) | (nr << NRSHIFT)) >>> 0;
}

export const io = (type: number, nr: number): number => ioc(IOC_NONE, type, nr, 0);
export const ior = (type: number, nr: number, size: number): number => ioc(IOC_READ, type, nr, size);
export const iow = (type: number, nr: number, size: number): number => ioc(IOC_WRITE, type, nr, size);
export const iowr = (type: number, nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, type, nr, size);

/** `0xC020A601` style, for tables people read. */
export function hex32(value: number): string {
  return `0x${(value >>> 0).toString(16).toUpperCase().padStart(8, '0')}`;
}
