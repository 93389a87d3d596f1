# Guest job of bench/net/run.sh (runs as /job.sh in /project, busybox sh, under qemu/run.sh).
# Networking through node-bao's virtio-net next to the same measures over a veth pair (the
# kernel's own path between two namespaces: the limit), in one boot, the paths taking turns:
#   virtio     the guest's virtio_net interface in namespace nbg1, served by `baoctl run` over a
#              tap it creates in namespace nbt1: one queue pair (device model 0)
#   virtio-mq  the same with BENCH_NET_PAIRS queue pairs (device model 1, namespaces nbgm/nbtm),
#              served by the same daemon (the paths take turns: one is busy at a time)
#   veth       a veth pair between namespaces nbvg and nbvt
#   vhost      (BENCH_NET_VHOST=1) the same device with data_plane: vhost on device model 2, served
#              by the same daemon over its own tap (namespaces nbvhg/nbvht): the kernel's
#              vhost-net moves the frames (one queue pair)
# Measures: iperf3 TCP guest to tap side (tcp-tx) and back (tcp-rx), one stream and
# BENCH_NET_STREAMS streams (tcp-tx-N, tcp-rx-N), and a one-byte request/response rate
# (bench/net/rr.mjs). One stream and rr: the client on CPU 0 (the frontend's). Several streams:
# two clients, one on each CPU (Linux steers a CPU's transmissions to its own queue pair, so
# this is what lets several pairs carry traffic). Servers and the daemon on CPU 1 (the
# backend's). Every path is measured the same way. Then, unless BENCH_NET_NAPI_OFF=0, tcp-tx,
# tcp-tx-N and rr again with the guest driver's transmit NAPI off (suffix -napioff).
# BENCH_NET_SECONDS, BENCH_NET_ROUNDS, BENCH_NET_PAIRS, BENCH_NET_STREAMS, BENCH_NET_VHOST,
# BENCH_NET_NAPI_OFF, BENCH_NET_PROFILE (1: the daemon under --cpu-prof), BENCH_NET_PERF,
# BENCH_NET_PERF_CALLERS, BENCH_NET_STRACE and BENCH_NET_NODE_FLAGS (run.sh's header) are
# prepended by the wrapper. Results: /tmp/net-bench.txt, lines
# "result <path> <measure> <value> <unit> round <r>", "detail <path> <measure> round <r>
# retransmits=N max-cwnd=B mean-rtt-us=U cpu-client/server=C/S cpuN-busy=B cpuN-sirq=S" (the
# sender's TCP view, iperf3's CPU shares, each CPU's busy and softirq %), "threads <path>
# <measure> round <r> group=U/S ..." (the daemon's threads, bench/guest-cpu.sh), "counters
# <path> <measure> round <r> ..." (per-queue kicks and interrupts on our device,
# bench/net/counters.mjs), and the devices' counters at the end.
set -u
SECONDS_EACH=${BENCH_NET_SECONDS:-6}
ROUNDS=${BENCH_NET_ROUNDS:-2}
PAIRS=${BENCH_NET_PAIRS:-2}
STREAMS=${BENCH_NET_STREAMS:-4}
VHOST=${BENCH_NET_VHOST:-0}
NAPI_OFF=${BENCH_NET_NAPI_OFF:-1}
PROFILE=${BENCH_NET_PROFILE:-0}
PERF=${BENCH_NET_PERF:-0}
STRACE=${BENCH_NET_STRACE:-0}
IP=/usr/local/bin/ip
IPERF=/usr/local/bin/iperf3
# bench/net/rr.mjs, shipped in the job layer by run.sh.
RR=/usr/bin/bench-net-rr.mjs
COUNTERS=/usr/bin/bench-net-counters.mjs
# bench/guest-cpu.sh: cpu_window_start, cpu_window_cpus, cpu_window_threads.
. /usr/bin/bench-guest-cpu.sh
D=/sys/kernel/debug/bao-sim
OUT=/tmp/net-bench.txt
STATUS=/tmp/bench-net-status.sock
fail() { echo "bench-net: $*" >&2; tail -n 30 /tmp/baoctl-net.log 2>/dev/null >&2; [ -f $OUT ] && bao-export $OUT net-bench.txt; exit 1; }
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
  modprobe bao_sim ndms=3 frontends=0,1,2 || fail "modprobe bao_sim"
else
  modprobe bao_sim ndms=2 frontends=0,1 || fail "modprobe bao_sim"
