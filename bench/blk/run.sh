#!/usr/bin/env bash
# bench/blk/run.sh: virtio-blk throughput in the Bao-equivalent guest (qemu/). fio (Debian's,
# shipped into the guest's job layer with its libraries) runs the same jobs, interleaved, on a
# disk node-bao serves with the io_uring engine, one it serves with the thread-pool engine, a
# loop device over the same image (the kernel's own block path, direct I/O: the limit) and the
# image file itself (buffered, the page cache: the floor of anything), in one boot; it prints
# IOPS and throughput per job and target with the ratios to the loop device and to the file.
#
# Usage: bash bench/blk/run.sh [--runtime <s per job>] [--rounds <n>] [--smp <n>] [--profile] [--perf [--perf-cpu 0]]
# Defaults: --runtime 5 --rounds 1 --smp 2 (5 minutes under TCG on a quiet host, 10 on a loaded
# one, plus the image build). --profile runs the daemon under --cpu-prof and prints where its JS
# thread spent its time; --perf samples the backend CPU with the host's perf (linux-perf, shipped)
# over the first round's node-bao runs and prints where it went (command, object, symbol);
# --perf-cpu 0 samples the frontend's CPU instead (fio and the guest's virtio_blk), over the loop
# device's runs too, to compare what a request costs the frontend on each path. Every
# run also prints each CPU's busy share and the daemon's threads' CPU. The guest boots `clearcpuid=erms` (below) unless BAO_QEMU_APPEND is set.
# Needs `npm run build`; fio is installed on the host by qemu/provision.sh.
# Output: the table on stdout; raw lines in .cache/bench/blk/blk-bench.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

runtime=5
rounds=1
smp=2
profile=0
perf=0
perf_cpu=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --profile) profile=1; shift ;;
    --perf) perf=1; shift ;;
    --perf-cpu)
      case "$2" in 0|1) perf_cpu=$2 ;; *) echo "bench/blk: --perf-cpu takes 0 (the frontend's CPU) or 1 (the backend's), not '$2'" >&2; exit 2 ;; esac
      shift 2 ;;
    *) echo "bench/blk: unknown argument '$1' (see the header)" >&2; exit 2 ;;
  esac
done
. "$repo/bench/qemu-common.sh"
bench_prepare bench/blk
# fio and every library it links, at the same paths in the guest; perf likewise with --perf.
files=(--file "$repo/bench/profile-summary.mjs:/usr/bin/bench-profile-summary.mjs"
  --file "$repo/bench/guest-cpu.sh:/usr/bin/bench-guest-cpu.sh")
bench_tool_files files fio /usr/bin/fio
[ "$perf" = 1 ] && bench_tool_files files perf /usr/bin/perf linux-perf

results="$repo/.cache/bench/blk"
rm -rf "$results"
mkdir -p "$results"
job=$(mktemp)
trap 'rm -f "$job"' EXIT
{ echo "BENCH_RUNTIME=$runtime"; echo "BENCH_ROUNDS=$rounds"; echo "BENCH_PROFILE=$profile"; echo "BENCH_PERF=$perf"; echo "PERF_CPU=$perf_cpu"; cat "$here/job.sh"; } > "$job"

# The guest boots with ERMS hidden: with it, the guest kernel copies with `rep movsb`, which TCG
# runs at a third of the speed of the copy it uses otherwise, and every copy of a userspace
# device model (preadv into the shared region, on the backend vCPU) paid for that while the loop
# device's did not (bench/README, 2026-12-04). No board runs TCG; a BAO_QEMU_APPEND set by the
# caller (even empty) replaces this.
export BAO_QEMU_APPEND="${BAO_QEMU_APPEND-clearcpuid=erms}"
set +e
bash qemu/run.sh --name bench-blk --quiet --smp "$smp" --mem 2G --timeout 900 --export-dir "$results" \
  "${files[@]}" --script "$job"
rc=$?
set -e
raw="$results/blk-bench.txt"
if [ "$rc" != 0 ] || [ ! -f "$raw" ]; then
  echo "bench/blk: the guest job failed ($rc); see the log under qemu/out/logs/" >&2
  exit 1
fi

