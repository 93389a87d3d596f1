#!/usr/bin/env bash
# `npm run demo`, the main job on a machine without a Bao board: set everything up, boot the
# Bao-equivalent QEMU machine, run `baoctl run` in it with examples/qemu-demo.yaml, use every
# served device from the frontend side and print a summary (scripts/demo-guest.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-cross
bash qemu/provision.sh >/dev/null
make -s -C qemu/bao-sim >/dev/null
bash qemu/build-image.sh
exec bash qemu/run.sh --name demo --smp 2 --timeout "${DEMO_TIMEOUT:-600}" \
  --file examples/qemu-demo.yaml:/project/examples/qemu-demo.yaml --script scripts/demo-guest.sh
