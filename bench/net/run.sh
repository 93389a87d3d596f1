#!/usr/bin/env bash
# bench/net/run.sh (`npm run bench:net`): networking through node-bao's virtio-net in the
# Bao-equivalent guest, next to a veth pair in the same guest in the same run (the kernel's own
# path between two namespaces: what no device can beat). Boots the guest once with
# bench/net/job.sh and prints per measure (iperf3 TCP each way with one stream and with several,
# a one-byte request/response rate) the median of the rounds per path (veth; our device with one
# queue pair; with several), the ratios to veth, and several pairs against one.
#
# Usage: bash bench/net/run.sh [--seconds S] [--rounds N] [--pairs P] [--streams K] [--vhost]
#                              [--no-napi-off] [--profile] [--perf] [--strace] [--timeout <guest run limit, s>]
# Defaults: --seconds 6 --rounds 2 --pairs 2 --streams 4 (about 8 minutes under TCG on a loaded
# host). --no-napi-off skips the measures with the guest driver's transmit NAPI off. Needs
# `npm run build`. --profile runs the daemon under --cpu-prof and prints its JS thread's self time
# by function (the 25 largest), computed in the guest. --perf samples the backend CPU with the
# host's perf (linux-perf, shipped into the guest) during the one-stream measures of each path
# and prints the largest entries (command, object, symbol). --strace counts the daemon's system
# calls during the one-stream measures of our paths (the host's strace, shipped).
# Output: the table on stdout; raw lines in .cache/bench/net/net-bench.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

seconds=6
rounds=2
pairs=2
streams=4
vhost=0
napi_off=1
profile=0
perf=0
strace=0
timeout=1200
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --vhost) vhost=1; shift ;;
    --no-napi-off) napi_off=0; shift ;;
    --profile) profile=1; shift ;;
    --perf) perf=1; shift ;;
    --strace) strace=1; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    *) echo "bench/net: unknown argument '$1' (see the header)" >&2; exit 2 ;;
  esac
done
# shellcheck source=bench/qemu-common.sh
. "$repo/bench/qemu-common.sh"
bench_prepare bench/net

results="$repo/.cache/bench/net"
rm -rf "$results"
mkdir -p "$results"
job=$(mktemp)
trap 'rm -f "$job"' EXIT
{
  echo "BENCH_NET_SECONDS=$seconds"
  echo "BENCH_NET_ROUNDS=$rounds"
  echo "BENCH_NET_PAIRS=$pairs"
  echo "BENCH_NET_STREAMS=$streams"
  echo "BENCH_NET_VHOST=$vhost"
  echo "BENCH_NET_NAPI_OFF=$napi_off"
  echo "BENCH_NET_PROFILE=$profile"
  echo "BENCH_NET_PERF=$perf"
  echo "BENCH_NET_STRACE=$strace"
  echo "BENCH_NET_NODE_FLAGS='${BENCH_NET_NODE_FLAGS:-}'"
  echo "BENCH_NET_PERF_CALLERS=${BENCH_NET_PERF_CALLERS:-}"
  cat "$here/job.sh"
} > "$job"

tool_files=()
[ "$perf" = 1 ] && bench_tool_files tool_files perf /usr/bin/perf linux-perf
[ "$strace" = 1 ] && bench_tool_files tool_files strace /usr/bin/strace
set +e
bash qemu/run.sh --name bench-net --quiet --smp 2 --timeout "$timeout" --export-dir "$results" \
  --file "$here/rr.mjs:/usr/bin/bench-net-rr.mjs" --file "$here/counters.mjs:/usr/bin/bench-net-counters.mjs" --file "$repo/bench/profile-summary.mjs:/usr/bin/bench-profile-summary.mjs" \
  --file "$repo/bench/guest-cpu.sh:/usr/bin/bench-guest-cpu.sh" "${tool_files[@]}" --script "$job"