echo "node-bao virtio-blk with fio (direct, libaio): $(bench_guest_line "$smp")"
# perf names the guest's node builtins by offset: the host's node (the same binary) names them.
if [ "$perf" = 1 ]; then grep '^#' "$raw" | sed 's/^# */  /' | node "$here/../perf-resolve.mjs" "$(command -v node)"
else grep '^#' "$raw" | sed 's/^# */  /'; fi
# result <job> <target> <round> <iops> <KiB/s>: medians over rounds, ratios to loop and file.
awk '
  # counters <job> <target> <round> <requests> <kicks> <interrupts> <trapped> <maxInFlight>: cumulative per target
  /^counters / {
    t = $3; k = $2 SUBSEP t; nc++
    creq[k] += $5 - preq[t]; ckick[k] += $6 - pkick[t]; cirq[k] += $7 - pirq[t]; ctrap[k] += $8 - ptrap[t]; cmax[k] = $9
    preq[t] = $5; pkick[t] = $6; pirq[t] = $7; ptrap[t] = $8
  }
  /^result / {
    k = $2 SUBSEP $3; n[k]++; iops[k, n[k]] = $5; bw[k, n[k]] = $6
    if (!($2 in seen)) { seen[$2] = 1; jobs[++nj] = $2 }
  }
  function median(a, k, c,    i, j, t, v) {
    for (i = 1; i <= c; i++) v[i] = a[k, i]
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
  }
  END {
    printf "\n%-18s %-11s %9s %10s %9s %9s\n", "job", "target", "IOPS", "MiB/s", "vs loop", "vs file"
    split("uring threadpool loop file", order, " ")
    for (i = 1; i <= nj; i++) {
      jb = jobs[i]
      for (t = 1; t <= 4; t++) { k = jb SUBSEP order[t]; if (k in n) { mi[order[t]] = median(iops, k, n[k]); mb[order[t]] = median(bw, k, n[k]) } }
      for (t = 1; t <= 4; t++) {
        tg = order[t]; k = jb SUBSEP tg; if (!(k in n)) continue
        printf "%-18s %-11s %9d %10.1f %8.2fx %8.2fx\n", (t == 1 ? jb : ""), tg, mi[tg], mb[tg] / 1024,
          (mi["loop"] > 0 ? mi[tg] / mi["loop"] : 0), (mi["file"] > 0 ? mi[tg] / mi["file"] : 0)
      }
    }
    if (nc > 0) {
      printf "\nwhat each request cost the device model (counter deltas over the job, ramp included; summed over rounds):\n"
      printf "%-18s %-11s %9s %12s %15s %18s %13s\n", "job", "target", "requests", "kicks/req", "interrupts/req", "trapped acc./req", "max in flight"
      for (i = 1; i <= nj; i++) for (t = 1; t <= 2; t++) {
        k = jobs[i] SUBSEP order[t]; if (!(k in creq) || creq[k] == 0) continue
        printf "%-18s %-11s %9d %12.2f %15.2f %18.2f %13d\n", (t == 1 ? jobs[i] : ""), order[t], creq[k], ckick[k] / creq[k], cirq[k] / creq[k], ctrap[k] / creq[k], cmax[k]
      }
    }
    q1 = "randread-4k-qd1" SUBSEP "uring"; q32 = "randread-4k-qd32" SUBSEP "uring"
    if ((q1 in n) && (q32 in n)) printf "\nio_uring engine: QD32 / QD1 random-read IOPS = %.2fx\n", median(iops, q32, n[q32]) / median(iops, q1, n[q1])
    q1 = "randread-4k-qd1" SUBSEP "threadpool"; q32 = "randread-4k-qd32" SUBSEP "threadpool"
    if ((q1 in n) && (q32 in n)) printf "thread-pool engine: QD32 / QD1 random-read IOPS = %.2fx\n", median(iops, q32, n[q32]) / median(iops, q1, n[q1])
  }' "$raw"
# cpu <job> <target> <round> cpuN-busy=B cpuN-sirq=S ... group=U/S ...: over each fio run.
if grep -q '^cpu ' "$raw"; then
  echo
  echo "the CPUs over each fio run (busy %, softirq %; CPU 0: fio, CPU 1: the daemon) and the daemon's threads (% of a CPU, user/system; js: its JavaScript thread):"
  awk '/^cpu / { printf "  %-18s %-11s r%s", $2, $3, $4; for (i = 5; i <= NF; i++) printf " %s", $i; printf "\n" }' "$raw"
fi
