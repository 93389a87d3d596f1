#!/usr/bin/env bash
# Runner of the Bao-equivalent guest: boots the Debian kernel (PVH vmlinux) with the layers
# built by qemu/build-image.sh plus a per-run job layer holding /job.sh, under
# qemu-system-x86_64 (TCG; KVM only when a cached probe boot proved it works), streams the guest
# console, enforces a timeout, leaves a log under qemu/out/logs/ and exits with the guest job's
# status (parsed from the "BAO-QEMU-RESULT: <rc>" marker; QEMU's own status means nothing).
#
# Usage: qemu/run.sh [options] -- <shell command run in the guest, in /project>
#        qemu/run.sh [options] --script <file>      (a shell script copied in as /job.sh)
# Options:
#   --timeout <s>        whole-run limit (default 600); on expiry exit 124
#   --mem <size>         guest RAM (default 2G)
#   --smp <n>            vCPUs (default 1; more does not help on a 2-core host under TCG)
#   --export-dir <dir>   save files the job prints with `bao-export <file>` into <dir>
#   --file <host>:<guest> add a host file to the job layer (repeatable)
#   --qemu-arg <arg>     extra QEMU argument (repeatable), e.g. a -netdev for later tests
#   --disk <file>[,serial=<s>][,cache=<mode>]
#                        a raw image file as a virtio-blk PCI disk (repeatable; the guest's
#                        virtio_pci and virtio_blk modules drive it, /sys/block/vdX/serial names
#                        it). cache: QEMU's cache mode, default none: the host's page cache is
#                        bypassed (O_DIRECT, so the file's filesystem must take it: not tmpfs),
#                        the guest sees a disk with a write cache, and its flushes are synced
#                        to the host's disk
#   --power-cut <marker> kill QEMU with SIGKILL the moment the console prints <marker>: a power
#                        cut, after which the disks hold only what QEMU had written to them
#                        (the guest job prints the marker, then waits to be cut)
#   --name <name>        log name (default run)
#   --quiet              do not stream the console (the log still has it)
# Environment: BAO_QEMU_ACCEL=tcg|kvm forces the accelerator (skips the probe);
#   BAO_QEMU_APPEND adds kernel command-line words (e.g. loglevel=7 for debugging).
# Exit: the guest's status; 124 timeout; 125 no result marker (guest crashed/panicked); 2 usage.
#   With --power-cut: 0 when the power was cut at the marker; else as above (the marker never
#   came: the guest's status if it failed, 125 if it ended without printing the marker).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/out"
img="$out/image"

timeout_s=600
mem=2G
smp=1
export_dir=""
name=run
quiet=0
script=""
files=()
qemu_extra=()
disks=()
cut_marker=""
cmd=""
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout_s=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --export-dir) export_dir=$2; shift 2 ;;
    --file) files+=("$2"); shift 2 ;;
    --qemu-arg) qemu_extra+=("$2"); shift 2 ;;
    --disk) disks+=("$2"); shift 2 ;;
    --power-cut) cut_marker=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --quiet) quiet=1; shift ;;
    --script) script=$2; shift 2 ;;
    --) shift; cmd="$*"; break ;;
    *) echo "run.sh: unknown argument '$1' (see the header of qemu/run.sh)" >&2; exit 2 ;;
  esac
done
[ -n "$cmd" ] || [ -n "$script" ] || { echo "run.sh: nothing to run (-- <command> or --script <file>)" >&2; exit 2; }

# ---- extra disks: -drive (the backing, QEMU's cache mode) + a virtio-blk PCI device (serial)
n=0
for spec in "${disks[@]+"${disks[@]}"}"; do
  file=${spec%%,*}
  serial="disk$n"
  cache=none
  opts=${spec#"$file"}
  IFS=, read -r -a kvs <<< "${opts#,}"
  for kv in "${kvs[@]+"${kvs[@]}"}"; do
    case "$kv" in
      serial=*) serial=${kv#serial=} ;;
      cache=*) cache=${kv#cache=} ;;
      *) echo "run.sh: --disk $spec: unknown option '$kv' (serial=<s>, cache=<mode>)" >&2; exit 2 ;;
    esac
  done
  [ -f "$file" ] || { echo "run.sh: --disk $spec: no such image file '$file' (make it first, e.g. truncate -s 64M <file>)" >&2; exit 2; }
  case "$cache" in
    none|directsync)
      # Opened with O_DIRECT by QEMU; tmpfs (and some others) refuse it: say so before booting.
      dd if=/dev/null of="$file" oflag=direct conv=notrunc status=none 2>/dev/null || {
        echo "run.sh: --disk $spec: the filesystem of '$file' does not take O_DIRECT, which cache=$cache needs (tmpfs?): put the image on a disk-backed filesystem" >&2
        exit 2
      }
      ;;
    writeback|writethrough|unsafe) ;;
    *) echo "run.sh: --disk $spec: cache must be none, directsync, writethrough, writeback or unsafe" >&2; exit 2 ;;
  esac
  qemu_extra+=(-drive "file=$file,if=none,id=disk$n,format=raw,cache=$cache" -device "virtio-blk-pci,drive=disk$n,serial=$serial")
  n=$((n + 1))
done