fi
bao-cpu-split 0
taskset -p 1 $$ > /dev/null
for ns in nbg1 nbt1 nbgm nbtm nbvg nbvt nbvhg nbvht; do
  $IP netns add $ns
  $IP -n $ns link set lo up
done

# veth: the limit.
$IP link add vg type veth peer name vt
$IP link set vg netns nbvg
$IP link set vt netns nbvt
$IP -n nbvg addr add 10.61.0.2/24 dev vg
$IP -n nbvt addr add 10.61.0.1/24 dev vt
$IP -n nbvg link set vg up
$IP -n nbvt link set vt up

# virtio and virtio-mq: node-bao's device over a tap, one daemon for both.
base0=$(awk '$1 == "mmio_base" {print $2}' $D/dm0/info)
base1=$(awk '$1 == "mmio_base" {print $2}' $D/dm1/info)
cat > /tmp/bench-net.yaml <<YAML
devices:
  - id: 0
    type: net
    mmio_addr: $base0
    data_plane: virtio
    tap_name: nbtap1
    mac_addr: "52:54:00:12:34:60"
    create_tap: true
    queue_pairs: 1
  - id: 1
    type: net
    mmio_addr: $base1
    data_plane: virtio
    tap_name: nbtapm
    mac_addr: "52:54:00:12:34:61"
    create_tap: true
    queue_pairs: $PAIRS
YAML
# vhost: the same device on DM 2 with data_plane: vhost, in the same daemon over its own tap.
if [ "$VHOST" = 1 ]; then
  base2=$(awk '$1 == "mmio_base" {print $2}' $D/dm2/info)
  cat >> /tmp/bench-net.yaml <<YAML
  - id: 2
    type: net
    mmio_addr: $base2
    data_plane: vhost
    tap_name: nbtapv
    mac_addr: "52:54:00:12:34:62"
    create_tap: true
