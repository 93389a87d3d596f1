# Guest job of bench/run-qemu-bench.sh (runs as /job.sh in /project, busybox sh, under
# qemu/run.sh). Two parts in this one boot:
#
# 1. Frontend register round trips per register class, single trips timed by bao-sim's debugfs
#    `dm<N>/bench` (count 1; qemu/tools/bao-bench-sample), the responders taking turns access by
#    access so that host noise falls on all of them alike:
#      node-bao   DM 0, `baoctl run` (virtio-rng) as shipped: hot registers answered by the
#                 addon's ATTACH thread (lib/vmm/hot-registers.ts), the rest by JS
#      node-js    DM 2, the same with NODE_BAO_HOT_REGISTERS=0: every access through JS
#                 (ATTACH thread -> ThreadSafeFunction -> DeviceModelServer -> COMPLETE)
#      c-floor    DM 1, qemu/tools/bao-bench-responder: ATTACH + COMPLETE in one C loop
#    Classes: isr-read (InterruptStatus), ack-write (InterruptACK of 0), magic-read (MagicValue):
#    hot cells; features-read (DeviceFeatures) cold; queuesel-write (QueueSel 0) state-changing.
# 2. Idle: one `baoctl run` serving 16 virtio-rng device models (the driver's maximum), nobody
#    talking to them, kick watchdog on: CPU seconds (utime + stime) over BENCH_IDLE_S and RSS.
#
# BENCH_SAMPLES, BENCH_IDLE_S are prepended by the wrapper. Results: /tmp/mmio-roundtrip.txt.
set -u
SAMPLES=${BENCH_SAMPLES:-1000}
IDLE_S=${BENCH_IDLE_S:-60}
D=/sys/kernel/debug/bao-sim
OUT=/tmp/mmio-roundtrip.txt

fail() { echo "bench: $*" >&2; exit 1; }

modprobe bao_sim ndms=16 || fail "modprobe bao_sim"
base() { awk '$1 == "mmio_base" {print $2}' $D/dm$1/info; }
dmstat() { awk -v k="$2" '$1 == k {print $2}' $D/dm$1/stats; }

rng_yaml() { # file ids... : one virtio-rng per DM id
  f=$1; shift
  echo "devices:" > "$f"
  for id in "$@"; do
    printf '  - id: %s\n    type: rng\n    mmio_addr: %s\n    data_plane: virtio\n' "$id" "$(base "$id")" >> "$f"
  done
}
rng_yaml /tmp/bench-hot.yaml 0
rng_yaml /tmp/bench-js.yaml 2

# With 2 vCPUs (--smp 2) the guest plays Bao's two VMs on their own CPUs, as the QEMU suite does:
# the frontend (this shell, whose debugfs writes are the trapped accesses) and the kernel's own
# threads on CPU 0, the backends on CPU 1. With one vCPU all share it.
back=""
if [ "$(nproc)" -ge 2 ]; then
  bao-cpu-split 0
  taskset -p 1 $$ > /dev/null
  back="taskset -c 1"
fi
run_node() { # yaml log [env]
  $back env ${3:-} node bin/baoctl run -c "$1" --log-level warn --log-format json --status-socket none > "$2" 2>&1 &
}
run_node /tmp/bench-hot.yaml /tmp/baoctl-hot.log
hot_pid=$!
run_node /tmp/bench-js.yaml /tmp/baoctl-js.log NODE_BAO_HOT_REGISTERS=0
js_pid=$!
$back bao-bench-responder 1 "$(base 1)" > /tmp/responder.log 2>&1 &
c_pid=$!

