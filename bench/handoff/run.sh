#!/usr/bin/env bash
# bench/handoff/run.sh [-s <samples>]: the trapped-access round trip on the host (fake-bao.c,
# bench.ts): node-bao with hot cells, node-bao all through JS, and a C ATTACH/COMPLETE loop, per
# register class, with the ratios of bench/run-qemu-bench.sh's mmio table. Needs the addon built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
samples=20000
[ "${1:-}" = -s ] && samples=$2
mkdir -p .cache/bench
so=.cache/bench/fake-bao.so
[ -f "$so" ] && [ "$so" -nt bench/handoff/fake-bao.c ] || gcc -O2 -Wall -shared -fPIC -o "$so" bench/handoff/fake-bao.c -ldl -lpthread
raw=.cache/bench/handoff.txt
rm -f "$raw"
FAKE_BAO_FD=900 FAKE_BAO_BASE=0xa000000 FAKE_BAO_OUT="$repo/$raw" \
  FAKE_BAO_PLAN="$samples isr-read:0x60 ack-write:0x64:0 magic-read:0x0 features-read:0x10 queuesel-write:0x30:0" \
  LD_PRELOAD="$repo/$so" taskset -c 1 node node_modules/vite-node/vite-node.mjs bench/handoff/bench.ts > "$raw.log" 2>&1 || { cat "$raw.log"; exit 1; }
echo "trapped-access round trip on the host (fake dispatcher, pipes): $(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $samples samples per path and class"
grep '^#' "$raw.log" || true
awk -v samples="$samples" '
  /^cpu / { cpu[++ncpu] = $0 }
  /^sample / { c = $2; l = $3; k = c SUBSEP l; mn[k] = $7; p50[k] = $11; p90[k] = $13; p99[k] = $15; if (!(c in seen)) { seen[c] = 1; cls[++n] = c } }
  END {
    printf "%-15s %-9s %8s %8s %8s %8s   %s\n", "class", "path", "min_us", "p50_us", "p90_us", "p99_us", "vs C floor min/p50/p90/p99"
    split("node-bao node-js c-floor", o, " ")
    for (i = 1; i <= n; i++) for (j = 1; j <= 3; j++) {
      k = cls[i] SUBSEP o[j]; f = cls[i] SUBSEP "c-floor"
      printf "%-15s %-9s %8.1f %8.1f %8.1f %8.1f   %.2fx %.2fx %.2fx %.2fx\n", (j == 1 ? cls[i] : ""), o[j], mn[k] / 1e3, p50[k] / 1e3, p90[k] / 1e3, p99[k] / 1e3, mn[k] / mn[f], p50[k] / p50[f], p90[k] / p90[f], p99[k] / p99[f]
    }
    if (ncpu > 0) {
      printf "\nCPU per access on the threads that serve it (schedstat, us): the JS thread per access it answered; each ATTACH thread and the floor per access of its path\n"
      printf "%-15s %12s %8s %16s %15s %9s   %s\n", "class", "js_accesses", "JS", "ATTACH node-bao", "ATTACH node-js", "C floor", "JS + ATTACH node-js vs floor"
      for (i = 1; i <= ncpu; i++) {
        split(cpu[i], w, " ")
        js = w[4] > 0 ? w[6] / w[4] : 0; ab = w[8] / samples; aj = w[10] / samples; fl = w[12] / samples
        printf "%-15s %12d %8.2f %16.2f %15.2f %9.2f   %.2fx\n", w[2], w[4], js / 1e3, ab / 1e3, aj / 1e3, fl / 1e3, (js + aj) / fl
      }
    }
  }' "$raw"
