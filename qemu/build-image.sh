#!/usr/bin/env bash
# Image builder of the Bao-equivalent guest: an uncompressed initramfs made of concatenated cpio
# layers, each rebuilt only when its inputs changed (the kernel unpacks concatenated archives
# in order):
#   base.cpio     busybox, /init, the host's node (stripped) and its ldd libraries
#   modules.cpio  the kernel's virtio/vsock modules (virtio_pci too, for the disks of run.sh
#                 --disk), bao_sim.ko (extra/), modules.dep and /usr/bin/bao-attach-once, bao-vsock and bao-bench-responder (qemu/tools)
#   project.cpio  /project: package.json, configs, dist/, build/Release/*.node, lib/, test/,
#                 bin/ and the node_modules needed at run time plus vitest (typescript,
#                 node-gyp and type packages left out)
# Output: qemu/out/image/{base,modules,project}.cpio; qemu/run.sh appends the per-run job layer.
# Needs qemu/provision.sh (kernel unpacked) and the module built (make -C qemu/bao-sim).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out="$here/out"
img="$out/image"
stage="$out/stage"
mkdir -p "$img" "$stage"
log() { printf 'build-image: %s\n' "$*" >&2; }

kver=$(cat "$out/kernel/current" 2>/dev/null) || { log "run qemu/provision.sh first"; exit 1; }
kroot="$out/kernel/$kver/root"
ko="$out/bao-sim/bao_sim.ko"
[ -f "$ko" ] || { log "bao_sim.ko missing: make -C qemu/bao-sim"; exit 1; }

# newer OUT INPUT...: true when OUT is missing or older than any input file.
stale() {
  local o=$1; shift
  [ -f "$o" ] || return 0
  [ -n "$(find "$@" -newer "$o" -print -quit 2>/dev/null)" ]
}

mkcpio() { # mkcpio DIR OUT
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) > "$2.tmp"
  mv "$2.tmp" "$2"
}

# ---- base layer
node_bin=$(readlink -f "$(command -v node)")
busybox_bin=$(command -v busybox || echo /bin/busybox)
if stale "$img/base.cpio" "$node_bin" "$busybox_bin" "$here/guest" "$0"; then
  log "base layer (busybox, node, libraries)"
  d="$stage/base"
  rm -rf "$d"
  mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,lib64,project}
  cp "$busybox_bin" "$d/bin/busybox"
  install -m 0755 "$here/guest/init" "$d/init"
  install -m 0755 "$here/guest/bao-export" "$d/bin/bao-export"
  install -m 0755 "$here/guest/bao-cpu-split" "$d/bin/bao-cpu-split"
  strip -o "$d/usr/bin/node" "$node_bin"
  ln -s node "$d/usr/bin/nodejs"
  for lib in $(ldd "$node_bin" | awk '/=>/ {print $3} !/=>/ && /^\t\// {print $1}'); do
    mkdir -p "$d$(dirname "$lib")"
    cp -L "$lib" "$d$lib"
  done
  # The dynamic loader path node was linked against, plus libraries addons commonly use.
  for lib in /lib/x86_64-linux-gnu/libresolv.so.2 /lib/x86_64-linux-gnu/libnss_files.so.2; do
    [ -f "$lib" ] && { mkdir -p "$d$(dirname "$lib")"; cp -L "$lib" "$d$lib"; }
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$d/etc/passwd"
  printf 'root:x:0:\n' > "$d/etc/group"
  printf '127.0.0.1 localhost bao-guest\n::1 localhost\n' > "$d/etc/hosts"
  printf 'hosts: files\n' > "$d/etc/nsswitch.conf"
  mkcpio "$d" "$img/base.cpio"
  rm -rf "$d"
fi

# ---- modules layer
kmods=(drivers/virtio/virtio.ko drivers/virtio/virtio_ring.ko drivers/block/virtio_blk.ko drivers/block/loop.ko
  drivers/virtio/virtio_pci.ko drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko
  drivers/net/virtio_net.ko drivers/net/net_failover.ko net/core/failover.ko
  drivers/char/virtio_console.ko drivers/char/hw_random/virtio-rng.ko
  net/vmw_vsock/vsock.ko net/vmw_vsock/vmw_vsock_virtio_transport.ko
  net/vmw_vsock/vmw_vsock_virtio_transport_common.ko drivers/char/hw_random/rng-core.ko
  fs/ext4/ext4.ko fs/jbd2/jbd2.ko fs/mbcache.ko lib/crc16.ko crypto/crc32c_generic.ko
  drivers/net/tun.ko drivers/net/veth.ko
  fs/fuse/fuse.ko fs/fuse/virtiofs.ko
  drivers/vhost/vhost.ko drivers/vhost/vhost_iotlb.ko drivers/vhost/vhost_vsock.ko drivers/vhost/vhost_net.ko drivers/net/tap.ko)
