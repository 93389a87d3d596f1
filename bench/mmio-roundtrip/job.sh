# Guest job of bench/run-qemu-bench.sh (runs as /job.sh in /project, busybox sh, under
# qemu/run.sh). Times frontend register READ round trips with bao-sim's debugfs bench
# (qemu/bao-sim/README.md: `dm<N>/bench` makes `count` accesses one after another, each waiting
# for its completion, and reports min/avg/max ns) against three responders, interleaved round
# by round in this one boot:
#   node-bao  DM 0 served by `baoctl run` (virtio-rng): frontend trap -> bao-sim queue ->
#             the addon's ATTACH thread -> JS (DeviceModelServer -> MmioTransport.read) ->
#             COMPLETE; offset 0 (MagicValue)
#   C floor   DM 1 served by qemu/tools/bao-bench-responder: ATTACH + COMPLETE in one C loop;
#             offset 0
#   in-kernel DM 1 at offset 0x50 (QueueNotify), inside the responder's ioeventfd range: the
#             access completes in bao-sim without any userspace (how a queue kick travels)
# A second pass takes BENCH_SAMPLES single round trips of each path, alternating access by
# access (qemu/tools/bao-bench-sample), for percentiles. BENCH_N (round trips per batch
# measurement), BENCH_ROUNDS and BENCH_SAMPLES are set by the wrapper, which prepends them. Results: /tmp/mmio-roundtrip.txt, exported to the host.
set -u
N=${BENCH_N:-200}
ROUNDS=${BENCH_ROUNDS:-25}
SAMPLES=${BENCH_SAMPLES:-2000}
D=/sys/kernel/debug/bao-sim
OUT=/tmp/mmio-roundtrip.txt

fail() { echo "bench: $*" >&2; exit 1; }

modprobe bao_sim ndms=2 || fail "modprobe bao_sim"
base0=$(awk '$1 == "mmio_base" {print $2}' $D/dm0/info)
base1=$(awk '$1 == "mmio_base" {print $2}' $D/dm1/info)
dmstat() { awk -v k="$2" '$1 == k {print $2}' $D/dm$1/stats; }

cat > /tmp/bench-rng.yaml <<YAML
devices:
  - id: 0
    type: rng
    mmio_addr: $base0
    data_plane: virtio
YAML
# With 2 vCPUs (--smp 2) the guest plays Bao's two VMs on their own CPUs, as the QEMU suite does:
# the frontend (this shell, whose debugfs writes are the trapped accesses) and the kernel's own
# threads on CPU 0, the backends on CPU 1. With one vCPU all share it.
back=""
if [ "$(nproc)" -ge 2 ]; then
  bao-cpu-split 0
  taskset -p 1 $$ > /dev/null
  back="taskset -c 1"
fi
$back node bin/baoctl run -c /tmp/bench-rng.yaml --log-level warn --log-format json --status-socket none > /tmp/baoctl.log 2>&1 &
node_pid=$!
$back bao-bench-responder 1 "$base1" 0x50 > /tmp/responder.log 2>&1 &
c_pid=$!

# An access queued before a backend attaches waits for it (FIFO), so the first MagicValue read
# of each DM doubles as the readiness check (node starts slowly under TCG: allow 3 minutes).
access_read() { # dm off -> value
  timeout 180 sh -c "exec 4<>$D/dm$1/access && echo 'read $2 4' >&4 && cat <&4"
}
t0=$(cut -d' ' -f1 /proc/uptime)
v=$(access_read 1 0)
[ "$v" = 0x74726976 ] || { cat /tmp/responder.log; fail "the C responder did not answer MagicValue ($v)"; }
[ "$(dmstat 1 ioeventfds)" = 1 ] || fail "the responder's ioeventfd is not registered"
[ "$(access_read 1 0x50)" = 0x0 ] || fail "the ioeventfd range did not complete in-kernel"
v=$(access_read 0 0)
[ "$v" = 0x74726976 ] || { cat /tmp/baoctl.log; fail "node-bao did not answer MagicValue ($v)"; }
echo "bench: backends ready after $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {print b - a}') s"

bench() { # dm off count -> "min avg max"
  exec 3<>$D/dm$1/bench
  echo "$3 $2 4" >&3
  cat <&3 | awk '$1 == "min_ns" {mn = $2} $1 == "avg_ns" {av = $2} $1 == "max_ns" {mx = $2} END {print mn, av, mx}'
  exec 3>&-
}
run() { # variant round count
  case $1 in
    node-bao) set -- "$1" "$2" "$3" 0 0 ;;
    c-floor) set -- "$1" "$2" "$3" 1 0 ;;
    in-kernel) set -- "$1" "$2" "$3" 1 0x50 ;;
  esac
  echo "$1 $2 $(bench "$4" "$5" "$3")"
}

: > $OUT
echo "# N=$N rounds=$ROUNDS kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)" >> $OUT
# Warm-up (JIT, caches), not recorded.
for v in node-bao c-floor in-kernel; do run $v 0 $((N / 4 + 1)) > /dev/null; done
set -- node-bao c-floor in-kernel
r=1
while [ $r -le "$ROUNDS" ]; do
  # Rotate the order each round.
  for v in "$@"; do run $v $r "$N" >> $OUT; done
  set -- "$2" "$3" "$1"
  r=$((r + 1))
done
# Second view: single round trips, the three paths taking turns access by access (percentiles).
bao-bench-sample "$SAMPLES" node-bao:0:0 c-floor:1:0 in-kernel:1:0x50 | sed 's/^/sample /' >> $OUT || fail "bao-bench-sample"
# Diagnostic: node-bao's single trips alone (nothing else running between its accesses), to
# tell its own tail from the cost of sharing the vCPU with the other responder.
bao-bench-sample "$((SAMPLES / 2))" node-alone:0:0 | sed 's/^/sample /' >> $OUT || fail "bao-bench-sample"
echo "# node-bao requests: $(dmstat 0 requests), completions: $(dmstat 0 completions); dm1 requests: $(dmstat 1 requests), ioeventfd_swallowed: $(dmstat 1 ioeventfd_swallowed)" >> $OUT
cat $OUT

kill -TERM $node_pid $c_pid
wait $node_pid
node_rc=$?
wait $c_pid
cat /tmp/responder.log
[ -s /tmp/baoctl.log ] && { echo "--- baoctl log"; tail -n 20 /tmp/baoctl.log; }
bao-export $OUT mmio-roundtrip.txt
[ $node_rc = 0 ] || fail "baoctl run exited $node_rc"
exit 0