rc=$?
set -e
raw="$results/net-bench.txt"
if [ ! -f "$raw" ]; then
  echo "bench/net: the guest job failed ($rc); see the log under qemu/out/logs/" >&2
  exit 1
fi
# A job that failed part-way still exports the rounds it measured: print them, then fail.
[ "$rc" = 0 ] || echo "bench/net: the guest job failed ($rc) after writing partial results; see the log under qemu/out/logs/" >&2

echo "node-bao virtio-net vs veth: $(bench_guest_line 2)"
# perf names the guest's node builtins by offset: the host's node (the same binary) names them.
if [ "$perf" = 1 ]; then grep '^#' "$raw" | sed 's/^# */  /' | node "$here/../perf-resolve.mjs" "$(command -v node)"
else grep '^#' "$raw" | sed 's/^# */  /'; fi
# result <path> <measure> <value> <unit> round <r>
awk '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function ratio(a, b) { return (a != "" && b != "" && b > 0) ? sprintf("%.3f", a / b) : "-" }
  /^result / {
    key = $2 SUBSEP $3
    v[key] = v[key] " " $4
    unit[$3] = $5
    if (!($3 in seenm)) { seenm[$3] = 1; measures[++nm] = $3 }
  }
  END {
    np = split("veth virtio virtio-mq", paths, " ")
    if (("vhost" SUBSEP measures[1]) in v) np = split("veth virtio virtio-mq vhost", paths, " ")
    printf "  %-18s", "measure"
    for (i = 1; i <= np; i++) printf " %12s", paths[i]
    printf " %12s %12s %12s", "virtio/veth", "mq/veth", "mq/virtio"
    if (np == 4) printf " %12s %12s", "vhost/veth", "vhost/virtio"
    printf "\n"
    for (m = 1; m <= nm; m++) {
      me = measures[m]
      printf "  %-18s", me
      for (i = 1; i <= np; i++) {
        k = paths[i] SUBSEP me
        med[paths[i]] = (k in v) ? median(v[k]) : ""
        printf " %12s", (k in v) ? sprintf("%.1f", med[paths[i]]) : "-"
      }
      printf " %12s %12s %12s", ratio(med["virtio"], med["veth"]), ratio(med["virtio-mq"], med["veth"]), ratio(med["virtio-mq"], med["virtio"])
      if (np == 4) printf " %12s %12s", ratio(med["vhost"], med["veth"]), ratio(med["vhost"], med["virtio"])
      printf "  %s\n", unit[me]
    }
    print "  (median of the rounds; virtio: one queue pair, virtio-mq: several, vhost: data_plane vhost (vhost-net), one pair; ratios > 1: faster)"
  }
' "$raw"
# The sender's TCP view per measure, and where our device's kicks and interrupts went.
if grep -q '^detail ' "$raw"; then
  echo "  TCP sender (retransmitted segments, largest congestion window, mean RTT; iperf3's CPU %), per round:"
  awk '/^detail / { printf "    %-10s %-16s r%s", $2, $3, $5; for (i = 6; i <= NF; i++) printf " %s", $i; printf "\n" }' "$raw"
fi
if grep -q '^threads ' "$raw"; then
  echo "  the daemon's threads during each measure, % of a CPU as user/system (js: the JavaScript thread; node: V8's):"
  awk '/^threads / { printf "    %-10s %-16s r%s", $2, $3, $5; for (i = 6; i <= NF; i++) printf " %s", $i; printf "\n" }' "$raw"
fi
if grep -q '^counters ' "$raw"; then
  echo "  our device during each measure (fe-irqs: interrupts the frontend took; trapped: register accesses;"
  echo "  per queue: driver packets, kicks driver/device, used interrupts raised, publications not interrupted):"
  awk '/^counters / { line = $0; sub(/^counters [^ ]+ [^ ]+ round [^ ]+ /, "", line); printf "    %-10s %-16s r%s %s\n", $2, $3, $5, line }' "$raw"
fi
exit "$rc"
