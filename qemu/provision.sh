#!/usr/bin/env bash
# Provisioning of the Bao-equivalent test machine (ARCHITECTURE.md, "The Bao-equivalent test machine"):
# installs, only when missing, QEMU for x86_64, busybox, cpio, kmod, xz and the headers of the
# CURRENT Debian kernel, and unpacks that kernel's image (never installed system-wide: the
# package drags in initramfs-tools and udev) into qemu/out/kernel/<version>/, where it also
# extracts the ELF vmlinux from the bzImage (PVH boot, ~3.5 s faster under TCG,
# shared/docs/test-machine-notes.md). Idempotent: a second run does nothing.
#
# Prints the kernel version on its last line ("kernel-version: <ver>") and records it in
# qemu/out/kernel/current. Not root and something missing: says what to run, exits 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/out"
mkdir -p "$out/kernel"

log() { printf 'provision: %s\n' "$*" >&2; }

is_root() { [ "$(id -u)" = 0 ]; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

updated=0
apt_update_once() {
  if [ "$updated" = 0 ]; then
    log "apt-get update"
    apt-get update -qq >&2
    updated=1
  fi
}

# The kernel flavour package names the current ABI version: linux-image-amd64 depends on
# linux-image-<ver>-amd64. Resolved at run time: Debian moves it with every point release.
resolve_kernel() {
  local dep
  dep=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -n1 || true)
  if [ -z "$dep" ] && is_root; then
    apt_update_once
    dep=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -n1 || true)
  fi
  if [ -z "$dep" ]; then
    log "cannot resolve the current Debian kernel (apt-cache depends linux-image-amd64 gave nothing)"
    log "run as root: apt-get update"
    exit 1
  fi
  printf '%s\n' "$dep"
}

kver=$(resolve_kernel)
log "current Debian kernel: $kver"

# Packages installed system-wide (the kernel image is not one of them).
want=(qemu-system-x86 busybox-static cpio kmod xz-utils make gcc binutils "linux-headers-$kver")
# Guest tools copied into the image (qemu/build-image.sh): e2fsprogs for the block tests, ip for
# network namespaces, iperf3 for bench/net, ethtool for the net tests (queue pairs).
want+=(e2fsprogs iproute2 iperf3 ethtool)
# fio for bench/blk (shipped into the guest's job layer by bench/blk/run.sh, not the image).
want+=(fio)
# virtiofsd, the vhost-user backend of the fs tests: its own package where Debian has one (13+),
# else the one qemu-system-common ships (Debian 12, /usr/lib/qemu/virtiofsd).
if apt-cache show virtiofsd >/dev/null 2>&1; then want+=(virtiofsd); else want+=(qemu-system-common); fi
missing=()
for p in "${want[@]}"; do have_pkg "$p" || missing+=("$p"); done

if [ "${#missing[@]}" -gt 0 ]; then
  if ! is_root; then
    log "missing packages: ${missing[*]}"
    log "run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  # A package unknown to the current lists means the lists are stale: update once, then install.
  for p in "${missing[@]}"; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then apt_update_once; break; fi
  done
  log "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The kernel image: apt-get download + dpkg-deb -x into the cache, then vmlinux extraction.
kdir="$out/kernel/$kver"
if [ ! -f "$kdir/vmlinux" ] || [ ! -d "$kdir/root/lib/modules/$kver" ]; then
  rm -rf "$kdir.tmp"
  mkdir -p "$kdir.tmp/deb"
  log "fetching linux-image-$kver (apt-get download, unpacked into $kdir)"
  (cd "$kdir.tmp/deb" && apt-get download -qq "linux-image-$kver" >&2) || {
    if is_root; then apt_update_once; (cd "$kdir.tmp/deb" && apt-get download -qq "linux-image-$kver" >&2)
    else log "apt-get download linux-image-$kver failed; run as root: apt-get update"; exit 1; fi
  }
  dpkg-deb -x "$kdir.tmp"/deb/linux-image-*.deb "$kdir.tmp/root"
  rm -rf "$kdir.tmp/deb"
  bz="$kdir.tmp/root/boot/vmlinuz-$kver"
  # The bzImage carries the ELF kernel as an XZ stream: find its magic and decompress it
  # (xz stops at the end of the stream and complains about the trailing bytes: expected).
  off=$(grep -abo $'\xfd7zXZ\x00' "$bz" | head -n1 | cut -d: -f1)
  [ -n "$off" ] || { log "no XZ payload in $bz"; exit 1; }
  tail -c "+$((off + 1))" "$bz" | xz -dc 2>/dev/null > "$kdir.tmp/vmlinux" || true
  if ! head -c 4 "$kdir.tmp/vmlinux" | grep -q $'\x7fELF'; then
    log "vmlinux extraction failed; falling back to the bzImage"
    cp "$bz" "$kdir.tmp/vmlinux.bz"
  fi
  rm -rf "$kdir"
  mv "$kdir.tmp" "$kdir"
fi
echo "$kver" > "$out/kernel/current"

if [ ! -d "/lib/modules/$kver/build" ]; then
  log "/lib/modules/$kver/build is missing although linux-headers-$kver is installed"
  exit 1
fi
echo "kernel-version: $kver"
