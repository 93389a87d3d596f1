# Guest job of bench/net/run.sh (runs as /job.sh in /project, busybox sh, under qemu/run.sh).
# Networking through node-bao's virtio-net next to the same measures over a veth pair (the
# kernel's own path between two namespaces: the floor), in one boot, the paths taking turns:
#   virtio  the guest's virtio_net interface in namespace nbguest, served by `baoctl run` over a
#           tap it creates in namespace nbtap (data_plane: virtio, BENCH_NET_PAIRS queue pairs)
#   veth    a veth pair between namespaces nbvg and nbvt
#   vhost   (BENCH_NET_VHOST=1) the same device with data_plane: vhost on DM 1, served by the
#           same `baoctl run` over its own tap: the kernel's vhost-net moves the frames;
#           namespaces nbvhguest / nbvhtap (one queue pair: vhost-net serves one)
# Measures: iperf3 TCP, one stream, guest to tap side (tx) and tap side to guest (rx), and a
# one-byte request/response rate (bench/net/rr.mjs). Clients run on CPU 0 (the frontend's),
# servers and the daemon on CPU 1 (the backend's), on every path alike.
# BENCH_NET_SECONDS, BENCH_NET_ROUNDS, BENCH_NET_PAIRS, BENCH_NET_VHOST are prepended by the
# wrapper. Results: /tmp/net-bench.txt, lines "result <path> <measure> <value> <unit> round <r>".
set -u
SECONDS_EACH=${BENCH_NET_SECONDS:-8}
ROUNDS=${BENCH_NET_ROUNDS:-2}
PAIRS=${BENCH_NET_PAIRS:-1}
VHOST=${BENCH_NET_VHOST:-0}
IP=/usr/local/bin/ip
IPERF=/usr/local/bin/iperf3
# bench/net/rr.mjs, shipped in the job layer by run.sh.
RR=/usr/bin/bench-net-rr.mjs
D=/sys/kernel/debug/bao-sim
OUT=/tmp/net-bench.txt
fail() { echo "bench-net: $*" >&2; tail -n 30 /tmp/baoctl-net.log 2>/dev/null >&2; exit 1; }
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

modprobe tun || fail "modprobe tun"
modprobe veth || fail "modprobe veth"
modprobe virtio_net || fail "modprobe virtio_net"
if [ "$VHOST" = 1 ]; then
  modprobe vhost_net || fail "modprobe vhost_net"
  modprobe bao_sim ndms=2 frontends=0,1 || fail "modprobe bao_sim"
else
  modprobe bao_sim ndms=1 frontends=0 || fail "modprobe bao_sim"
fi
bao-cpu-split 0
taskset -p 1 $$ > /dev/null
for ns in nbguest nbtap nbvg nbvt nbvhguest nbvhtap; do
  $IP netns add $ns
  $IP -n $ns link set lo up
done

# veth: the floor.
$IP link add vg type veth peer name vt
$IP link set vg netns nbvg
$IP link set vt netns nbvt
$IP -n nbvg addr add 10.61.0.2/24 dev vg
$IP -n nbvt addr add 10.61.0.1/24 dev vt
$IP -n nbvg link set vg up
$IP -n nbvt link set vt up

# virtio: node-bao's device over a tap.
base=$(awk '$1 == "mmio_base" {print $2}' $D/dm0/info)
cat > /tmp/bench-net.yaml <<YAML
devices:
  - id: 0
    type: net
    mmio_addr: $base
    data_plane: virtio
    tap_name: nbtap0
    mac_addr: "52:54:00:12:34:60"
    create_tap: true
    queue_pairs: $PAIRS
YAML
# vhost: the same device on DM 1 with data_plane: vhost, in the same daemon over its own tap.
if [ "$VHOST" = 1 ]; then
  base1=$(awk '$1 == "mmio_base" {print $2}' $D/dm1/info)
  cat >> /tmp/bench-net.yaml <<YAML
  - id: 1
    type: net
    mmio_addr: $base1
    data_plane: vhost
    tap_name: nbtap1
    mac_addr: "52:54:00:12:34:61"
    create_tap: true
