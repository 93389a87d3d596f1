#!/usr/bin/env bash
# Kill and restart (not in CI; a few iterations run in test/qemu/hostile/kill-restart.test.ts):
# boots the Bao-equivalent guest, where scripts/guest/kill-restart.mjs kills the daemon with
# SIGKILL under load N times, restarts it, resets the frontends (driver unbind/bind) and reports
# how many runs recovered. Needs `npm run build` first. One guest at a time per machine.
# Usage: scripts/stress-kill-restart.sh [iterations (100)]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
iterations=${1:-100}
cd "$repo"
for need in dist build/Release/bao.node; do
  [ -e "$need" ] || { echo "stress-kill-restart: $need is missing: run 'npm run build' first" >&2; exit 1; }
done
(flock 9; bash qemu/provision.sh >/dev/null; make -s -C qemu/bao-sim >/dev/null; bash qemu/build-image.sh) 9>qemu/out/.build.lock
job=$(mktemp)
trap 'rm -f "$job"' EXIT
cat > "$job" <<JOB
bao-cpu-split 0
taskset -c 1 node scripts/guest/kill-restart.mjs --iterations $iterations
JOB
exec bash qemu/run.sh --name kill-restart --smp 2 --timeout $((iterations * 60 + 300)) --script "$job"
