#!/usr/bin/env bash
# bench/net/run.sh (`npm run bench:net`): networking through node-bao's virtio-net in the
# Bao-equivalent guest, next to a veth pair in the same guest in the same run (the kernel's own
# path between two namespaces: what no device can beat). Boots the guest once with
# bench/net/job.sh and prints per measure (iperf3 TCP one stream each way, a one-byte
# request/response rate) the median of the rounds per path and the ratio virtio / veth.
#
# Usage: bash bench/net/run.sh [--seconds S] [--rounds N] [--pairs P] [--vhost]
# Defaults: --seconds 8 --rounds 2 --pairs 1 (about 4 minutes under TCG). Needs `npm run build`.
# Output: the table on stdout; raw lines in .cache/bench/net/net-bench.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

seconds=8
rounds=2
pairs=1
vhost=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --vhost) vhost=1; shift ;;
    *) echo "bench/net: unknown argument '$1' (see the header)" >&2; exit 2 ;;
  esac
done
for need in dist build/Release/bao.node; do
  [ -e "$need" ] || { echo "bench/net: $need is missing: run 'npm run build' first" >&2; exit 1; }
done

mkdir -p "$repo/qemu/out"
(
  flock 9
  bash qemu/provision.sh >/dev/null
  make -s -C qemu/bao-sim >/dev/null
  bash qemu/build-image.sh
) 9>"$repo/qemu/out/.build.lock"

results="$repo/.cache/bench/net"
rm -rf "$results"
mkdir -p "$results"
job=$(mktemp)
trap 'rm -f "$job"' EXIT
{
  echo "BENCH_NET_SECONDS=$seconds"
  echo "BENCH_NET_ROUNDS=$rounds"
  echo "BENCH_NET_PAIRS=$pairs"
  echo "BENCH_NET_VHOST=$vhost"
  cat "$here/job.sh"
} > "$job"

set +e
bash qemu/run.sh --name bench-net --quiet --smp 2 --timeout 1200 --export-dir "$results" \
  --file "$here/rr.mjs:/usr/bin/bench-net-rr.mjs" --script "$job"
rc=$?
set -e
raw="$results/net-bench.txt"
if [ "$rc" != 0 ] || [ ! -f "$raw" ]; then
  echo "bench/net: the guest job failed ($rc); see the log under qemu/out/logs/" >&2
  exit 1
fi

accel=$(cat qemu/out/kvm-probe.* 2>/dev/null | head -n1)
echo "node-bao virtio-net vs veth: $(date -u +%Y-%m-%dT%H:%MZ), host $(nproc) cpus (load $(cut -d' ' -f1-3 /proc/loadavg)), guest ${BAO_QEMU_ACCEL:-$accel} smp 2"
grep '^#' "$raw" | sed 's/^# */  /'
# result <path> <measure> <value> <unit> round <r>
awk '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function ratio(a, b) { return (b > 0 && a != "") ? sprintf("%.3f", a / b) : "-" }
  /^result / {
    key = $2 SUBSEP $3
    v[key] = v[key] " " $4
    unit[$3] = $5
    if (!($3 in seenm)) { seenm[$3] = 1; measures[++nm] = $3 }
    if (!($2 in seenp)) { seenp[$2] = 1; paths[++np] = $2 }
  }
  END {
    printf "  %-8s", "measure"
    for (i = 1; i <= np; i++) printf " %14s", paths[i]
    printf " %12s", "virtio/veth"
    if ("vhost" in seenp) printf " %12s %12s", "vhost/veth", "vhost/virtio"
    printf " %s\n", "(median of rounds)"
    for (m = 1; m <= nm; m++) {
      me = measures[m]
      printf "  %-8s", me
      for (i = 1; i <= np; i++) {
        k = paths[i] SUBSEP me
        med[paths[i]] = (k in v) ? median(v[k]) : ""
        printf " %14s", (k in v) ? sprintf("%.1f", med[paths[i]]) : "-"
      }
      printf " %12s", ratio(med["virtio"], med["veth"])
      if ("vhost" in seenp) printf " %12s %12s", ratio(med["vhost"], med["veth"]), ratio(med["vhost"], med["virtio"])
      printf " %s\n", unit[me]
    }
  }
' "$raw"