YAML
fi
prof=""
[ "$PROFILE" = 1 ] && prof="--cpu-prof --cpu-prof-dir=/tmp/prof --cpu-prof-interval 2000"
# perf resolves the JIT's functions through /tmp/perf-<pid>.map.
[ "$PERF" = 1 ] && prof="$prof --perf-basic-prof-only-functions"
# BENCH_NET_NODE_FLAGS: more flags for the daemon's node (e.g. --trace-deopt; its output goes to
# /tmp/baoctl-net.log, summarised at the end when it holds deoptimisations).
taskset -c 1 node $prof ${BENCH_NET_NODE_FLAGS:-} bin/baoctl run -c /tmp/bench-net.yaml --log-level warn --log-format json --status-socket $STATUS > /tmp/baoctl-net.log 2>&1 &
daemon=$!
wait_for 180 "the daemon to create its taps" test -e /sys/class/net/nbtap1 -a -e /sys/class/net/nbtapm
# virtio_if <mac>: the guest interface with that address (the devices probe in any order).
virtio_if() {
  for d in /sys/bus/virtio/devices/*; do
    [ "$(cat $d/device)" = 0x0001 ] && [ -d $d/net ] || continue
    for n in $d/net/*; do [ "$(cat $n/address 2>/dev/null)" = "$1" ] && basename $n && return 0; done
  done
  return 1
}
# guest_side <mac> <guest ns> <tap> <tap ns> <subnet>
guest_side() {
  wait_for 120 "the virtio_net interface $1" virtio_if "$1"
  vif=$(virtio_if "$1")
  $IP link set "$vif" netns "$2"
  $IP -n "$2" addr add "$5.2/24" dev "$vif"
  # From the frontend CPU: bringing the link up sends control commands the driver spins on.
  taskset -c 0 $IP -n "$2" link set "$vif" up
  $IP link set "$3" netns "$4"
  $IP -n "$4" addr add "$5.1/24" dev "$3"
  $IP -n "$4" link set "$3" up
  wait_for 60 "ping over $3" $IP netns exec "$2" ping -c 1 -W 2 "$5.1"
  echo "# $3: guest interface $vif, queues $($IP netns exec "$2" ls /sys/class/net/$vif/queues | tr '\n' ' ')" >> $OUT
}
guest_side 52:54:00:12:34:60 nbg1 nbtap1 nbt1 10.60.0
VIF_VIRTIO=$vif
guest_side 52:54:00:12:34:61 nbgm nbtapm nbtm 10.62.0
VIF_MQ=$vif
if [ "$VHOST" = 1 ]; then
  wait_for 60 "the daemon to create nbtapv" test -e /sys/class/net/nbtapv
  guest_side 52:54:00:12:34:62 nbvhg nbtapv nbvht 10.63.0
  VIF_VHOST=$vif
fi
wait_for 60 "ping over veth" $IP netns exec nbvg ping -c 1 -W 2 10.61.0.1

# path -> client namespace, server namespace, server address
client_ns() { case $1 in virtio) echo nbg1 ;; virtio-mq) echo nbgm ;; vhost) echo nbvhg ;; veth) echo nbvg ;; esac; }
server_ns() { case $1 in virtio) echo nbt1 ;; virtio-mq) echo nbtm ;; vhost) echo nbvht ;; veth) echo nbvt ;; esac; }
server_ip() { case $1 in virtio) echo 10.60.0.1 ;; virtio-mq) echo 10.62.0.1 ;; vhost) echo 10.63.0.1 ;; veth) echo 10.61.0.1 ;; esac; }
paths="veth virtio virtio-mq"
[ "$VHOST" = 1 ] && paths="$paths vhost"

# listening <ns> <port>: a TCP socket listens on that port in that namespace (/proc/net/tcp:
# state 0A). Servers' own "listening" lines are not used: iperf3 buffers its output to a file.
listening() {
  hex=$(printf '%04X' "$2")
  $IP netns exec "$1" awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp
}

# iperf_json <file> <key> [<after>]: the first value of "key" in iperf3's pretty-printed JSON
# (after the line naming <after>; awk: a Node start per measure costs seconds under TCG). Keys used:
# sum_received's bits_per_second, sum_sent's retransmits, the first stream's sender
# max_snd_cwnd (bytes) and mean_rtt (us; Linux's tcp_info, present when this side sent).
iperf_json() {
  awk -v key="\"$2\"" -v after="${3:+\"$3\"}" '
    BEGIN { f = (after == "") }
    !f && index($0, after) { f = 1 }
    f && index($0, key) { v = $2; gsub(/[^0-9.eE+-]/, "", v); print v; exit }' "$1"
}

# iperf_once <path> <tx|rx> <streams> <round>: TCP for SECONDS_EACH s; the receivers' rate.
# One stream: one client on CPU 0 (the frontend's). Several: two clients, one on each CPU, with
# half the streams each, so that transmit steering (XPS: a queue per CPU) can use two queue
# pairs; every path is measured the same way. Servers on CPU 1.
iperf_once() {
  p=$1; dir=$2; n=$3; r=$4
  clients=1; per=$n
  [ "$n" -gt 1 ] && { clients=2; per=$(( (n + 1) / 2 )); }
  rev=""; [ "$dir" = rx ] && rev="-R"
  spids=""
  k=0
  while [ $k -lt $clients ]; do
    port=$((5201 + k))
    $IP netns exec "$(server_ns $p)" taskset -c 1 $IPERF -s -1 -p $port -B "$(server_ip $p)" > /tmp/iperf-server-$k.log 2>&1 &
    spids="$spids $!"
    wait_for 60 "iperf3 to listen ($p, port $port)" listening "$(server_ns $p)" $port
    k=$((k + 1))
  done
  k=0
  cpids=""
  # BENCH_NET_PERF=1: the backend CPU sampled (perf, cpu-clock) during the first round's
  # one-stream measures of each path, summarised at the end.
  if [ "$PERF" = 1 ] && [ "$n" = 1 ] && [ "$r" = 1 ] && [ -z "${MEASURE_SUFFIX:-}" ]; then
    perf_window_start $p-$dir "$SECONDS_EACH"
  fi
  # BENCH_NET_STRACE=1: the daemon's system calls counted (strace -c) during the first round's
  # one-stream measures of our paths (strace slows what it traces: counts, not times).
  stpid=""
  if [ "$STRACE" = 1 ] && [ "$p" != veth ] && [ "$n" = 1 ] && [ "$r" = 1 ] && [ -z "${MEASURE_SUFFIX:-}" ]; then
    strace -c -f -p $daemon -o /tmp/strace-$p-$dir.txt 2> /dev/null &
    stpid=$!
  fi
  cpu_window_start $daemon
  while [ $k -lt $clients ]; do
    ( tries=0
      until $IP netns exec "$(client_ns $p)" taskset -c $k $IPERF -c "$(server_ip $p)" -p $((5201 + k)) -t "$SECONDS_EACH" -P "$per" $rev -J > /tmp/iperf-$k.json 2>/dev/null; do
        tries=$((tries + 1)); [ $tries -lt 5 ] || exit 1
      done ) &
    cpids="$cpids $!"
    k=$((k + 1))
  done
  for c in $cpids; do wait $c || { kill $spids 2>/dev/null; fail "iperf3 $p $dir failed: $(cat /tmp/iperf-*.json)"; }; done
  for s_ in $spids; do wait $s_ 2>/dev/null; done
  perf_window_wait
  if [ -n "$stpid" ]; then kill -INT $stpid; wait $stpid 2>/dev/null; fi
  cpus=$(cpu_window_cpus)
  threads=$(cpu_window_threads)
  total=0; retrans=0; cwnd=""; rtt=""; cpu=""
  k=0
  while [ $k -lt $clients ]; do
    bps=$(iperf_json /tmp/iperf-$k.json bits_per_second sum_received)
    [ -n "$bps" ] || fail "iperf3 $p $dir: no sum_received in its output"
    total=$(awk -v a="$total" -v b="$bps" 'BEGIN { printf "%.0f", a + b }')
    rt=$(iperf_json /tmp/iperf-$k.json retransmits sum_sent)
    [ -n "$rt" ] && retrans=$((retrans + ${rt%.*}))
    if [ $k = 0 ]; then
      cwnd=$(iperf_json /tmp/iperf-$k.json max_snd_cwnd)
      rtt=$(iperf_json /tmp/iperf-$k.json mean_rtt)
      ch=$(iperf_json /tmp/iperf-$k.json host_total cpu_utilization_percent)
      cr=$(iperf_json /tmp/iperf-$k.json remote_total cpu_utilization_percent)
      cpu="${ch%%.*}/${cr%%.*}"
    fi
    k=$((k + 1))
  done
  mbps=$(awk -v v="$total" 'BEGIN { printf "%.1f", v / 1e6 }')
  m=tcp-$dir; [ "$n" = 1 ] || m=tcp-$dir-$n
  m=$m${MEASURE_SUFFIX:-}
  echo "result $p $m $mbps Mbit/s round $r" >> $OUT
  # The sender's view: retransmitted segments (all clients), its largest congestion window and
  # mean RTT (first stream; reported when the sender is the client: tcp-tx); the CPU share
  # iperf3 measured for its client and server processes (first client, %).
  echo "detail $p $m round $r retransmits=$retrans max-cwnd=${cwnd:--} mean-rtt-us=${rtt:--} cpu-client/server=$cpu $cpus" >> $OUT
  echo "threads $p $m round $r $threads" >> $OUT
  counters_once $p $m $r
}

# counters_once <path> <measure> <round>: per-queue kicks and interrupts on our device during
# the measure just taken (bench/net/counters.mjs); nothing for veth, nor for vhost (the kernel
# takes its kicks and raises its interrupts: the daemon never sees them).
counters_once() {
  case $1 in
    virtio) line=$(node $COUNTERS $STATUS 0 1 nbg1 "$VIF_VIRTIO" /tmp/counters-0.json) ;;
    virtio-mq) line=$(node $COUNTERS $STATUS 1 "$PAIRS" nbgm "$VIF_MQ" /tmp/counters-1.json) ;;
    *) return 0 ;;
  esac
  [ -n "$line" ] && echo "counters $1 $2 round $3 $line" >> $OUT
  return 0
}

rr_once() {
  p=$1; r=$2
  log=/tmp/rr-server.log
  $IP netns exec "$(server_ns $p)" taskset -c 1 node $RR serve "$(server_ip $p)" 5301 > $log 2>&1 &
  spid=$!
  wait_for 60 "the rr server to listen ($p)" listening "$(server_ns $p)" 5301
  line=$($IP netns exec "$(client_ns $p)" taskset -c 0 node $RR run "$(server_ip $p)" 5301 "$SECONDS_EACH") || fail "rr $p failed"
  kill -TERM $spid; wait $spid 2>/dev/null
  echo "result $p rr${MEASURE_SUFFIX:-} $(echo "$line" | awk '{print $6}') trans/s round $r" >> $OUT
  counters_once $p rr${MEASURE_SUFFIX:-} $r
}

echo "# kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo) seconds=$SECONDS_EACH rounds=$ROUNDS pairs=$PAIRS streams=$STREAMS" >> $OUT
# The counters' starting point: what setup (pings, control commands) moved is left out.
counters_once virtio setup 0 > /dev/null
counters_once virtio-mq setup 0 > /dev/null
r=1
while [ $r -le "$ROUNDS" ]; do
  for dir in tx rx; do
    for p in $paths; do iperf_once $p $dir 1 $r; done
  done
  for dir in tx rx; do
    for p in $paths; do iperf_once $p $dir "$STREAMS" $r; done
  done
  for p in $paths; do rr_once $p $r; done
  r=$((r + 1))
done
# Transmit with the guest driver's transmit NAPI off (ethtool -C <if> tx-frames 0, link down
# while it changes): the driver then releases each frame's socket memory when it queues it
# instead of when the device's used-buffer interrupt comes back, so TCP small queues stop
# waiting for that interrupt. veth measured again next to it, unchanged. BENCH_NET_NAPI_OFF=0
# skips it.
napi_tx() {  # napi_tx <ns> <if> <server ip> <0|1>
  $IP -n "$1" link set "$2" down
  $IP netns exec "$1" /usr/local/bin/ethtool -C "$2" tx-frames "$4" > /tmp/ethtool.log 2>&1
  rc=$?
  $IP -n "$1" link set "$2" up
  wait_for 60 "ping over $2 after ethtool -C" $IP netns exec "$1" ping -c 1 -W 2 "$3"
  return $rc
}
if [ "$NAPI_OFF" = 1 ]; then
  if napi_tx nbg1 "$VIF_VIRTIO" 10.60.0.1 0 && napi_tx nbgm "$VIF_MQ" 10.62.0.1 0 &&
    { [ "$VHOST" != 1 ] || napi_tx nbvhg "$VIF_VHOST" 10.63.0.1 0; }; then
    echo "# tx-napi-off measures: the guest's virtio_net transmit NAPI off (ethtool -C tx-frames 0)" >> $OUT
    MEASURE_SUFFIX=-napioff
    for p in $paths; do iperf_once $p tx 1 1; done
    for p in $paths; do iperf_once $p tx "$STREAMS" 1; done
    for p in $paths; do rr_once $p 1; done
    MEASURE_SUFFIX=
  else
    echo "# tx-napi-off: not measured: ethtool -C failed: $(cat /tmp/ethtool.log)" >> $OUT
  fi
fi

# The devices' counters: frames per queue pair, merged buffers, drops.
node bin/baoctl status --json --socket $STATUS > /tmp/bench-net-status.json 2>/dev/null &&
  node -e '
    const s = JSON.parse(require("fs").readFileSync("/tmp/bench-net-status.json", "utf8"));
    for (const d of s.devices) {
      const m = d.metrics ?? {};
      const pick = Object.keys(m).filter((k) => /Pair|Frames$|Gso|Merged|NoBuffers|TapFull|TapErrors|Reply|pairsInUse|Truncated|Dropped|Filtered|Short|Oversize|BadOffload|Yields|invalidChains/.test(k));
      const t = d.deviceModel?.transport ?? {};
      const perQueue = ["notifiesByQueue", "usedInterruptsByQueue", "usedSuppressedByQueue"].map((k) => `${k}=${(t[k] ?? []).join("/")}`);
      console.log(`# device ${d.id}: ` + pick.map((k) => `${k}=${m[k]}`).join(" ") + " " + perQueue.join(" "));
    }' >> $OUT
kill -TERM $daemon
wait $daemon || fail "baoctl run exited $?"
if grep -q '^\[bailout' /tmp/baoctl-net.log 2>/dev/null; then
  echo "# deopt: $(grep -c '^\[bailout' /tmp/baoctl-net.log) bailouts, $(grep -c '^\[completed optimizing\|^\[completed compiling' /tmp/baoctl-net.log) optimisations (counted with --trace-opt); the most frequent (function, reason):" >> $OUT
  grep '^\[bailout' /tmp/baoctl-net.log | sed -n 's/.*reason: \([^)]*\)).*<JSFunction \([^ >]*\).*/\2 \1/p' | sort | uniq -c | sort -rn | head -n 20 | sed 's/^/# deopt /' >> $OUT
fi
for f in /tmp/strace-*.txt; do
  [ -f "$f" ] || continue
  m=${f#/tmp/strace-}; m=${m%.txt}
  awk -v m="$m" '$1 ~ /^[0-9.]+$/ && NF >= 5 { print "# strace " m " " $0 }' "$f" | head -n 15 >> $OUT
done
# The backend CPU's samples per measure sampled (bench/guest-cpu.sh).
[ "$PERF" = 1 ] && perf_summaries $OUT "${BENCH_NET_PERF_CALLERS:-}"
# Self time by function over the whole run, the 25 largest (the daemon's one JS thread).
[ "$PROFILE" = 1 ] && node /usr/bin/bench-profile-summary.mjs /tmp/prof 25 >> $OUT 2>&1
cat $OUT
bao-export $OUT net-bench.txt
exit 0
