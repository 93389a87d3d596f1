#!/usr/bin/env bash
# bench/handoff/instructions.sh [-s <samples>] [class:offset[:value] ...]: user-space instructions
# per access that goes to JS, counted by valgrind's callgrind (deterministic, unlike this host's
# times): bench/handoff's round trips for one class at a time, run with <samples> and 3x
# <samples>, the difference of node's main (JS) thread's and the other threads' instruction
# counts divided by the difference of JS accesses (start-up and warm-up cancel out). What TCG
# multiplies in a guest is closer to this than to the host's wall clock. ~40 s per run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
samples=500
[ "${1:-}" = -s ] && { samples=$2; shift 2; }
classes=("$@")
[ ${#classes[@]} -gt 0 ] || classes=(features-read:0x10 queuesel-write:0x30:0)
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
mkdir -p .cache/bench
so=.cache/bench/fake-bao.so
[ -f "$so" ] && [ "$so" -nt bench/handoff/fake-bao.c ] || gcc -O2 -Wall -shared -fPIC -o "$so" bench/handoff/fake-bao.c -ldl -lpthread
work=$(mktemp -d .cache/bench/instructions.XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
# inclusive instructions of the functions of the request path, summed over node's threads
FUNCS=(
  "ThreadSafeFunction::AsyncCb|JS turn: tsfn dispatch, callback scope, delivery (all below)"
  "napi_create_arraybuffer|  the batch's ArrayBuffer"
  "napi_call_function|  the JS callback (decode, DeviceModelServer, transport, journal, complete)"
  "nodebao::(anonymous namespace)::Complete(|    addon.complete: arguments + ioctl"
  "AttachLoop::Run(std::shared_ptr<nodebao::AttachShared> const&) [|ATTACH thread, per access it hands over"
)
run() { # <samples> <class spec> <tag>: one line per FUNCS entry, "<inclusive Ir>", then the JS accesses
  local out="$repo/$work/$3.out"
  FAKE_BAO_FD=900 FAKE_BAO_BASE=0xa000000 FAKE_BAO_OUT="$out" FAKE_BAO_PLAN="$1 $2" LD_PRELOAD="$repo/$so" \
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$repo/$work/$3.cg" \
    node node_modules/vite-node/vite-node.mjs bench/handoff/bench.ts > "$work/$3.log" 2>&1 || { tail -20 "$work/$3.log"; exit 1; }
  for f in "$work/$3".cg-*; do callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null; done > "$work/$3.incl"
  for e in "${FUNCS[@]}"; do
    awk -v pat="${e%%|*}" 'index($0, pat) && !index($0, "'"'"'2") { v = $1; gsub(/,/, "", v); s += v } END { printf "%d\n", s }' "$work/$3.incl"
  done
  awk '/^cpu / { print $4 }' "$out"
}
echo "user-space instructions per access through JS (callgrind; the difference of a run with $samples and one with $((samples * 3)) samples per path, so start-up and JIT warm-up cancel out): $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- lib native bench || echo '+changes')"
k=0
for c in "${classes[@]}"; do
  k=$((k + 1)) # a run's files are its own: callgrind does not overwrite an earlier run's
  mapfile -t a < <(run "$samples" "$c" "a$k")
  mapfile -t b < <(run "$((samples * 3))" "$c" "b$k")
  n=${#FUNCS[@]}
  d=$(( b[n] - a[n] ))
  echo "${c%%:*} ($d more accesses through JS):"
  for ((i = 0; i < n; i++)); do
    awk -v l="${FUNCS[i]#*|}" -v x="${a[i]}" -v y="${b[i]}" -v d="$d" 'BEGIN { printf "  %8.0f  %s\n", (y - x) / d, l }'
  done
done
