import { defineConfig } from 'vitest/config';

// Four projects, one per kind of test (ARCHITECTURE.md, test/):
// unit runs pure TypeScript, native crosses the host kernel with plain syscalls,
// qemu runs inside the Bao-equivalent guest (started by qemu/run-tests.sh, not directly),
// qemu-host runs on the host and boots a guest of its own (qemu/run.sh: a power cut, which
// only the host can inflict and judge); qemu/run-tests.sh runs it after the guest suite.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { test: { name: 'native', include: ['test/native/**/*.test.ts'], pool: 'forks' } },
      // setupFiles: each QEMU test file's own device-state directory (state-dir.ts says why).
      { test: { name: 'qemu', include: ['test/qemu/**/*.test.ts'], pool: 'forks', testTimeout: 60000, setupFiles: ['test/qemu/support/state-dir.ts'] } },
      { test: { name: 'qemu-host', include: ['test/qemu-host/**/*.test.ts'], pool: 'forks', testTimeout: 900000 } },
    ],
  },
});
