# Guest job of bench/blk/run.sh (runs as /job.sh in /project, busybox sh, under qemu/run.sh).
# One `baoctl run` serves two virtio-blk disks of the same size, each over its own image file
# in the guest's RAM: DM 0 with the io_uring engine, DM 1 with the thread-pool engine. The same
# fio jobs (direct I/O, libaio) then run, interleaved target by target, on:
#   uring       /dev/vdX served by node-bao, io_uring engine
#   threadpool  /dev/vdY served by node-bao, thread-pool engine
#   loop        /dev/loop0 over the io_uring disk's image: the kernel's own block path (the limit)
#   file        the image file itself (buffered: tmpfs has no O_DIRECT; the page cache is the floor)
# BENCH_RUNTIME (seconds per job), BENCH_ROUNDS, BENCH_PROFILE (1: the daemon runs under
# --cpu-prof), BENCH_PERF (1: perf samples the backend CPU) and PERF_CPU (the CPU perf samples: 1,
# or 0 for the frontend's) are prepended by the wrapper. Results: /tmp/blk-bench.txt, lines
# "result <job> <target> <round> <iops> <KiB/s>", "counters <job> <target> <round> <requests>
# <kicks> <interrupts> <trapped accesses> <max in flight>" (the device model's counters after
# the job, cumulative) and, with BENCH_PROFILE=1, "# profile ..." lines (self time by function).
set -u
RUNTIME=${BENCH_RUNTIME:-5}
ROUNDS=${BENCH_ROUNDS:-1}
PROFILE=${BENCH_PROFILE:-0}
PERF=${BENCH_PERF:-0}
STATUS=/tmp/bench-blk-status.sock
D=/sys/kernel/debug/bao-sim
OUT=/tmp/blk-bench.txt
# bench/guest-cpu.sh: cpu_window_start, cpu_window_cpus, cpu_window_threads.
. /usr/bin/bench-guest-cpu.sh
SIZE_MB=256

fail() { echo "bench: $*" >&2; exit 1; }

modprobe virtio_blk || fail "modprobe virtio_blk"
modprobe loop || fail "modprobe loop"
modprobe bao_sim ndms=2 frontends=0,1 || fail "modprobe bao_sim"
base() { awk '$1 == "mmio_base" {print $2}' $D/dm$1/info; }

for f in /tmp/bench-uring.img /tmp/bench-tp.img; do
  dd if=/dev/urandom of=$f bs=1M count=$SIZE_MB status=none || fail "making $f"
done
cat > /tmp/bench-blk.yaml <<YAML
devices:
  - id: 0
    type: block
    mmio_addr: $(base 0)
    data_plane: virtio
    file_path: /tmp/bench-uring.img
    serial: bench-uring
    engine: io_uring
  - id: 1
    type: block
    mmio_addr: $(base 1)
    data_plane: virtio
    file_path: /tmp/bench-tp.img
    serial: bench-tp
    engine: thread-pool
YAML

# Bao's two VMs on their own CPUs, as the QEMU suite plays them: frontend (fio) on CPU 0, the
# backend (node-bao) on CPU 1.
back=""
front=""
if [ "$(nproc)" -ge 2 ]; then
  bao-cpu-split 0
  back="taskset -c 1"
  front="taskset -c 0"
fi
prof=""
[ "$PROFILE" = 1 ] && prof="--cpu-prof --cpu-prof-dir=/tmp/prof --cpu-prof-interval 2000"
# perf resolves the JIT's functions through /tmp/perf-<pid>.map.
[ "$PERF" = 1 ] && prof="$prof --perf-basic-prof-only-functions"
$back node $prof bin/baoctl run -c /tmp/bench-blk.yaml --log-level info --log-format json --status-socket $STATUS > /tmp/baoctl-blk.log 2>&1 &
pid=$!

disk() { # serial -> vdX
  for s in /sys/block/vd*/serial; do
    [ -f "$s" ] && [ "$(cat "$s")" = "$1" ] && { basename "$(dirname "$s")"; return; }
  done
}
i=0
while [ -z "$(disk bench-uring)" ] || [ -z "$(disk bench-tp)" ]; do
  i=$((i + 1))
  [ $i -gt 360 ] && { cat /tmp/baoctl-blk.log; fail "the disks did not appear"; }
  kill -0 $pid 2>/dev/null || { cat /tmp/baoctl-blk.log; fail "baoctl exited"; }
  sleep 0.5