YAML
fi
taskset -c 1 node bin/baoctl run -c /tmp/bench-net.yaml --log-level warn --log-format json --status-socket none > /tmp/baoctl-net.log 2>&1 &
daemon=$!
wait_for 180 "the daemon to create nbtap0" test -e /sys/class/net/nbtap0
# if_by_mac <mac>: the root namespace's interface with that address (the guest's virtio_net ones).
if_by_mac() {
  for n in /sys/class/net/*; do
    [ "$(cat $n/address 2>/dev/null)" = "$1" ] && basename $n && return 0
  done
  return 1
}
wait_for 120 "the virtio_net interface" if_by_mac 52:54:00:12:34:60
vif=$(if_by_mac 52:54:00:12:34:60)
$IP link set "$vif" netns nbguest
$IP -n nbguest addr add 10.60.0.2/24 dev "$vif"
# From the frontend CPU: bringing the link up sends control commands the driver spins on.
taskset -c 0 $IP -n nbguest link set "$vif" up
$IP link set nbtap0 netns nbtap
$IP -n nbtap addr add 10.60.0.1/24 dev nbtap0
$IP -n nbtap link set nbtap0 up
wait_for 60 "ping over the device" $IP netns exec nbguest ping -c 1 -W 2 10.60.0.1
wait_for 60 "ping over veth" $IP netns exec nbvg ping -c 1 -W 2 10.61.0.1

# vhost: DM 1's interface (told apart by its MAC) and tap.
if [ "$VHOST" = 1 ]; then
  wait_for 60 "the daemon to create nbtap1" test -e /sys/class/net/nbtap1
  wait_for 120 "the vhost virtio_net interface" if_by_mac 52:54:00:12:34:61
  vhif=$(if_by_mac 52:54:00:12:34:61)
  $IP link set "$vhif" netns nbvhguest
  $IP -n nbvhguest addr add 10.62.0.2/24 dev "$vhif"
  taskset -c 0 $IP -n nbvhguest link set "$vhif" up
  $IP link set nbtap1 netns nbvhtap
  $IP -n nbvhtap addr add 10.62.0.1/24 dev nbtap1
  $IP -n nbvhtap link set nbtap1 up
  wait_for 60 "ping over the vhost device" $IP netns exec nbvhguest ping -c 1 -W 2 10.62.0.1
fi

# path -> client namespace, server namespace, server address
client_ns() { case $1 in virtio) echo nbguest ;; vhost) echo nbvhguest ;; veth) echo nbvg ;; esac; }
server_ns() { case $1 in virtio) echo nbtap ;; vhost) echo nbvhtap ;; veth) echo nbvt ;; esac; }
server_ip() { case $1 in virtio) echo 10.60.0.1 ;; vhost) echo 10.62.0.1 ;; veth) echo 10.61.0.1 ;; esac; }
paths="veth virtio"
[ "$VHOST" = 1 ] && paths="veth virtio vhost"

# iperf_once <path> <tx|rx> <round>: one TCP stream for SECONDS_EACH s; the receiver's rate.
iperf_once() {
  p=$1; dir=$2; r=$3
  log=/tmp/iperf-server.log
  $IP netns exec "$(server_ns $p)" taskset -c 1 $IPERF -s -1 -B "$(server_ip $p)" > $log 2>&1 &
  spid=$!
  wait_for 60 "iperf3 to listen ($p)" grep -q listening $log
  rev=""; [ "$dir" = rx ] && rev="-R"
  tries=0
  until $IP netns exec "$(client_ns $p)" taskset -c 0 $IPERF -c "$(server_ip $p)" -t "$SECONDS_EACH" $rev -J > /tmp/iperf.json 2>/dev/null; do
    tries=$((tries + 1)); [ $tries -lt 5 ] || { kill $spid 2>/dev/null; fail "iperf3 $p $dir failed: $(cat /tmp/iperf.json)"; }
  done
  wait $spid 2>/dev/null
  bps=$(node -e 'const j = JSON.parse(require("fs").readFileSync("/tmp/iperf.json", "utf8")); console.log(j.end.sum_received.bits_per_second)')
  echo "result $p tcp-$dir $(awk -v b="$bps" 'BEGIN {printf "%.1f", b / 1e6}') Mbit/s round $r" >> $OUT
}

rr_once() {
  p=$1; r=$2
  log=/tmp/rr-server.log
  $IP netns exec "$(server_ns $p)" taskset -c 1 node $RR serve "$(server_ip $p)" 5301 > $log 2>&1 &
  spid=$!
  wait_for 60 "the rr server to listen ($p)" grep -q listening $log
  line=$($IP netns exec "$(client_ns $p)" taskset -c 0 node $RR run "$(server_ip $p)" 5301 "$SECONDS_EACH") || fail "rr $p failed"
  kill -TERM $spid; wait $spid 2>/dev/null
  echo "result $p rr $(echo "$line" | awk '{print $6}') trans/s round $r" >> $OUT
}

echo "# kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo) seconds=$SECONDS_EACH rounds=$ROUNDS pairs=$PAIRS" >> $OUT
r=1
while [ $r -le "$ROUNDS" ]; do
  for p in $paths; do iperf_once $p tx $r; done
  for p in $paths; do iperf_once $p rx $r; done
  for p in $paths; do rr_once $p $r; done
  r=$((r + 1))
done
kill -TERM $daemon
wait $daemon || fail "baoctl run exited $?"
cat $OUT
bao-export $OUT net-bench.txt
exit 0
