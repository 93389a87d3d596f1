# Guest job of bench/fs/run.sh (runs as /job.sh in /project, busybox sh, under qemu/run.sh).
# virtiofs through node-bao's vhost_user data plane (Debian's virtiofsd serving a directory,
# the guest's own virtiofs driver mounting it) next to the same directory used directly (the
# guest's own RAM filesystem: the floor), in one boot, the targets taking turns job by job.
# fio (shipped into the job layer by run.sh) on CPU 0 (the frontend's); virtiofsd and
# `baoctl run` on CPU 1 (the backend's). BENCH_RUNTIME, BENCH_ROUNDS, BENCH_CACHE are prepended
# by the wrapper. Results: /tmp/fs-bench.txt, lines "result <job> <target> <round> <iops> <KiB/s>".
set -u
RUNTIME=${BENCH_RUNTIME:-5}
ROUNDS=${BENCH_ROUNDS:-1}
CACHE=${BENCH_CACHE:-none}
SIZE_MB=32
VIRTIOFSD=/usr/libexec/virtiofsd
SHARE=/tmp/fsb-share
SOCKDIR=/tmp/fsb/
MNT=/mnt/fsb
OUT=/tmp/fs-bench.txt
fail() { echo "bench-fs: $*" >&2; tail -n 30 /tmp/baoctl-fs.log /tmp/virtiofsd.log 2>/dev/null >&2; exit 1; }
# wait_for <seconds> <what> <command...>: polls the command (no fixed sleeps).
wait_for() {
  limit=$1; what=$2; shift 2
  t=0
  until "$@" > /dev/null 2>&1; do
    t=$((t + 1))
    [ "$t" -le $((limit * 5)) ] || fail "timed out waiting for $what"
    sleep 0.2
  done
}

[ -x $VIRTIOFSD ] || fail "$VIRTIOFSD is not in the image (qemu/provision.sh installs virtiofsd)"
modprobe virtiofs || fail "modprobe virtiofs"
modprobe bao_sim ndms=1 frontends=0 || fail "modprobe bao_sim"
bao-cpu-split 0
taskset -p 1 $$ > /dev/null
mkdir -p $SHARE $SOCKDIR $MNT
taskset -c 1 $VIRTIOFSD --socket-path=${SOCKDIR}fs0.sock -o source=$SHARE -o sandbox=chroot -o cache=$CACHE > /tmp/virtiofsd.log 2>&1 &
vfsd=$!
wait_for 60 "virtiofsd's socket" test -S ${SOCKDIR}fs0.sock
base=$(awk '$1 == "mmio_base" {print $2}' /sys/kernel/debug/bao-sim/dm0/info)
cat > /tmp/bench-fs.yaml <<YAML
devices:
  - id: 0
    type: fs
    mmio_addr: $base
    data_plane: vhost_user
    socket_path: $SOCKDIR
YAML
taskset -c 1 node bin/baoctl run -c /tmp/bench-fs.yaml --log-level warn --log-format json --status-socket none > /tmp/baoctl-fs.log 2>&1 &
daemon=$!
# Bound and live: DRIVER_OK (4) in the status of the virtio-fs device (ID 26).
fs_live() {
  for d in /sys/bus/virtio/devices/*; do
    [ "$(cat $d/device)" = 0x001a ] && [ -e $d/driver ] && [ $(( $(cat $d/status) & 4 )) -ne 0 ] && return 0
  done
  return 1
}
wait_for 180 "virtiofs to bind" fs_live
taskset -c 0 mount -t virtiofs bao-fs $MNT || fail "mount -t virtiofs"
echo "# kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo) virtiofsd cache=$CACHE; file ${SIZE_MB} MiB; runtime ${RUNTIME}s x $ROUNDS rounds; fio psync" >> $OUT

# run_job <name> <fio arguments...>: each target in turn, per round.
run_job() {
  name=$1; shift
  r=1
  while [ $r -le $ROUNDS ]; do
    for t in virtiofs local; do
      case $t in
        virtiofs) f=$MNT/fio-$name.dat ;;
        local) f=$SHARE/fio-local-$name.dat ;;
      esac
      taskset -c 0 fio --name=$name --filename=$f --ioengine=psync --size=${SIZE_MB}M --fallocate=none \
        --time_based --runtime=$RUNTIME --ramp_time=1 --group_reporting --output-format=json "$@" > /tmp/fio.json 2>/tmp/fio.err \
        || { cat /tmp/fio.err; fail "fio $name on $t"; }
      node -e '
        const j = JSON.parse(require("fs").readFileSync("/tmp/fio.json", "utf8")).jobs[0];
        const io = j.read.io_bytes > 0 ? j.read : j.write;
        console.log(`result ${process.argv[1]} ${process.argv[2]} ${process.argv[3]} ${io.iops.toFixed(0)} ${io.bw}`);
      ' "$name" "$t" "$r" >> $OUT
    done
    r=$((r + 1))
  done
}
run_job write-1m --rw=write --bs=1M
run_job read-1m --rw=read --bs=1M
run_job randread-4k --rw=randread --bs=4k
run_job randwrite-4k --rw=randwrite --bs=4k

taskset -c 0 umount $MNT || fail "umount"
kill -TERM $daemon
wait $daemon || fail "baoctl run exited $?"
kill -TERM $vfsd
wait $vfsd 2>/dev/null
cat $OUT
bao-export $OUT fs-bench.txt
exit 0
