#!/usr/bin/env bash
# Soak (not in CI): boots the Bao-equivalent guest and keeps every device busy for a given time
# (scripts/guest/soak.mjs), printing the daemon's RSS, heap, open fds, event-loop delay and each
# device's throughput at intervals, and at the end a verdict: "soak verdict: FLAT" or "NOT FLAT"
# with the failed checks (RSS, heap, fds, event-loop delay, throughput; scripts/guest/soak.mjs
# verdict() has the rules); exits 0 only when flat. Needs `npm run build` first. One guest at a
# time per machine: `npm run build && bash scripts/soak.sh 3600 60`.
# Usage: scripts/soak.sh [duration seconds (3600)] [interval seconds (60)]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
duration=${1:-3600}
interval=${2:-60}
cd "$repo"
for need in dist build/Release/bao.node; do
  [ -e "$need" ] || { echo "soak: $need is missing: run 'npm run build' first" >&2; exit 1; }
done
(flock 9; bash qemu/provision.sh >/dev/null; make -s -C qemu/bao-sim >/dev/null; bash qemu/build-image.sh) 9>qemu/out/.build.lock
job=$(mktemp)
trap 'rm -f "$job"' EXIT
cat > "$job" <<JOB
bao-cpu-split 0
taskset -c 1 node scripts/guest/soak.mjs --duration $duration --interval $interval
JOB
exec bash qemu/run.sh --name soak --smp 2 --timeout $((duration + 300)) --script "$job"
