#!/usr/bin/env bash
# Runs one fuzz target under the coverage-guided engine (Jazzer.js, libFuzzer), in the Debian 13
# root scripts/fuzz-setup.sh makes, with this checkout bind-mounted at the same path.
#
# Usage: npm run fuzz -- <target> [--time S] [--runs N] [-- libFuzzer flags...]
#        npm run fuzz -- <target> --merge   (minimises: the checked-in corpus becomes the smallest set
#                                            of its inputs and .fuzz/<target>/corpus's that keeps their
#                                            coverage; named inputs, seed-* and finding-*, always stay)
#        npm run fuzz -- --list
# Targets are test/fuzz/targets/<target>.ts. New inputs go to .fuzz/<target>/corpus (not checked
# in); the seeds of test/fuzz/corpus/<target> are read too. Findings land in
# .fuzz/<target>/artifacts/; keep each one as a regression input in test/fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

usage() { sed -n '4,8p' "$0" | sed 's/^# //' >&2; exit 2; }

targets=$(ls test/fuzz/targets | sed -n 's/\.ts$//p')
[ $# -ge 1 ] || usage
if [ "$1" = --list ]; then echo "$targets"; exit 0; fi
target=$1
shift
if ! grep -qx -- "$target" <<<"$targets"; then
  echo "fuzz: no target '$target'; the targets are: $(echo $targets)" >&2
  exit 2
fi
time_s=""
runs=""
merge=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time_s=${2:?--time needs seconds}; shift 2 ;;
    --runs) runs=${2:?--runs needs a count}; shift 2 ;;
    --merge) merge=1; shift ;;
    --) shift; extra+=("$@"); break ;;
    *) echo "fuzz: unknown option '$1'" >&2; usage ;;
  esac
done

# The engine's own --timeout wins over libFuzzer's -timeout. 30 s: a run at `nice -n 19` on a
# loaded machine can be off the CPU for several seconds (an input of 2 ms once "timed out" after
# 7 s at the engine's default of 5 s); the oracle bounds the work per delivery by itself.
timeout_ms=${NODE_BAO_FUZZ_TIMEOUT_MS:-30000}

bash scripts/fuzz-setup.sh
root=${NODE_BAO_FUZZ_ROOT:-/var/cache/node-bao-fuzz/trixie}

echo "== compiling the targets (build/fuzz)"
npx tsc -p test/fuzz/tsconfig.json

work=$here/.fuzz/$target
mkdir -p "$work/corpus" "$work/artifacts" "test/fuzz/corpus/$target"
flags=(-artifact_prefix="$work/artifacts/" -print_final_stats=1 -max_len=4096 -rss_limit_mb=2048)
[ -n "$time_s" ] && flags+=(-max_total_time="$time_s")
[ -n "$runs" ] && flags+=(-runs="$runs")
flags+=("${extra[@]}")
corpora=("$work/corpus" "$here/test/fuzz/corpus/$target")
if [ "$merge" = 1 ]; then
  # libFuzzer's merge adds to the first directory what the others bring: merge everything into
  # an empty one, then it replaces the checked-in corpus (but for its named inputs).
  rm -rf "$work/merged"
  mkdir -p "$work/merged"
  flags+=(-merge=1)
  corpora=("$work/merged" "$here/test/fuzz/corpus/$target" "$work/corpus")
fi

# A target whose fuzz() is async (it awaits the device's promise completions, as blk does) runs
# in Jazzer's asynchronous mode; the others in the faster --sync mode.
sync=(--sync)
grep -q '^export async function fuzz' "test/fuzz/targets/$target.ts" && sync=()
cli=$here/test/fuzz/engine/node_modules/@jazzer.js/core/dist/cli.js
module=$here/build/fuzz/test/fuzz/targets/$target.js
# A private mount namespace: the bind mounts vanish with the run, whatever way it ends.
[ "$merge" = 1 ] || exec=exec
rc=0
${exec:-} unshare --mount --propagation private -- bash -c '
  set -e
  root=$1 here=$2; shift 2
  mkdir -p "$root$here"
  mount --bind "$here" "$root$here"
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev"
  exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 NODE_BAO_FUZZ_ENGINE=1 \
    sh -c "cd \"\$0\" && exec \"\$@\"" "$here" "$@"
' fuzz "$root" "$here" \
  nice -n 10 node --expose-gc --no-warnings "$cli" "$module" "${corpora[@]}" \
  "${sync[@]}" --timeout "$timeout_ms" --includes /build/fuzz/lib/ --excludes node_modules -- "${flags[@]}" || rc=$?
if [ "$rc" = 0 ] && [ -n "$(ls "$work/merged")" ]; then
  seeds=$here/test/fuzz/corpus/$target
  before=$(ls "$seeds" | wc -l)
  find "$seeds" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
  cp -n "$work/merged"/* "$seeds"/
  echo "fuzz: $target corpus minimised: $before inputs before, $(ls "$seeds" | wc -l) now (named inputs kept)"
fi
exit "$rc"
