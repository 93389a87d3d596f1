// lib/vmm/restart: what lets the device models' kernel objects outlive one daemon process
// (systemd's fd store, the `baoctl restart` hand-over). See kept-fds.ts.
export * from './fd-names.js';
export * from './fd-store.js';
export * from './handover.js';
export * from './kept-fds.js';
export * from './listen-fds.js';
export * from './state-hook.js';
