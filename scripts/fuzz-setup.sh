#!/usr/bin/env bash
# Installs what `npm run fuzz` needs, only what is missing (safe to run again):
#   * a Debian 13 (trixie) root made with debootstrap, holding trixie's nodejs: the engine's
#     prebuilt libFuzzer addon (@jazzer.js/fuzzer) needs glibc 2.38, Debian 12 has 2.36;
#   * the engine itself (test/fuzz/engine: @jazzer.js/core, exact version, locked), installed
#     with the host's npm (the addon is N-API, so it loads in trixie's node).
# Needs root (debootstrap, chroot). Nothing else in the project uses the root or the engine.
#
# Environment: NODE_BAO_FUZZ_ROOT (default /var/cache/node-bao-fuzz/trixie),
#              NODE_BAO_FUZZ_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

root=${NODE_BAO_FUZZ_ROOT:-/var/cache/node-bao-fuzz/trixie}
mirror=${NODE_BAO_FUZZ_MIRROR:-http://deb.debian.org/debian}

if [ "$(id -u)" != 0 ]; then
  echo "fuzz-setup: run as root (debootstrap and chroot need it)" >&2
  exit 1
fi

if [ ! -x "$root/usr/bin/node" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "== apt-get install debootstrap"
    apt-get install -y debootstrap || { apt-get update && apt-get install -y debootstrap; }
  fi
  echo "== debootstrap trixie into $root (a few minutes, once)"
  rm -rf "$root.tmp"
  mkdir -p "$(dirname "$root")"
  debootstrap --variant=minbase --include=nodejs trixie "$root.tmp" "$mirror"
  mv "$root.tmp" "$root"
fi

engine=test/fuzz/engine
if [ ! -f "$engine/node_modules/@jazzer.js/core/dist/cli.js" ]; then
  echo "== npm install of the fuzzing engine ($engine)"
  (cd "$engine" && npm ci --no-audit --no-fund)
fi
