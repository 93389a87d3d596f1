// lib/uapi: the Bao I/O dispatcher ABI as data (ARCHITECTURE.md). Imports nothing.
export * from './constants.js';
export * from './ioc.js';
export * from './layouts.js';
export * from './revisions.js';