# Debian tools the tests run in the guest, with their ldd libraries: e2fsprogs for the block tests
# (busybox's mke2fs makes ext2 only), ip and iperf3 for the net tests. Each is installed at its own
# path and linked from /usr/local/bin; tests call them by path because busybox's applets of the
# same names come first in PATH.
guest_tools=(/usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/ip /usr/bin/iperf3 /usr/sbin/ethtool)
# vhost-user backends the tests run in the guest: virtiofsd (Debian's virtiofsd package, or the
# one qemu-system-common ships on Debian 12), installed as /usr/libexec/virtiofsd.
virtiofsd_bin=""
for c in /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd; do [ -x "$c" ] && { virtiofsd_bin=$c; break; }; done
[ -n "$virtiofsd_bin" ] || log "note: no virtiofsd on this machine (qemu/provision.sh installs it); the vhost-user fs test will fail"
# Our test tools (static, so they need nothing from the image): bao-attach-once, bao-vsock, and
# bao-bench-responder, the C floor of a device model (the hostile suite's control,
# test/qemu/hostile/support/canary.ts).
static_tool() {
  local bin="$out/tools/$1"
  if stale "$bin" "$here/tools/$1.c"; then
    mkdir -p "$out/tools"
    gcc -O2 -static -Wall -o "$bin" "$here/tools/$1.c"
  fi
  printf '%s' "$bin"
}
tool=$(static_tool bao-attach-once)
vsock_tool=$(static_tool bao-vsock)
responder_tool=$(static_tool bao-bench-responder)
if stale "$img/modules.cpio" "$ko" "$tool" "$vsock_tool" "$responder_tool" "$0" "${guest_tools[@]}" ${virtiofsd_bin:+"$virtiofsd_bin"}; then
  log "modules layer (virtio drivers, bao_sim.ko, depmod)"
  d="$stage/modules"
  rm -rf "$d"
  mdir="$d/lib/modules/$kver"
  mkdir -p "$mdir/extra"
  for m in "${kmods[@]}"; do
    src="$kroot/lib/modules/$kver/kernel/$m"
    if [ -f "$src" ]; then
      mkdir -p "$mdir/kernel/$(dirname "$m")"
      cp "$src" "$mdir/kernel/$m"
    else
      log "note: $m not in this kernel (built in or absent)"
    fi
  done
  cp "$kroot/lib/modules/$kver/modules.builtin"* "$mdir/" 2>/dev/null || true
  cp "$ko" "$mdir/extra/"
  mkdir -p "$d/usr/bin" "$d/usr/sbin" "$d/usr/local/bin"
  cp "$tool" "$vsock_tool" "$responder_tool" "$d/usr/bin/"
  for t in "${guest_tools[@]}"; do
    [ -x "$t" ] || { log "$t missing: run qemu/provision.sh (e2fsprogs, iproute2, iperf3, ethtool)"; exit 1; }
    mkdir -p "$d$(dirname "$t")"
    cp -L "$t" "$d$t"
    ln -sf "$t" "$d/usr/local/bin/$(basename "$t")"
    for lib in $(ldd "$t" | awk '/=>/ && $3 ~ /^\// {print $3}'); do
      [ -e "$d$lib" ] || { mkdir -p "$d$(dirname "$lib")"; cp -L "$lib" "$d$lib"; }
    done
  done
  ln -sf mke2fs "$d/usr/sbin/mkfs.ext4"
  if [ -n "$virtiofsd_bin" ]; then
    mkdir -p "$d/usr/libexec"
    cp "$virtiofsd_bin" "$d/usr/libexec/virtiofsd"
    for lib in $(ldd "$virtiofsd_bin" | awk '/=>/ && $3 ~ /^\// {print $3}'); do
      [ -e "$d$lib" ] || { mkdir -p "$d$(dirname "$lib")"; cp -L "$lib" "$d$lib"; }
    done
  fi
  "$busybox_bin" depmod -b "$d" "$kver"
  mkcpio "$d" "$img/modules.cpio"
  rm -rf "$d"
fi

# ---- project layer (hard links: fast, no copies)
for need in dist build/Release/bao.node; do
  [ -e "$repo/$need" ] || { log "$need is missing: run 'npm run build' first"; exit 1; }
done
proj_inputs=("$repo/package.json" "$repo/vitest.config.ts" "$repo/dist" "$repo/build/Release"
  "$repo/lib" "$repo/test" "$repo/node_modules/.package-lock.json")
[ -d "$repo/bin" ] && proj_inputs+=("$repo/bin")
[ -d "$repo/scripts/guest" ] && proj_inputs+=("$repo/scripts/guest")
if stale "$img/project.cpio" "${proj_inputs[@]}"; then
  log "project layer"
  d="$stage/project"
  rm -rf "$d"
  mkdir -p "$d/project/build/Release" "$d/project/node_modules"
  for f in package.json vitest.config.ts tsconfig.json tsconfig.build.json; do
    [ -f "$repo/$f" ] && cp -l "$repo/$f" "$d/project/"
  done
  for dir in dist lib test bin; do
    [ -d "$repo/$dir" ] && cp -al "$repo/$dir" "$d/project/"
  done
  # Programs the stress and soak scripts run in the guest.
  [ -d "$repo/scripts/guest" ] && mkdir -p "$d/project/scripts" && cp -al "$repo/scripts/guest" "$d/project/scripts/"
  cp -l "$repo"/build/Release/*.node "$d/project/build/Release/"
  (cd "$repo/node_modules" && for e in * .bin .package-lock.json; do
    case "$e" in
      typescript|node-gyp|prebuildify|@types|tar|'*') ;;
      *) [ -e "$e" ] && cp -al "$e" "$d/project/node_modules/" ;;
    esac
  done)
  # Shared libraries of the native addons (rollup's, ours) that node itself does not pull in.
  find "$d/project" -name '*.node' -type f | while read -r nodefile; do
    for lib in $(ldd "$nodefile" 2>/dev/null | awk '/=>/ && $3 ~ /^\// {print $3}'); do
      [ -e "$d$lib" ] || { mkdir -p "$d$(dirname "$lib")"; cp -L "$lib" "$d$lib"; }
    done
  done
  mkcpio "$d" "$img/project.cpio"
  rm -rf "$d"
fi
echo "$kver" > "$img/kernel-version"
ls -la "$img"/*.cpio | awk '{printf "build-image: %s %d MB\n", $9, $5/1048576}' >&2