kver=$(cat "$img/kernel-version" 2>/dev/null) || { echo "run.sh: no image; run qemu/build-image.sh" >&2; exit 2; }
kdir="$out/kernel/$kver"
kernel="$kdir/vmlinux"
[ -f "$kernel" ] || kernel="$kdir/vmlinux.bz"
mkdir -p "$out/logs" "$out/tmp"
stamp=$(date +%Y%m%d-%H%M%S)
logf="$out/logs/$stamp-$name.log"
work=$(mktemp -d "$out/tmp/run.XXXXXX")
qpid=""
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---- the job layer
mkdir -p "$work/job"
if [ -n "$script" ]; then
  cp "$script" "$work/job/job.sh"
else
  printf '%s\n' "$cmd" > "$work/job/job.sh"
fi
for spec in "${files[@]+"${files[@]}"}"; do
  src=${spec%%:*}; dst=${spec#*:}
  mkdir -p "$work/job$(dirname "$dst")"
  cp "$src" "$work/job$dst"
done
(cd "$work/job" && find . -mindepth 1 | cpio -o -H newc --quiet) > "$work/job.cpio"
cat "$img/base.cpio" "$img/modules.cpio" "$img/project.cpio" "$work/job.cpio" > "$work/initrd.cpio"

# ---- accelerator: KVM only if a short probe boot (cached per kernel) reached the marker
accel=${BAO_QEMU_ACCEL:-}
if [ -z "$accel" ]; then
  probe="$out/kvm-probe.$kver"
  if [ ! -f "$probe" ]; then
    result=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
      mkdir -p "$work/probe"
      printf 'true\n' > "$work/probe/job.sh"
      (cd "$work/probe" && find . -mindepth 1 | cpio -o -H newc --quiet) > "$work/probe.cpio"
      cat "$img/base.cpio" "$work/probe.cpio" > "$work/probe-initrd.cpio"
      if timeout 20 qemu-system-x86_64 -accel kvm -cpu host -smp 1 -m 512M -nographic -no-reboot \
          -nic none -kernel "$kernel" -initrd "$work/probe-initrd.cpio" \
          -append "console=ttyS0 quiet panic=-1" </dev/null 2>&1 | grep -q 'BAO-QEMU-RESULT: 0'; then
        result=kvm
      fi
      rm -f "$work/probe-initrd.cpio"
    fi
    echo "$result" > "$probe"
  fi
  accel=$(cat "$probe")
fi
cpu=max
[ "$accel" = kvm ] && cpu=host
base_args=(-accel "$accel" -cpu "$cpu" -smp "$smp" -m "$mem" -nographic -no-reboot -nic none
  -pidfile "$work/qemu.pid"
  -kernel "$kernel" -append "console=ttyS0 quiet loglevel=3 panic=-1 ${BAO_QEMU_APPEND:-}")

# ---- the console stream: logged, watched for the power-cut marker, shown unless --quiet
power_cut() {
  if [ -z "$cut_marker" ]; then cat; return; fi
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line"
    if [ ! -e "$work/cut" ] && [[ $line == *"$cut_marker"* ]]; then
      kill -KILL "$(cat "$work/qemu.pid")" && date +%s.%N > "$work/cut"
    fi
  done
}
show() {
  if [ "$quiet" = 1 ]; then cat > /dev/null; else sed -u -n '/BAO-QEMU-FILE-BEGIN/,/BAO-QEMU-FILE-END/!p'; fi
}

# ---- boot
echo "run.sh: booting ($accel, $mem, timeout ${timeout_s}s), log $logf" >&2
start=$(date +%s.%N)
set +e
timeout --foreground -k 5 "$timeout_s" qemu-system-x86_64 "${base_args[@]}" \
  -initrd "$work/initrd.cpio" "${qemu_extra[@]+"${qemu_extra[@]}"}" </dev/null 2>&1 \
  | sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' | tee "$logf" | power_cut | show
qrc=${PIPESTATUS[0]}
set -e
elapsed=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo "?")

# ---- exported files
if [ -n "$export_dir" ]; then
  mkdir -p "$export_dir"
  awk -v dir="$export_dir" '
    /BAO-QEMU-FILE-BEGIN / { sub(/.*BAO-QEMU-FILE-BEGIN /, ""); name = $1; file = dir "/" name ".b64"; printf "" > file; on = 1; next }
    /BAO-QEMU-FILE-END / { on = 0; close(file); next }
    on && /^[A-Za-z0-9+\/=]+$/ { print >> file }
  ' "$logf"
  for b in "$export_dir"/*.b64; do
    [ -e "$b" ] || continue
    base64 -d "$b" > "${b%.b64}" 2>/dev/null || echo "run.sh: could not decode $(basename "$b")" >&2
    rm -f "$b"
  done
fi

if [ -e "$work/cut" ]; then
  echo "run.sh: power cut: QEMU killed when the console printed '$cut_marker', ${elapsed}s after QEMU started (log $logf)" >&2
  exit 0
fi
marker=$(grep -ao 'BAO-QEMU-RESULT: [0-9]*' "$logf" | tail -n1 | awk '{print $2}')
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  echo "run.sh: TIMEOUT after ${timeout_s}s (log $logf)" >&2
  exit 124
fi
if [ -z "$marker" ]; then
  echo "run.sh: the guest ended without a result marker (crash or panic?), log $logf" >&2
  exit 125
fi
if [ -n "$cut_marker" ]; then
  echo "run.sh: the guest ended (status $marker) without printing the power-cut marker '$cut_marker', log $logf" >&2
  [ "$marker" != 0 ] && exit "$marker"
  exit 125
fi
echo "run.sh: guest exit status $marker in ${elapsed}s (log $logf)" >&2
exit "$marker"
