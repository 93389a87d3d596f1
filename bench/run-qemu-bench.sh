#!/usr/bin/env bash
# bench/run-qemu-bench.sh: the request-path benchmarks in the Bao-equivalent guest (qemu/). Builds
# what is missing (image via the qemu/ scripts, under the same lock as run-tests.sh; our C tools,
# statically, into .cache/bench), boots the guest once with bench/mmio-roundtrip/job.sh, and
# prints, side by side from that one run:
#   mmio  per register class, single frontend round trips through node-bao (hot registers in the
#         ATTACH thread), through node-bao with every access in JS, and through a minimal C
#         ATTACH/COMPLETE loop (the floor of any userspace device model), min/p50/p90 ratios; and
#         where node-bao's cold accesses spend their time (hand-off to JS, the JS turn);
#   qd1   completions per second of the guest's virtio_rng at queue depth 1, node-bao against a
#         minimal C virtio-rng device model (qemu/tools/bao-bench-rng), rounds interleaved;
#   par   four device models in one node-bao, 1, 2 or 4 of them busy at once with trapped
#         accesses (hot and cold), total and per-device rates;
#   idle  16 idle device models' CPU and RSS, without drivers and with 16 guest drivers bound;
#   diag  (only when named) clock source, page-table isolation, context switches and syscalls
#         (strace, shipped from the host) per access, node-bao's JS path against the C floor.
#
# Usage: bash bench/run-qemu-bench.sh [-s <samples per path and class>] [--idle <seconds>, 0: skip]
#                                     [--smp <n>] [--parts "mmio qd1 par idle diag"] [--round <s>]
# Defaults: -s 1000 --idle 60 --smp 2, all parts, 4 s rounds (about 12 minutes under TCG: run
# the parts in two boots on a shared machine, e.g. --parts "mmio qd1 par" then --parts idle).
# Needs `npm run build`.
# Output: the tables on stdout; raw samples in .cache/bench/qemu/mmio-roundtrip.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

samples=1000
idle=60
smp=2
parts="mmio qd1 par idle"
round_s=4
while [ $# -gt 0 ]; do
  case "$1" in
    -s) samples=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --parts) parts=$2; shift 2 ;;
    --round) round_s=$2; shift 2 ;;
    *) echo "run-qemu-bench: unknown argument '$1' (see the header)" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/qemu-common.sh
. "$here/qemu-common.sh"
bench_prepare run-qemu-bench
cache="$repo/.cache/bench"
mkdir -p "$cache"

# Our guest tools (qemu/tools), static like bao-attach-once; shipped in the job layer.
tool_files=()
for tool in bao-bench-responder bao-bench-sample bao-bench-rng; do
  src="$repo/qemu/tools/$tool.c"
  if [ ! -f "$cache/$tool" ] || [ "$src" -nt "$cache/$tool" ]; then
    gcc -O2 -static -Wall -o "$cache/$tool" "$src" -lpthread
  fi
  tool_files+=(--file "$cache/$tool:/usr/bin/$tool")
done

# The diag part counts syscalls with strace when the host has it: shipped with its libraries.
case " $parts " in *" diag "*)
  if st=$(command -v strace); then
    tool_files+=(--file "$st:/usr/bin/strace")
    for lib in $(ldd "$st" | awk '/=>/ && $3 ~ /^\// {print $3}'); do tool_files+=(--file "$(readlink -f "$lib"):$lib"); done
  fi ;;
esac

results="$cache/qemu"
rm -rf "$results"
mkdir -p "$results"
job=$(mktemp)
trap 'rm -f "$job"' EXIT
{ echo "BENCH_SAMPLES=$samples"; echo "BENCH_IDLE_S=$idle"; echo "BENCH_PARTS='$parts'"; echo "BENCH_ROUND_S=$round_s"; cat "$here/mmio-roundtrip/job.sh"; } > "$job"

set +e
# The guest's time limit: 10 minutes, plus the idle part's four windows and up to five minutes
# for its 16 guest drivers to bind (they took 6-7 s on 2026-12-04).
timeout=600
case " $parts " in *" idle "*) timeout=$((timeout + 4 * idle + 300)) ;; esac
bash qemu/run.sh --name bench-mmio --quiet --smp "$smp" --timeout "$timeout" --export-dir "$results" \
  "${tool_files[@]}" --script "$job"
rc=$?
set -e
raw="$results/mmio-roundtrip.txt"
if [ ! -f "$raw" ]; then
  echo "run-qemu-bench: the guest job failed ($rc); see the log under qemu/out/logs/" >&2
  exit 1
fi
# A part that failed still leaves the figures of the parts before it: print them, then fail.
[ "$rc" = 0 ] || echo "run-qemu-bench: the guest job failed ($rc) after writing partial results; see the log under qemu/out/logs/" >&2