done
vu=/dev/$(disk bench-uring)
vt=/dev/$(disk bench-tp)
losetup /dev/loop0 /tmp/bench-uring.img || fail "losetup"
grep -o '"threadpool":[0-9]*' /tmp/baoctl-blk.log | head -n1 | sed 's/^/# /' > $OUT
echo "# disks: uring $vu, threadpool $vt, loop /dev/loop0, file /tmp/bench-uring.img; runtime ${RUNTIME}s x $ROUNDS rounds" >> $OUT
# The request sizes the guest may send (virtio_blk sets them from SIZE_MAX / SEG_MAX).
for v in $vu $vt; do
  q=/sys/block/${v#/dev/}/queue
  echo "# $v limits: max_sectors_kb $(cat $q/max_sectors_kb), max_segment_size $(cat $q/max_segment_size), max_segments $(cat $q/max_segments)" >> $OUT
done

# job name, fio arguments
run_job() {
  name=$1; shift
  r=1
  while [ $r -le $ROUNDS ]; do
    for t in uring threadpool loop file; do
      case $t in
        uring) dev=$vu; direct=1; dm=0 ;;
        threadpool) dev=$vt; direct=1; dm=1 ;;
        loop) dev=/dev/loop0; direct=1; dm=- ;;
        file) dev=/tmp/bench-uring.img; direct=0; dm=- ;;
      esac
      cpu_window_start $pid
      # BENCH_PERF=1: the backend CPU sampled over the first round's run of each job on node-bao;
      # with PERF_CPU=0 the frontend's CPU, over the loop device's run too (the reference).
      [ "$PERF" = 1 ] && [ "$r" = 1 ] && { [ "$dm" != - ] || [ "${PERF_CPU:-1}" = 0 -a "$t" = loop ]; } &&
        perf_window_start "$name-$t" $((RUNTIME + 1))
      $front fio --name=$name --filename=$dev --direct=$direct --ioengine=libaio --size=${SIZE_MB}M \
        --time_based --runtime=$RUNTIME --ramp_time=1 --group_reporting --output-format=json "$@" > /tmp/fio.json 2>/tmp/fio.err \
        || { cat /tmp/fio.err; fail "fio $name on $t"; }
      perf_window_wait
      echo "cpu $name $t $r $(cpu_window_cpus) $(cpu_window_threads)" >> $OUT
      node -e '
        const [name, t, r, dm, sock] = process.argv.slice(1);
        const j = JSON.parse(require("fs").readFileSync("/tmp/fio.json", "utf8")).jobs[0];
        const io = j.read.io_bytes > 0 ? j.read : j.write;
        console.log(`result ${name} ${t} ${r} ${io.iops.toFixed(0)} ${io.bw}`);
        if (dm !== "-") {
          require("http").get({ socketPath: sock, path: "/status" }, (res) => {
            let body = "";
            res.on("data", (c) => (body += c));
            res.on("end", () => {
              const d = JSON.parse(body).devices.find((x) => x.id === Number(dm));
              const m = d.metrics, tr = d.deviceModel.transport, sv = d.deviceModel.server;
              console.log(`counters ${name} ${t} ${r} ${m.reads + m.writes + m.flushes} ${tr.notifies} ${tr.usedInterrupts} ${sv.requests} ${m.maxInFlight}`);
            });
          });
        }
      ' "$name" "$t" "$r" "$dm" "$STATUS" >> $OUT
    done
    r=$((r + 1))
  done
}
run_job randread-4k-qd1 --rw=randread --bs=4k --iodepth=1
run_job randread-4k-qd32 --rw=randread --bs=4k --iodepth=32
run_job randwrite-4k-qd32 --rw=randwrite --bs=4k --iodepth=32
run_job read-1m-qd4 --rw=read --bs=1M --iodepth=4
run_job write-1m-qd4 --rw=write --bs=1M --iodepth=4

losetup -d /dev/loop0
# The drivers let go of the disks while the daemon still serves them (their reset is answered);
# a driver left bound to a dead device model would stall the guest's shutdown.
for v in $vu $vt; do
  echo "$(basename "$(readlink -f /sys/block/${v#/dev/}/device)")" > /sys/bus/virtio/drivers/virtio_blk/unbind
done
kill $pid
wait $pid
rmmod bao_sim
# The backend CPU's samples per sampled run (bench/guest-cpu.sh).
[ "$PERF" = 1 ] && perf_summaries $OUT
if [ "$PROFILE" = 1 ]; then
  # Self time by function over the whole run, the 25 largest (the daemon's one JS thread).
  node /usr/bin/bench-profile-summary.mjs /tmp/prof 25 >> $OUT 2>&1
fi
bao-export $OUT blk-bench.txt
