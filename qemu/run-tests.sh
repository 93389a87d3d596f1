#!/usr/bin/env bash
# `npm run test:qemu`: the QEMU suite. Provisions if needed, builds bao_sim.ko and the image
# (only what changed), boots the guest once and runs `vitest run --project qemu` (all of
# test/qemu, one file after another: they load and unload the module) inside it, prints the
# guest's results and exits non-zero when a guest test fails or the guest times out or crashes.
# Does not build the addon or the TypeScript: `npm run build` must have been run.
# Environment: RESULTS_JSON=<path> also saves the guest's vitest JSON report there;
# QEMU_TEST_TIMEOUT (seconds, default 2700: the whole suite with the block, net, vhost and hostile-frontend files); QEMU_TEST_FILTER (vitest file filter, optional);
# NODE_BAO_VHOST_QEMU=1 runs the opt-in vhost-user test; NODE_BAO_KILL_RESUME=0 and
# NODE_BAO_KILL_RESTART=0 leave the kill-resume and kill-restart tests out (README: Development);
# NODE_BAO_KILL_RESUME_ITERATIONS=N and NODE_BAO_KILL_RESTART_ITERATIONS=N set their kills;
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
export NODE_BAO_VHOST_QEMU="${NODE_BAO_VHOST_QEMU:-}" NODE_BAO_KILL_RESTART="${NODE_BAO_KILL_RESTART:-}" NODE_BAO_KILL_RESTART_ITERATIONS="${NODE_BAO_KILL_RESTART_ITERATIONS:-}" NODE_BAO_KILL_RESUME="${NODE_BAO_KILL_RESUME:-}" NODE_BAO_KILL_RESUME_ITERATIONS="${NODE_BAO_KILL_RESUME_ITERATIONS:-}" NODE_BAO_RESTART_QEMU="${NODE_BAO_RESTART_QEMU:-}"
# CPU 1 plays the backend VM, CPU 0 the frontend (qemu/guest/bao-cpu-split says why).
pin=""
if [ "\$(nproc)" -ge 2 ]; then pin="taskset -c 1"; bao-cpu-split 0; fi
\$pin node node_modules/vitest/vitest.mjs run --project qemu --no-file-parallelism \
  --reporter=default --reporter=json --outputFile.json=/tmp/qemu.json ${QEMU_TEST_FILTER:-}
rc=\$?
[ -f /tmp/qemu.json ] && bao-export /tmp/qemu.json qemu.json
exit \$rc
JOB
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
exit "$rc"
