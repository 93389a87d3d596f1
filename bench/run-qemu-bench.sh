#!/usr/bin/env bash
# bench/run-qemu-bench.sh: the MMIO round-trip and idle benchmarks in the Bao-equivalent guest
# (qemu/). Builds what is missing (image via the qemu/ scripts, under the same lock as
# run-tests.sh; our two C tools, statically, into .cache/bench), boots the guest once with
# bench/mmio-roundtrip/job.sh, and prints, side by side from that one run, per register class,
# single frontend round trips through node-bao (hot registers in the ATTACH thread), through
# node-bao with every access in JS, and through a minimal C ATTACH/COMPLETE loop (the floor of any
# userspace device model), with min/p50/p90 ratios; then 16 idle device models' CPU and RSS.
#
# Usage: bash bench/run-qemu-bench.sh [-s <samples per path and class>] [--idle <seconds>, 0: skip]
#                                     [--smp <n>]
# Defaults: -s 1000 --idle 60 --smp 2 (about 3 minutes under TCG). Needs `npm run build`.
# Output: the tables on stdout; raw samples in .cache/bench/qemu/mmio-roundtrip.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

samples=1000
idle=60
smp=2
while [ $# -gt 0 ]; do
  case "$1" in
    -s) samples=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    *) echo "run-qemu-bench: unknown argument '$1' (see the header)" >&2; exit 2 ;;
  esac
done

for need in dist build/Release/bao.node; do
  [ -e "$need" ] || { echo "run-qemu-bench: $need is missing: run 'npm run build' first" >&2; exit 1; }
done

cache="$repo/.cache/bench"
mkdir -p "$cache" "$repo/qemu/out"
(
  flock 9
  bash qemu/provision.sh >/dev/null
  make -s -C qemu/bao-sim >/dev/null
  bash qemu/build-image.sh
) 9>"$repo/qemu/out/.build.lock"

# Our two guest tools (qemu/tools), static like bao-attach-once; shipped in the job layer.
tool_files=()
for tool in bao-bench-responder bao-bench-sample; do
  src="$repo/qemu/tools/$tool.c"
  if [ ! -f "$cache/$tool" ] || [ "$src" -nt "$cache/$tool" ]; then
    gcc -O2 -static -Wall -o "$cache/$tool" "$src"
  fi
  tool_files+=(--file "$cache/$tool:/usr/bin/$tool")
done

results="$cache/qemu"
rm -rf "$results"
mkdir -p "$results"
job=$(mktemp)
trap 'rm -f "$job"' EXIT
{ echo "BENCH_SAMPLES=$samples"; echo "BENCH_IDLE_S=$idle"; cat "$here/mmio-roundtrip/job.sh"; } > "$job"

set +e
bash qemu/run.sh --name bench-mmio --quiet --smp "$smp" --timeout 900 --export-dir "$results" \
  "${tool_files[@]}" --script "$job"
rc=$?
set -e
raw="$results/mmio-roundtrip.txt"
if [ "$rc" != 0 ] || [ ! -f "$raw" ]; then
  echo "run-qemu-bench: the guest job failed ($rc); see the log under qemu/out/logs/" >&2
  exit 1
fi

accel=$(cat qemu/out/kvm-probe.* 2>/dev/null | head -n1)
echo "node-bao MMIO round trips (bao-sim dm<N>/bench, count 1, 4 bytes): $(date -u +%Y-%m-%dT%H:%MZ), host $(nproc) cpus, guest ${BENCH_ACCEL:-${BAO_QEMU_ACCEL:-$accel}} smp $smp"
grep '^#' "$raw" | grep -v '^# closed' | sed 's/^# */  /'
# sample <class> <label> n N min X p10 X p50 X p90 X p99 X max X
awk '
  /^sample / {
    c = $2; l = $3; key = c SUBSEP l
    mn[key] = $7; p50[key] = $11; p90[key] = $13; p99[key] = $15
    if (!(c in seenc)) { seenc[c] = 1; classes[++nc] = c }
  }
  /^idle / { idle[++ni] = $0 }
  END {
    printf "\n%-15s %-9s %8s %8s %8s %8s   %-24s %-24s\n", "class", "path", "min_us", "p50_us", "p90_us", "p99_us", "vs C floor min/p50/p90", "vs all-JS min/p50/p90"
    split("node-bao node-js c-floor", order, " ")
    for (i = 1; i <= nc; i++) {
      c = classes[i]; f = c SUBSEP "c-floor"; j = c SUBSEP "node-js"
      for (k = 1; k <= 3; k++) {
        key = c SUBSEP order[k]; if (!(key in mn)) continue
        printf "%-15s %-9s %8.1f %8.1f %8.1f %8.1f   %-24s %-24s\n", (k == 1 ? c : ""), order[k], mn[key] / 1000, p50[key] / 1000, p90[key] / 1000, p99[key] / 1000,
          sprintf("%.2fx %.2fx %.2fx", mn[key] / mn[f], p50[key] / p50[f], p90[key] / p90[f]),
          (k == 1 ? sprintf("%.2fx %.2fx %.2fx", mn[key] / mn[j], p50[key] / p50[j], p90[key] / p90[j]) : "")
      }
    }
    for (i = 1; i <= ni; i++) {
      split(idle[i], w, " ")
      printf "%sidle window %d: %d device models, watchdog on, %d s: %s s CPU (a bare node: %s s), RSS %.1f MB, %d threads\n", (i == 1 ? "\n" : ""), w[15], w[3], w[5], w[7], w[13], w[9] / 1024, w[11]
    }
  }' "$raw"
