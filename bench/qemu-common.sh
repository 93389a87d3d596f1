# bench/qemu-common.sh: what every QEMU benchmark wrapper does before it boots the guest
# (bench/run-qemu-bench.sh, bench/net/run.sh, bench/blk/run.sh). Sourced, not run:
#   here=...; repo=...; cd "$repo"; . "$repo/bench/qemu-common.sh"
#   bench_prepare <label>   checks that `npm run build` ran (dist/, the addon), then builds what
#                           is missing of the guest (provision, bao_sim.ko, the image) under the
#                           same lock as qemu/run-tests.sh, so two builds never race.
# <label> prefixes the error messages (e.g. "bench/net").

bench_prepare() {
  local label=$1 need
  for need in dist build/Release/bao.node; do
    [ -e "$need" ] || { echo "$label: $need is missing: run 'npm run build' first" >&2; exit 1; }
  done
  mkdir -p qemu/out
  (
    flock 9
    bash qemu/provision.sh >/dev/null
    make -s -C qemu/bao-sim >/dev/null
    bash qemu/build-image.sh
  ) 9>qemu/out/.build.lock
}

# bench_guest_line <smp>: the host and guest the figures come from (printed above each table).
bench_guest_line() {
  local accel
  accel=$(cat qemu/out/kvm-probe.* 2>/dev/null | head -n1)
  echo "$(date -u +%Y-%m-%dT%H:%MZ), host $(nproc) cpus, load average $(cut -d' ' -f1-3 /proc/loadavg), guest ${BENCH_ACCEL:-${BAO_QEMU_ACCEL:-$accel}} smp $1"
}

# bench_tool_files <array name> <binary> [<guest path>]: appends to the named array the
# qemu/run.sh --file arguments that ship the host's <binary> (at <guest path>, default its own)
# and every library it links, at the same paths in the guest. Fails naming the Debian package
# to install when the host lacks it.
bench_tool_files() {
  local -n _files=$1
  local bin lib
  bin=$(command -v "$2") || { echo "bench: $2 is not installed here (apt-get install ${4:-$2})" >&2; exit 1; }
  _files+=(--file "$bin:${3:-$bin}")
  for lib in $(ldd "$bin" | awk '/=>/ && $3 ~ /^\// {print $3}'); do
    _files+=(--file "$(readlink -f "$lib"):$lib")
  done
}