echo "node-bao request path ($parts): $(bench_guest_line "$smp")"
grep '^#' "$raw" | grep -v '^# closed' | sed 's/^# */  /'
# sample <class> <label> n N min X p10 X p50 X p90 X p99 X max X
awk '
  function asort_n(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
  function med(a, n) { return n == 0 ? 0 : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) }
  /^sample / {
    c = $2; l = $3; key = c SUBSEP l
    mn[key] = $7; p50[key] = $11; p90[key] = $13; p99[key] = $15
    if (!(c in seenc)) { seenc[c] = 1; classes[++nc] = c }
  }
  /^idle / { idle[++ni] = $0 }
  /^handoff / { handoff[++nh] = $0 }
  # qd1 <label> round <r> s <s> completions <n> interrupts <n> trapped <n>
  /^qd1 / {
    l = $2; r = $4; rate = $8 / $6
    qrate[l, r] = rate; qint[l] += $10; qtrap[l] += $12; qdone[l] += $8
    if (!(l in seenq)) { seenq[l] = 1; qlabels[++nq] = l }
    if (r + 1 > qrounds) qrounds = r + 1
  }
  # par <class> busy <k> round <r> avg_ns <a0> [<a1> ...]
  /^par / {
    c = $2; k = $4; r = $6; tot = 0
    for (i = 8; i <= NF; i++) { rate = 1e9 / $i; tot += rate; pdev[c, k, r, i - 7] = rate }
    prate[c, k, r] = tot
    if (!((c, k) in seenp)) { seenp[c, k] = 1; pcls[++np] = c; pks[np] = k }
    if (r + 1 > prounds) prounds = r + 1
  }
  END {
    if (nc > 0) printf "\n%-15s %-9s %8s %8s %8s %8s   %-24s %-24s\n", "class", "path", "min_us", "p50_us", "p90_us", "p99_us", "vs C floor min/p50/p90", "vs all-JS min/p50/p90"
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
    for (i = 1; i <= nh; i++) {
      if (i == 1) printf "\nwhere node-bao'"'"'s accesses that go to JS spend their time (per batch, us; bucket floors):\n"
      split(handoff[i], w, " ")
      printf "  device %s: hand-off (ATTACH thread queued -> JS delivery starts) n %d p50 %s p90 %s p99 %s max %s; JS turn (decode, device model, COMPLETE) p50 %s p90 %s p99 %s max %s\n", w[4], w[6], w[8], w[10], w[12], w[14], w[19], w[21], w[23], w[25]
    }
    if (nq > 0) {
      printf "\nqueue depth 1, guest virtio_rng reading /dev/hwrng in 64-byte reads, %d interleaved rounds:\n", qrounds
      printf "%-9s %16s %16s %14s %22s\n", "path", "completions/s p50", "min..max", "interrupts/compl", "trapped accesses/compl"
      for (i = 1; i <= nq; i++) {
        l = qlabels[i]; n = 0
        for (r = 0; r < qrounds; r++) if ((l, r) in qrate) v[++n] = qrate[l, r]
        asort_n(v, n)
        printf "%-9s %16.1f %7.1f..%-7.1f %14.2f %22.2f\n", l, med(v, n), v[1], v[n], qint[l] / qdone[l], qtrap[l] / qdone[l]
      }
      n = 0
      for (r = 0; r < qrounds; r++) if ((("node-bao", r) in qrate) && (("c-floor", r) in qrate)) v[++n] = qrate["node-bao", r] / qrate["c-floor", r]
      if (n > 0) { asort_n(v, n); printf "node-bao / C floor, completions/s, per round: median %.2fx (min %.2fx, max %.2fx)\n", med(v, n), v[1], v[n] }
    }
    if (np > 0) {
      printf "\ndevice models of one node-bao busy at once, one frontend each making trapped accesses back to back, %d interleaved rounds:\n", prounds
      printf "%-15s %-5s %18s %22s %30s\n", "class", "busy", "total accesses/s", "vs 1 busy (per round)", "per busy device p50: min / max"
      for (i = 1; i <= np; i++) {
        c = pcls[i]; k = pks[i]; n = 0; m = 0
        for (r = 0; r < prounds; r++) if ((c, k, r) in prate) { v[++n] = prate[c, k, r]; if ((c, 1, r) in prate) u[++m] = prate[c, k, r] / prate[c, 1, r] }
        asort_n(v, n); asort_n(u, m)
        dmin = 1e18; dmax = 0
        for (d = 1; d <= k; d++) {
          cnt = 0; for (r = 0; r < prounds; r++) if ((c, k, r, d) in pdev) x[++cnt] = pdev[c, k, r, d]
          asort_n(x, cnt); dm = med(x, cnt); if (dm < dmin) dmin = dm; if (dm > dmax) dmax = dm
        }
        printf "%-15s %-5s %18.1f %22s %30s\n", (c == lastc ? "" : c), k, med(v, n), (m > 0 ? sprintf("%.2fx", med(u, m)) : ""), sprintf("%.1f / %.1f", dmin, dmax)
        lastc = c
      }
    }
    for (i = 1; i <= ni; i++) {
      split(idle[i], w, " ")
      printf "%sidle window %d (%s): %d device models, watchdog on, %d s: %s s CPU (a bare node: %s s), RSS %.1f MB, %d threads\n", (i == 1 ? "\n" : ""), w[15], w[17], w[3], w[5], w[7], w[13], w[9] / 1024, w[11]
    }
  }' "$raw"
exit "$rc"
