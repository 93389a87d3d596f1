// lib/ipc: Bao IPC shared-memory devices (/dev/baoipcN): open, pread/pwrite, mmap, listing.
export * from './errors.js';
export * from './ipc-device.js';
export * from './list.js';
