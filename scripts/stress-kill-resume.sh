#!/usr/bin/env bash
# Kill and resume, 100 times in one guest boot (not in CI; 20 iterations run in
# test/qemu/crash/kill-resume.test.ts): boots the Bao-equivalent guest, where
# scripts/guest/kill-resume.mjs kills the daemon with SIGKILL while the guest's virtio_rng,
# virtio_console and virtio_blk drivers are busy (hwrng reads, console lines both ways, fsync'ed
# O_DIRECT disk records; half of the kills right after the daemon took a trapped access),
# restarts it, and checks each run resumed the devices without a reset or a hang, left no access
# uncompleted, lost or repeated no console line and kept every fsync'ed disk record. It ends
# with a summary: kills, resumes, resets, hangs, lost/duplicated console lines, fsync'ed
# records missing, resume time median and max, and the start-up phases; the same as JSON in
# qemu/out/kill-resume/kill-resume.json. Exit status 0 only when every run passed.
#
# Needs `npm run build` first. One guest at a time per machine:
#   npm run build && scripts/stress-kill-resume.sh 100
# Under TCG one kill-and-resume takes about 10 to 20 s: 100 take about half an hour.
# Usage: scripts/stress-kill-resume.sh [iterations (100)]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
iterations=${1:-100}
case $iterations in '' | *[!0-9]* | 0) echo "stress-kill-resume: iterations must be a whole number, at least 1" >&2; exit 2 ;; esac
cd "$repo"
for need in dist build/Release/bao.node; do
  [ -e "$need" ] || { echo "stress-kill-resume: $need is missing: run 'npm run build' first" >&2; exit 1; }
done
mkdir -p qemu/out
(flock 9; bash qemu/provision.sh >/dev/null; make -s -C qemu/bao-sim >/dev/null; bash qemu/build-image.sh) 9>qemu/out/.build.lock
results=qemu/out/kill-resume
rm -rf "$results"
mkdir -p "$results"
job=$(mktemp)
trap 'rm -f "$job"' EXIT
# The script prints its progress and summary, then the summary as JSON on its last line.
cat > "$job" <<JOB
set -o pipefail
taskset -c 1 node scripts/guest/kill-resume.mjs --iterations $iterations --json 2>&1 | tee /tmp/kill-resume.out
rc=\$?
tail -n 1 /tmp/kill-resume.out > /tmp/kill-resume.json
bao-export /tmp/kill-resume.json kill-resume.json
exit \$rc
JOB
set +e
bash qemu/run.sh --name kill-resume --smp 2 --timeout $((iterations * 60 + 300)) --export-dir "$results" --script "$job"
rc=$?
set -e
if [ -s "$results/kill-resume.json" ]; then
  echo "stress-kill-resume: summary saved in $results/kill-resume.json"
else
  echo "stress-kill-resume: the guest produced no summary (see the log above)" >&2
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
