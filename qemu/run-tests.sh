#!/usr/bin/env bash
# `npm run test:qemu`: the QEMU suite. Provisions if needed, builds bao_sim.ko and the image
# (only what changed), boots the guest once and runs `vitest run --project qemu` (all of
# test/qemu, one file after another: they load and unload the module) inside it, prints the
# guest's results, then runs `vitest run --project qemu-host` on this host (test/qemu-host:
# tests that boot a guest of their own through qemu/run.sh, such as a power cut), and exits
# non-zero when a test fails or the guest times out or crashes.
# Does not build the addon or the TypeScript: `npm run build` must have been run.
# Environment: RESULTS_JSON=<path> also saves the guest's vitest JSON report there,
# RESULTS_HOST_JSON=<path> the host-side one;
# QEMU_TEST_TIMEOUT (seconds, default 2700: the whole suite with the block, net, vhost and hostile-frontend files);
# QEMU_TEST_FILTER (vitest file filters, optional: a suite none of whose files match is not run);
# QEMU_TEST_REPEAT=N runs the guest's files N times in the one boot, stopping at the first
# failure (a flaky test's record in one run); NODE_BAO_KILL_RESUME=0 and
# NODE_BAO_KILL_RESTART=0 leave the kill-resume and kill-restart tests out (README: Development);
# NODE_BAO_KILL_RESUME_ITERATIONS=N and NODE_BAO_KILL_RESTART_ITERATIONS=N set their kills;
# HOSTILE_CPU_PROF=1 runs the hostile suite's daemon under --cpu-prof and prints its long tasks per case;
# QEMU_TEST_SMP (vCPUs, default 2: drivers such as virtio_console busy-wait for the backend with
# preemption off, which on one vCPU starves the userspace backend forever; on Bao too the
# frontend vCPU spins while the backend runs elsewhere).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

for need in dist build/Release/bao.node; do
  if [ ! -e "$need" ]; then
    echo "test:qemu: $need is missing: run 'npm run build' first (scripts/test.sh does)." >&2
    exit 1
  fi
done

# A suite runs when the filter selects one of its files (vitest matches a filter against the
# file's path) or when there is no filter.
selects() { # selects <dir>
  [ -z "${QEMU_TEST_FILTER:-}" ] && return 0
  local f files
  files=$(find "$1" -name '*.test.ts' 2>/dev/null)
  for f in $QEMU_TEST_FILTER; do
    grep -qF -- "$f" <<< "$files" && return 0
  done
  return 1
}
run_guest=0; selects test/qemu && run_guest=1
run_host=0; selects test/qemu-host && run_host=1
if [ "$run_guest$run_host" = 00 ]; then
  echo "test:qemu: QEMU_TEST_FILTER='$QEMU_TEST_FILTER' matches no test file under test/qemu or test/qemu-host" >&2
  exit 2
fi

# One build at a time: other runs (benchmarks, demos) may share qemu/out.
mkdir -p "$here/out"
(
  flock 9
  bash "$here/provision.sh" >/dev/null
  make -s -C "$here/bao-sim" >/dev/null
  bash "$here/build-image.sh"
) 9>"$here/out/.build.lock"

results="$here/out/results"
rm -rf "$results"
mkdir -p "$results"
job=$(mktemp)
trap 'rm -f "$job"' EXIT
guest_timeout=$(( ${QEMU_TEST_TIMEOUT:-2700} - 45 ))
cat > "$job" <<JOB
# Watchdog: shortly before the host kills the guest, show what is stuck (processes, blocked tasks).
( sleep $guest_timeout; echo "== guest watchdog after ${guest_timeout}s: processes"; ps;
  echo w > /proc/sysrq-trigger; echo "== kernel log"; dmesg | tail -n 80 ) &
# The tests' switches, from the host's environment.
export NODE_BAO_KILL_RESTART="${NODE_BAO_KILL_RESTART:-}" NODE_BAO_KILL_RESTART_ITERATIONS="${NODE_BAO_KILL_RESTART_ITERATIONS:-}" NODE_BAO_KILL_RESUME="${NODE_BAO_KILL_RESUME:-}" NODE_BAO_KILL_RESUME_ITERATIONS="${NODE_BAO_KILL_RESUME_ITERATIONS:-}" NODE_BAO_RESTART_QEMU="${NODE_BAO_RESTART_QEMU:-}" HOSTILE_CPU_PROF="${HOSTILE_CPU_PROF:-}"
# CPU 1 plays the backend VM, CPU 0 the frontend (qemu/guest/bao-cpu-split says why).
pin=""
if [ "\$(nproc)" -ge 2 ]; then pin="taskset -c 1"; bao-cpu-split 0; fi
round=1
while :; do
  [ "${QEMU_TEST_REPEAT:-1}" -gt 1 ] && echo "== test:qemu round \$round of ${QEMU_TEST_REPEAT:-1}"
  \$pin node node_modules/vitest/vitest.mjs run --project qemu --no-file-parallelism \
    --reporter=default --reporter=json --outputFile.json=/tmp/qemu.json ${QEMU_TEST_FILTER:-}
  rc=\$?
  [ "\$rc" = 0 ] && [ "\$round" -lt "${QEMU_TEST_REPEAT:-1}" ] || break
  round=\$((round + 1))
done
[ -f /tmp/qemu.json ] && bao-export /tmp/qemu.json qemu.json
exit \$rc
JOB
rc=0
if [ "$run_guest" = 1 ]; then
  set +e
  bash "$here/run.sh" --name test-qemu --smp "${QEMU_TEST_SMP:-2}" --timeout "${QEMU_TEST_TIMEOUT:-2700}" --export-dir "$results" --script "$job"
  rc=$?
  set -e
  if [ -n "${RESULTS_JSON:-}" ]; then
    if [ -f "$results/qemu.json" ]; then
      cp "$results/qemu.json" "$RESULTS_JSON"
    else
      echo "test:qemu: the guest produced no JSON report" >&2
    fi
  fi
fi
if [ "$run_host" = 1 ]; then
  echo "test:qemu: host-side tests (test/qemu-host), each booting a guest of its own" >&2
  set +e
  npx vitest run --project qemu-host --reporter=default --reporter=json \
    --outputFile.json="${RESULTS_HOST_JSON:-$results/qemu-host.json}" ${QEMU_TEST_FILTER:-}
  hrc=$?
  set -e
  [ "$rc" = 0 ] && rc=$hrc
fi
exit "$rc"
