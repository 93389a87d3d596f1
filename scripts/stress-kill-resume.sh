#!/usr/bin/env bash
# Kill and resume, 100 times (not in CI; 20 iterations run in test/qemu/crash/kill-resume.test.ts):
# boots the Bao-equivalent guest, where scripts/guest/kill-resume.mjs kills the daemon with SIGKILL
# while the guest's virtio_rng and virtio_console drivers are busy (half of the kills right after
# it took a trapped access), restarts it, and checks each run resumed the devices without a
# reset, left no access uncompleted and lost or repeated no console line. Needs `npm run build`
# first. One guest at a time per machine.
# Usage: scripts/stress-kill-resume.sh [iterations (100)]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
iterations=${1:-100}
cd "$repo"
for need in dist build/Release/bao.node; do
  [ -e "$need" ] || { echo "stress-kill-resume: $need is missing: run 'npm run build' first" >&2; exit 1; }
done
(flock 9; bash qemu/provision.sh >/dev/null; make -s -C qemu/bao-sim >/dev/null; bash qemu/build-image.sh) 9>qemu/out/.build.lock
job=$(mktemp)
trap 'rm -f "$job"' EXIT
cat > "$job" <<JOB
taskset -c 1 node scripts/guest/kill-resume.mjs --iterations $iterations
JOB
exec bash qemu/run.sh --name kill-resume --smp 2 --timeout $((iterations * 60 + 300)) --script "$job"
