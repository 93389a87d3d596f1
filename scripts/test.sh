#!/usr/bin/env bash
# The test command of the README and of CI: sets everything up, then runs every suite:
# type checks, unit tests (pure TypeScript), native tests (real syscalls on this host),
# the prebuilds for every target with their ELF checks, and the QEMU suite in which the
# Bao devices are exercised for real (in the guest, and from the host for what only the host can
# do to the guest, such as cutting its power). Ends with one "N passed, N failed, N skipped" line.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

results=.cache/test-results
rm -rf "$results"
mkdir -p "$results"

status=0
step() { printf '\n== %s\n' "$*"; }

step "Type check"
npx tsc -p tsconfig.json --noEmit || status=1

step "Prebuilds (linux-x64, then arm64, armv7 and riscv64 cross-built)"
npm run --silent build:prebuilds || status=1
npm run --silent build:prebuilds:cross || status=1

step "Unit and native tests"
npx vitest run --project unit --project native \
  --reporter=default --reporter=json --outputFile.json="$results/host.json" || status=1

step "QEMU tests (Bao-equivalent machine)"
RESULTS_JSON="$results/qemu.json" RESULTS_HOST_JSON="$results/qemu-host.json" npm run --silent test:qemu || status=1

step "Summary"
node scripts/summarize-results.mjs "$results/host.json" "$results/qemu.json" "$results/qemu-host.json" || status=1
exit "$status"
