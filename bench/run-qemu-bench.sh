#!/usr/bin/env bash
# bench/run-qemu-bench.sh: the MMIO round-trip benchmark in the Bao-equivalent guest (qemu/).
# Builds what is missing (image via H2's scripts, under the same lock as run-tests.sh; our C
# responder, statically, into .cache/bench), boots the guest once with
# bench/mmio-roundtrip/job.sh, and prints, side by side from that one run, the frontend READ
# round trip through node-bao, through a minimal C ATTACH/COMPLETE loop (the floor of any
# userspace device model) and through an in-kernel ioeventfd range, with ratios.
#
# Usage: bash bench/run-qemu-bench.sh [-n <round trips per batch>] [-r <rounds>]
#                                     [-s <single-trip samples per path>] [--smp <n>]
# Defaults: -n 200 -r 25 -s 2000 --smp 1 (about 40 s of guest time under TCG). Needs `npm run build` (dist/, build/Release/bao.node).
# Output: the table on stdout; raw samples in .cache/bench/qemu/mmio-roundtrip.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

n=200
rounds=25
samples=2000
smp=1
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -s) samples=$2; shift 2 ;;
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
{ echo "BENCH_N=$n"; echo "BENCH_ROUNDS=$rounds"; echo "BENCH_SAMPLES=$samples"; cat "$here/mmio-roundtrip/job.sh"; } > "$job"

set +e
bash qemu/run.sh --name bench-mmio --quiet --smp "$smp" --timeout 600 --export-dir "$results" \
  "${tool_files[@]}" --script "$job"
rc=$?
set -e
raw="$results/mmio-roundtrip.txt"
if [ "$rc" != 0 ] || [ ! -f "$raw" ]; then
  echo "run-qemu-bench: the guest job failed ($rc); see the log under qemu/out/logs/" >&2
  exit 1
fi

accel=$(cat qemu/out/kvm-probe.* 2>/dev/null | head -n1)
echo "node-bao MMIO round trip (bao-sim dm<N>/bench, READ, 4 bytes): $(date -u +%Y-%m-%dT%H:%MZ), host $(nproc) cpus, guest ${BENCH_ACCEL:-${BAO_QEMU_ACCEL:-$accel}} smp $smp"
grep '^#' "$raw" | sed 's/^# */  /'
# Per variant: min of the minima, median of the per-measurement averages, max of the maxima.
# "avg vs C" is the median over rounds of avg(path) / avg(C floor) in the same round (range in
# brackets); "min vs C" divides the minima, the least noisy figure on a loaded host (a host
# preemption of the vCPU thread lands in some averages and in every max).
awk '
  /^sample / { s[$2] = $0; p50[$2] = $10; smin[$2] = $6; p90[$2] = $12; next }
  !/^#/ && NF == 5 { v = $1; r = $2; mn[v, r] = $3; av[v, r] = $4; mx[v, r] = $5; rounds[r] = 1; seen[v] = 1 }
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function lowest(v,   r, lo) { lo = -1; for (r in rounds) if (lo < 0 || mn[v, r] < lo) lo = mn[v, r]; return lo }
  END {
    split("node-bao c-floor in-kernel", order, " ")
    cfloor = lowest("c-floor"); kfloor = lowest("in-kernel")
    printf "\n%-10s %9s %9s %10s %8s  %-20s %9s  %-20s\n", "path", "min_ns", "avg_ns", "max_ns", "trips/s", "avg vs C floor", "min vs C", "avg vs in-kernel"
    for (k = 1; k <= 3; k++) {
      v = order[k]; if (!(v in seen)) continue
      n = 0; hi = 0
      for (r in rounds) {
        n++; A[n] = av[v, r]
        if (mx[v, r] > hi) hi = mx[v, r]
        C[n] = av[v, r] / av["c-floor", r]; K[n] = av[v, r] / av["in-kernel", r]
        if (n == 1 || C[n] < cmin) cmin = C[n]; if (n == 1 || C[n] > cmax) cmax = C[n]
        if (n == 1 || K[n] < kmin) kmin = K[n]; if (n == 1 || K[n] > kmax) kmax = K[n]
      }
      lo = lowest(v); a = median(A, n); c = median(C, n); kk = median(K, n)
      printf "%-10s %9d %9d %10d %8.0f  %-20s %8.2fx  %-20s\n", v, lo, a, hi, 1e9 / a,
        sprintf("%.2fx (%.2f..%.2f)", c, cmin, cmax), lo / cfloor, sprintf("%.1fx (%.1f..%.1f)", kk, kmin, kmax)
    }
    if (!("c-floor" in p50)) exit
    printf "\nsingle round trips, the paths alternating access by access (ns):\n"
    printf "%-10s %7s %9s %9s %9s %9s %9s %10s  %9s %9s\n", "path", "samples", "min", "p10", "p50", "p90", "p99", "max", "p50 vs C", "p90 vs C"
    order[4] = "node-alone"
    for (k = 1; k <= 4; k++) {
      v = order[k]; if (!(v in p50)) continue
      split(s[v], f, " ")
      printf "%-10s %7d %9d %9d %9d %9d %9d %10d  %8.2fx %8.2fx\n", v, f[4], f[6], f[8], f[10], f[12], f[14], f[16], p50[v] / p50["c-floor"], p90[v] / p90["c-floor"]
    }
  }' "$raw"
