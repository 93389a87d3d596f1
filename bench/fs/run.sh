#!/usr/bin/env bash
# bench/fs/run.sh (`npm run bench:fs`): virtiofs through node-bao's vhost_user data plane in the
# Bao-equivalent guest (Debian's virtiofsd as the backend, the guest's virtiofs driver as the
# frontend) next to the same directory used directly in the guest (its RAM filesystem: the
# floor), in one boot. fio (Debian's, shipped into the guest's job layer with its libraries)
# runs each job on both targets in turn; prints the median IOPS and MiB/s per job and target
# and the ratio virtiofs / local.
#
# Usage: bash bench/fs/run.sh [--runtime <s per job>] [--rounds <n>] [--cache none|auto|always]
# Defaults: --runtime 5 --rounds 1 --cache none (about 3 minutes under TCG, plus the image build).
# Needs `npm run build`; fio and virtiofsd are installed on the host by qemu/provision.sh.
# Output: the table on stdout; raw lines in .cache/bench/fs/fs-bench.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

runtime=5
rounds=1
cache=none
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    *) echo "bench/fs: unknown argument '$1' (see the header)" >&2; exit 2 ;;
  esac
done
. "$repo/bench/qemu-common.sh"
bench_prepare bench/fs
fio_bin=$(command -v fio) || { echo "bench/fs: fio is not installed (qemu/provision.sh installs it)" >&2; exit 1; }

# fio and every library it links, at the same paths in the guest.
files=(--file "$fio_bin:/usr/bin/fio")
for lib in $(ldd "$fio_bin" | awk '/=>/ && $3 ~ /^\// {print $3}'); do
  files+=(--file "$(readlink -f "$lib"):$lib")
done

results="$repo/.cache/bench/fs"
rm -rf "$results"
mkdir -p "$results"
job=$(mktemp)
trap 'rm -f "$job"' EXIT
{ echo "BENCH_RUNTIME=$runtime"; echo "BENCH_ROUNDS=$rounds"; echo "BENCH_CACHE=$cache"; cat "$here/job.sh"; } > "$job"

set +e
bash qemu/run.sh --name bench-fs --quiet --smp 2 --timeout 900 --export-dir "$results" \
  "${files[@]}" --script "$job"
rc=$?
set -e
raw="$results/fs-bench.txt"
if [ "$rc" != 0 ] || [ ! -f "$raw" ]; then
  echo "bench/fs: the guest job failed ($rc); see the log under qemu/out/logs/" >&2
  exit 1
fi

accel=$(cat qemu/out/kvm-probe.* 2>/dev/null | head -n1)
echo "node-bao virtiofs (vhost_user, virtiofsd) vs the local directory: $(date -u +%Y-%m-%dT%H:%MZ), host $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), guest ${BAO_QEMU_ACCEL:-$accel} smp 2"
grep '^#' "$raw" | sed 's/^# */  /'
# result <job> <target> <round> <iops> <KiB/s>: medians over rounds, ratio to local.
awk '
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
    printf "\n%-14s %-9s %9s %10s %9s\n", "job", "target", "IOPS", "MiB/s", "vs local"
    split("virtiofs local", order, " ")
    for (i = 1; i <= nj; i++) {
      jb = jobs[i]
      for (t = 1; t <= 2; t++) { k = jb SUBSEP order[t]; if (k in n) { mi[order[t]] = median(iops, k, n[k]); mb[order[t]] = median(bw, k, n[k]) } }
      for (t = 1; t <= 2; t++) {
        tg = order[t]; k = jb SUBSEP tg; if (!(k in n)) continue
        printf "%-14s %-9s %9d %10.1f %8.3fx\n", (t == 1 ? jb : ""), tg, mi[tg], mb[tg] / 1024, (mi["local"] > 0 ? mi[tg] / mi["local"] : 0)
      }
    }
  }' "$raw"
