#!/usr/bin/env bash
# Kill and restart (not in CI; a few iterations run in test/qemu/hostile/kill-restart.test.ts):
# boots the Bao-equivalent guest, where scripts/guest/kill-restart.mjs kills the daemon with
# SIGKILL under load N times, restarts it, resets the frontends (driver unbind/bind) and reports
# how many runs recovered (and how many lost an access the killed daemon was completing). Needs
# `npm run build` first. Run one QEMU guest at a time per machine.
# Under TCG a daemon start takes 15-30 s, so 100 runs take about 40 minutes; max-seconds stops
# starting runs after that long and reports the ones made.
# Usage: scripts/stress-kill-restart.sh [iterations (100)] [max-seconds (none)]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
iterations=${1:-100}
max_seconds=${2:-}
limit=""
guest_timeout=$((iterations * 90 + 600))
if [ -n "$max_seconds" ]; then
  limit="--max-seconds $max_seconds"
  # the last run started in time may still take a few minutes
  guest_timeout=$((max_seconds + 900 < guest_timeout ? max_seconds + 900 : guest_timeout))
fi
cd "$repo"
for need in dist build/Release/bao.node; do
  [ -e "$need" ] || { echo "stress-kill-restart: $need is missing: run 'npm run build' first" >&2; exit 1; }
done
(flock 9; bash qemu/provision.sh >/dev/null; make -s -C qemu/bao-sim >/dev/null; bash qemu/build-image.sh) 9>qemu/out/.build.lock
job=$(mktemp)
trap 'rm -f "$job"' EXIT
cat > "$job" <<JOB
bao-cpu-split 0
taskset -c 1 node scripts/guest/kill-restart.mjs --iterations $iterations $limit
JOB
exec bash qemu/run.sh --name kill-restart --smp 2 --timeout $guest_timeout --script "$job"
