#!/usr/bin/env bash
# Runs fuzz targets one after another at the lowest priority (idle CPU only), each to a number
# of executions or for a time, and keeps each run's libFuzzer log in .fuzz/<target>/campaign-*.log.
#
# Usage: bash scripts/fuzz-campaign.sh [--runs N | --time S] <target>...   (default: --runs 1000000)
# Needs root, like `npm run fuzz`. Prints one summary line per target at the end of its run
# (libFuzzer's executions, coverage and features); SIGINT to a run's node ends it with its stats.
set -uo pipefail
cd "$(dirname "$0")/.."
limit=(--runs 1000000)
case "${1:-}" in
  --runs) limit=(--runs "${2:?--runs needs a count}"); shift 2 ;;
  --time) limit=(--time "${2:?--time needs seconds}"); shift 2 ;;
esac
[ $# -ge 1 ] || { sed -n '5,6p' "$0" | sed 's/^# //' >&2; exit 2; }
for target in "$@"; do
  mkdir -p ".fuzz/$target"
  log=".fuzz/$target/campaign-$(date -u +%Y%m%dT%H%M%S).log"
  start=$(date +%s)
  nice -n 19 bash scripts/fuzz.sh "$target" "${limit[@]}" >"$log" 2>&1
  rc=$?
  end=$(date +%s)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "$target rc=$rc seconds=$((end - start)) executions=${execs:-?} last: ${last:-none} log=$log"
done