# An access queued before a backend attaches waits for it (FIFO), so the first MagicValue read
# of each DM doubles as the readiness check (node starts slowly under TCG: allow 3 minutes).
access_read() { # dm off -> value
  timeout 180 sh -c "exec 4<>$D/dm$1/access && echo 'read $2 4' >&4 && cat <&4"
}
t0=$(cut -d' ' -f1 /proc/uptime)
for dm in 1 0 2; do
  v=$(access_read $dm 0)
  [ "$v" = 0x74726976 ] || { cat /tmp/responder.log /tmp/baoctl-*.log; fail "DM $dm did not answer MagicValue ($v)"; }
done
echo "bench: backends ready after $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {print b - a}') s"

: > $OUT
echo "# samples=$SAMPLES kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)" >> $OUT
# class offset [value]
for spec in isr-read:0x60 ack-write:0x64:0 magic-read:0x0 features-read:0x10 queuesel-write:0x30:0; do
  class=${spec%%:*}
  rest=${spec#*:}
  # Warm-up (JIT, caches), not recorded.
  bao-bench-sample 100 node-bao:0:$rest node-js:2:$rest c-floor:1:$rest > /dev/null || fail "bao-bench-sample $class"
  bao-bench-sample "$SAMPLES" node-bao:0:$rest node-js:2:$rest c-floor:1:$rest | sed "s/^/sample $class /" >> $OUT \
    || fail "bao-bench-sample $class"
done
echo "# node-bao DM 0 requests: $(dmstat 0 requests), completions: $(dmstat 0 completions); node-js DM 2 requests: $(dmstat 2 requests), completions: $(dmstat 2 completions)" >> $OUT
kill -TERM $hot_pid $js_pid $c_pid
wait $hot_pid; hot_rc=$?
wait $js_pid; js_rc=$?
wait $c_pid
for f in /tmp/baoctl-hot.log /tmp/baoctl-js.log; do
  grep -h 'device model closed' "$f" | sed 's/^/# closed: /' | cut -c1-400 >> $OUT
done
[ $hot_rc = 0 ] || { tail -n 20 /tmp/baoctl-hot.log; fail "baoctl run (hot) exited $hot_rc"; }
[ $js_rc = 0 ] || { tail -n 20 /tmp/baoctl-js.log; fail "baoctl run (js) exited $js_rc"; }

if [ "$IDLE_S" -gt 0 ]; then
  rng_yaml /tmp/bench-idle.yaml 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
  run_node /tmp/bench-idle.yaml /tmp/baoctl-idle.log
  idle_pid=$!
  for dm in 0 15; do
    [ "$(access_read $dm 0)" = 0x74726976 ] || { tail -n 20 /tmp/baoctl-idle.log; fail "idle: DM $dm did not answer"; }
  done
  # A bare node process started alongside: what an idle Node.js costs here by itself.
  $back node -e 'setInterval(() => {}, 1 << 30)' &
  bare_pid=$!
  sleep 2 # startup settles (module loading, JIT)
  cpu() { awk '{print $14 + $15}' /proc/$1/stat; }
  tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
  secs() { awk -v a="$1" -v b="$2" -v t="$tck" 'BEGIN {printf "%.2f", (b - a) / t}'; }
  # Two windows back to back: the first still carries the tail of startup (lazy compilation, GC).
  for w in 1 2; do
    c0=$(cpu $idle_pid); b0=$(cpu $bare_pid)
    sleep "$IDLE_S"
    c1=$(cpu $idle_pid); b1=$(cpu $bare_pid)
    rss=$(awk '$1 == "VmRSS:" {print $2}' /proc/$idle_pid/status)
    thr=$(awk '$1 == "Threads:" {print $2}' /proc/$idle_pid/status)
    echo "idle devices 16 window_s $IDLE_S cpu_s $(secs "$c0" "$c1") rss_kb $rss threads $thr bare_node_cpu_s $(secs "$b0" "$b1") window $w" >> $OUT
  done
  kill -TERM $bare_pid
  kill -TERM $idle_pid
  wait $idle_pid || fail "baoctl run (idle) failed"
fi
cat $OUT
bao-export $OUT mmio-roundtrip.txt
exit 0
