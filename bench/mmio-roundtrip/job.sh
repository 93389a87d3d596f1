# Guest job of bench/run-qemu-bench.sh (runs as /job.sh in /project, busybox sh, under
# qemu/run.sh). Parts, each selected by BENCH_PARTS (default: all but diag), in this one boot, run
# in the order mmio, idle, diag, qd1, par (each exports what is done, so a timeout keeps it):
#
# mmio  Frontend register round trips per register class, single trips timed by bao-sim's debugfs
#       `dm<N>/bench` (count 1; qemu/tools/bao-bench-sample), the responders taking turns access
#       by access so that host noise falls on all of them alike:
#         node-bao   DM 0, `baoctl run` (virtio-rng) as shipped: hot registers answered by the
#                    addon's ATTACH thread (lib/vmm/hot-registers.ts), the rest by JS
#         node-js    DM 2, the same with NODE_BAO_HOT_REGISTERS=0: every access through JS
#                    (ATTACH thread -> ThreadSafeFunction -> DeviceModelServer -> COMPLETE)
#         c-floor    DM 1, qemu/tools/bao-bench-responder: ATTACH + COMPLETE in one C loop
#       Classes: isr-read (InterruptStatus), ack-write (InterruptACK of 0), magic-read
#       (MagicValue): hot cells; features-read (DeviceFeatures) cold; queuesel-write (QueueSel 0)
#       state-changing. node-bao's hand-off timing of its cold accesses is logged when it closes.
# qd1   The guest's own virtio_rng driver reading /dev/hwrng at queue depth 1 (64-byte reads),
#       from two device models taking turns round by round (rng_current switched): node-bao (DM 0)
#       and qemu/tools/bao-bench-rng (DM 1), a minimal C virtio-rng device model answering the
#       same register sequence (ISR read + ACK per interrupt) and filling with getrandom.
# par   Four virtio-rng device models served by one node-bao, 1, 2 or 4 of them busy at once
#       with trapped accesses (a hot InterruptStatus read, a cold DeviceFeatures read), one
#       frontend process per device at a time (rounds interleaved): accesses per second, total
#       and per device.
# idle  16 virtio-rng device models, no driver bound; then idle-bound: 8 rng + 8 console device
#       models with the guest's drivers bound and idle. Kick watchdog on: CPU seconds
#       (utime + stime) over BENCH_IDLE_S and RSS, a bare node alongside.
# diag  Clock source and page-table isolation of the guest; context switches per access of each
#       thread and process CPU per access, node-bao's JS path and hot cells against the C floor;
#       syscalls per access with strace -c when the wrapper shipped it.
#
# BENCH_SAMPLES, BENCH_IDLE_S, BENCH_PARTS, BENCH_ROUND_S are prepended by the wrapper.
# Results: /tmp/mmio-roundtrip.txt.
set -u
SAMPLES=${BENCH_SAMPLES:-1000}
IDLE_S=${BENCH_IDLE_S:-60}
PARTS=${BENCH_PARTS:-mmio qd1 par idle}
ROUND_S=${BENCH_ROUND_S:-4}
D=/sys/kernel/debug/bao-sim
OUT=/tmp/mmio-roundtrip.txt

# A part runs in a subshell: a failure ends that part (its processes stopped), and the next runs.
fail() {
  echo "bench: $*" >&2
  echo "# failed: $*" >> $OUT
  kill -TERM $(jobs -p) 2>/dev/null
  wait
  exit 1
}
part() { case " $PARTS " in *" $1 "*) echo "bench: part $1 at $(now) s" >&2; return 0 ;; esac; return 1; }

base() { awk '$1 == "mmio_base" {print $2}' $D/dm$1/info; }
dmstat() { awk -v k="$2" '$1 == k {print $2}' $D/dm$1/stats; }
now() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {print b - a}'; }
load() { # modprobe bao_sim with params, after unloading it
  rmmod bao_sim 2>/dev/null
  modprobe bao_sim "$@" || fail "modprobe bao_sim $*"
}

rng_yaml() { # file ids... : one virtio-rng per DM id
  f=$1; shift
  echo "devices:" > "$f"
  for id in "$@"; do
    printf '  - id: %s\n    type: rng\n    mmio_addr: %s\n    data_plane: virtio\n' "$id" "$(base "$id")" >> "$f"
  done
}
console_yaml() { # file ids... : one virtio-console (pty, alias /tmp/con-<id>) per DM id, appended
  f=$1; shift
  [ -f "$f" ] || echo "devices:" > "$f"
  for id in "$@"; do
    printf '  - id: %s\n    type: console\n    mmio_addr: %s\n    data_plane: virtio\n    backend: pty\n    pty_alias: /tmp/con-%s\n' "$id" "$(base "$id")" "$id" >> "$f"
  done
}

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
  $back env ${3:-} node bin/baoctl run -c "$1" --log-level info --log-format json --status-socket none > "$2" 2>&1 &
}

# An access queued before a backend attaches waits for it (FIFO), so the first MagicValue read
# of each DM doubles as the readiness check (node starts slowly under TCG: allow 3 minutes).
access_read() { # dm off -> value
  timeout 180 sh -c "exec 4<>$D/dm$1/access && echo 'read $2 4' >&4 && cat <&4"
}
wait_for() { # seconds what command...
  secs=$1; what=$2; shift 2
  t=0
  while ! "$@" 2>/dev/null; do
    t=$((t + 1))
    [ $t -le $((secs * 2)) ] || return 1
    sleep 0.5
  done
}
bound() { # n: at least n virtio devices with a driver bound
  [ "$(ls -d /sys/bus/virtio/devices/*/driver 2>/dev/null | wc -l)" -ge "$1" ]
}
stop_pid() { # pid name
  kill -TERM "$1" 2>/dev/null
  wait "$1"
  rc=$?
  [ $rc = 0 ] || [ $rc = 143 ] || echo "# $2 exited $rc" >> $OUT
}
# Hand-off timing a node-bao process logged for its device models when they closed.
handoff_lines() { # log label
  node -e '
    const fs = require("fs");
    for (const line of fs.readFileSync(process.argv[1], "utf8").split("\n")) {
      if (!line.includes("device model closed")) continue;
      let j; try { j = JSON.parse(line); } catch { continue; }
      const h = j.handOff; if (!h) continue;
      const f = (t) => `n ${t.n} p50 ${t.p50Us} p90 ${t.p90Us} p99 ${t.p99Us} max ${t.maxUs}`;
      console.log(`handoff ${process.argv[2]} device ${j.device ?? "?"} ${f(h.handoff)} turn ${f(h.turn)}`);
    }' "$1" "$2" >> $OUT
}

cpu() { awk '{print $14 + $15}' /proc/$1/stat; }
tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
secs() { awk -v a="$1" -v b="$2" -v t="$tck" 'BEGIN {printf "%.2f", (b - a) / t}'; }
: > $OUT
echo "# samples=$SAMPLES parts=$PARTS kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo) loadavg(guest)=$(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT

if part mmio; then (
  load ndms=16
  rng_yaml /tmp/bench-hot.yaml 0
  rng_yaml /tmp/bench-js.yaml 2
  run_node /tmp/bench-hot.yaml /tmp/baoctl-hot.log
  hot_pid=$!
  run_node /tmp/bench-js.yaml /tmp/baoctl-js.log NODE_BAO_HOT_REGISTERS=0
  js_pid=$!
  $back bao-bench-responder 1 "$(base 1)" > /tmp/responder.log 2>&1 &
  c_pid=$!
  t0=$(now)
  for dm in 1 0 2; do
    v=$(access_read $dm 0)
    [ "$v" = 0x74726976 ] || { cat /tmp/responder.log /tmp/baoctl-*.log; fail "DM $dm did not answer MagicValue ($v)"; }
  done
  echo "bench: backends ready after $(elapsed "$t0" "$(now)") s"
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
  [ $hot_rc = 0 ] || { tail -n 20 /tmp/baoctl-hot.log; fail "baoctl run (hot) exited $hot_rc"; }
  [ $js_rc = 0 ] || { tail -n 20 /tmp/baoctl-js.log; fail "baoctl run (js) exited $js_rc"; }
  handoff_lines /tmp/baoctl-hot.log node-bao
  bao-export $OUT mmio-roundtrip.txt # what is done so far survives a timeout later
) || bao-export $OUT mmio-roundtrip.txt; fi

idle_windows() { # pid label
  # A bare node process started alongside: what an idle Node.js costs here by itself.
  $back node -e 'setInterval(() => {}, 1 << 30)' &
  bare_pid=$!
  sleep 2 # startup settles (module loading, JIT)
  # Two windows back to back: the first still carries the tail of startup (lazy compilation, GC).
  for w in 1 2; do
    c0=$(cpu $1); b0=$(cpu $bare_pid)
    sleep "$IDLE_S"
    c1=$(cpu $1); b1=$(cpu $bare_pid)
    rss=$(awk '$1 == "VmRSS:" {print $2}' /proc/$1/status)
    thr=$(awk '$1 == "Threads:" {print $2}' /proc/$1/status)
    echo "idle devices 16 window_s $IDLE_S cpu_s $(secs "$c0" "$c1") rss_kb $rss threads $thr bare_node_cpu_s $(secs "$b0" "$b1") window $w case $2" >> $OUT
  done
  kill -TERM $bare_pid
}

if part idle && [ "$IDLE_S" -gt 0 ]; then (
  load ndms=16
  rng_yaml /tmp/bench-idle.yaml 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
  run_node /tmp/bench-idle.yaml /tmp/baoctl-idle.log
  idle_pid=$!
  for dm in 0 15; do
    [ "$(access_read $dm 0)" = 0x74726976 ] || { tail -n 20 /tmp/baoctl-idle.log; fail "idle: DM $dm did not answer"; }
  done
  idle_windows $idle_pid no-driver
  stop_pid $idle_pid "baoctl run (idle)"
  bao-export $OUT mmio-roundtrip.txt

  modprobe virtio_rng
  modprobe virtio_console
  load ndms=16 frontends=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
  rng_yaml /tmp/bench-idle-bound.yaml 0 1 2 3 4 5 6 7
  console_yaml /tmp/bench-idle-bound.yaml 8 9 10 11 12 13 14 15
  run_node /tmp/bench-idle-bound.yaml /tmp/baoctl-idle-bound.log
  idle_pid=$!
  bind_start=$(cut -d' ' -f1 /proc/uptime)
  wait_for 300 "16 drivers" bound 16 || { tail -n 20 /tmp/baoctl-idle-bound.log; fail "idle: the 16 drivers did not bind"; }
  echo "bench: idle: 16 drivers bound in $(awk -v s="$bind_start" '{ printf "%.0f", $1 - s }' /proc/uptime) s"
  idle_windows $idle_pid drivers-bound
  bao-export $OUT mmio-roundtrip.txt
  # The drivers go first, while their device models still answer: virtio_console's removal
  # sends control messages and spins until the device uses them, forever once the daemon is gone
  # (this part hung there until its time limit on 2026-12-04).
  rmmod virtio_console 2>/dev/null
  rmmod virtio_rng 2>/dev/null
  stop_pid $idle_pid "baoctl run (idle, drivers bound)"
  bao-export $OUT mmio-roundtrip.txt
) || bao-export $OUT mmio-roundtrip.txt; fi
if part diag; then (
  # Where a JS-path access spends the guest's CPU: the clock source (a clock read is a syscall
  # without a vDSO clock), page-table isolation (every syscall then switches page tables, which
  # under TCG empties the soft TLB), context switches per access of each thread, and, when
  # strace was shipped, the syscalls per access. Same DMs as the mmio part: 0 node-bao, 1 C floor.
  echo "# diag clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource) meltdown '$(cat /sys/devices/system/cpu/vulnerabilities/meltdown 2>/dev/null)' flags $(grep -m1 -o -w -E 'pti|pcid|constant_tsc|nonstop_tsc|tsc_known_freq' /proc/cpuinfo | tr '\n' ,)" >> $OUT
  load ndms=2
  rng_yaml /tmp/bench-diag.yaml 0
  run_node /tmp/bench-diag.yaml /tmp/baoctl-diag.log
  d_pid=$!
  $back bao-bench-responder 1 "$(base 1)" > /tmp/responder-diag.log 2>&1 &
  c_pid=$!
  for dm in 1 0; do [ "$(access_read $dm 0)" = 0x74726976 ] || fail "diag: DM $dm did not answer"; done
  csw() { # pid -> "tid:comm:voluntary+nonvoluntary ..." of every thread
    for t in /proc/$1/task/*; do
      printf '%s:%s:%s ' "${t##*/}" "$(tr ' ' _ < $t/comm)" "$(awk '/^voluntary_ctxt_switches|^nonvoluntary_ctxt_switches/ {s += $2} END {print s}' $t/status)"
    done
  }
  N=300
  for spec in node-bao:0:$d_pid:0x10 node-bao-hot:0:$d_pid:0x60 c-floor:1:$c_pid:0x10; do
    label=${spec%%:*}; rest=${spec#*:}; dm=${rest%%:*}; rest=${rest#*:}; pid=${rest%%:*}; off=${rest#*:}
    sh -c "exec 4<>$D/dm$dm/bench && echo '50 $off 4' >&4 && cat <&4" > /dev/null # warm-up
    a=$(csw $pid); c0=$(cpu $pid)
    avg=$(sh -c "exec 4<>$D/dm$dm/bench && echo '$N $off 4' >&4 && cat <&4" | awk '$1 == "avg_ns" {print $2}')
    c1=$(cpu $pid); b=$(csw $pid)
    # Threads whose switch count moved, as switches per access.
    echo "$a" "|" "$b" | awk -v n=$N -v l=$label -v avg="$avg" -v cpu=$((c1 - c0)) -v tck=$tck '{
      for (i = 1; $i != "|"; i++) { split($i, w, ":"); before[w[1]] = w[3] }
      out = ""
      for (i++; i <= NF; i++) { split($i, w, ":"); d = w[3] - before[w[1]]; if (d > 0) out = out sprintf(" %s %.2f", w[2], d / n) }
      printf "# diag %s: %d accesses, avg %.0f us, process CPU %.0f us per access, context switches per access:%s\n", l, n, avg / 1000, cpu / tck * 1e6 / n, out
    }' >> $OUT
    if command -v strace > /dev/null; then
      strace -c -f -p $pid -o /tmp/strace-$label.txt &
      s_pid=$!
      sleep 1
      sh -c "exec 4<>$D/dm$dm/bench && echo '$N $off 4' >&4 && cat <&4" > /dev/null
      kill -INT $s_pid; wait $s_pid
      echo "# diag strace -c -f, $label, $N accesses:" >> $OUT
      sed 's/^/#   /' /tmp/strace-$label.txt >> $OUT
    fi
  done
  stop_pid $d_pid "baoctl run (diag)"
  kill -TERM $c_pid; wait $c_pid
  bao-export $OUT mmio-roundtrip.txt
) || bao-export $OUT mmio-roundtrip.txt; fi

if part qd1; then (
  modprobe virtio_rng
  load ndms=2 frontends=0,1
  rng_yaml /tmp/bench-qd1.yaml 0
  run_node /tmp/bench-qd1.yaml /tmp/baoctl-qd1.log
  n_pid=$!
  $back bao-bench-rng 1 "$(base 1)" > /tmp/bench-rng.log 2>&1 &
  r_pid=$!
  echo "bench: qd1: waiting for the two rng drivers"
  wait_for 240 "two rng drivers" bound 2 || { tail -n 20 /tmp/baoctl-qd1.log; cat /tmp/bench-rng.log; fail "qd1: the rng drivers did not bind"; }
  # Which hwrng is which DM: read through each and see whose kicks move.
  names=""
  for name in $(cat /sys/class/misc/hw_random/rng_available); do
    echo "$name" > /sys/class/misc/hw_random/rng_current
    k0=$(dmstat 0 ioeventfd_signals)
    timeout 60 dd if=/dev/hwrng of=/dev/null bs=64 count=8 2>/dev/null || { tail -n 20 /tmp/baoctl-qd1.log; cat /tmp/bench-rng.log; fail "qd1: no entropy from $name within 60 s"; }
    if [ "$(dmstat 0 ioeventfd_signals)" != "$k0" ]; then names="$names node-bao:0:$name"; else names="$names c-floor:1:$name"; fi
  done
  echo "# qd1 devices:$names" >> $OUT
  echo "bench: qd1 devices:$names"
  rounds=8
  r=0
  while [ $r -lt $rounds ]; do
    # Alternate which goes first, so that a drift in host load falls on both alike.
    if [ $((r % 2)) = 0 ]; then order="$names"; else order=$(echo $names | awk '{for (i = NF; i > 0; i--) printf "%s ", $i}'); fi
    for t in $order; do
      label=${t%%:*}; rest=${t#*:}; dm=${rest%%:*}; name=${rest#*:}
      echo "$name" > /sys/class/misc/hw_random/rng_current
      timeout 30 dd if=/dev/hwrng of=/dev/null bs=64 count=4 2>/dev/null || fail "qd1: $label gave no entropy within 30 s" # the switch settles
      k0=$(dmstat $dm ioeventfd_signals); i0=$(dmstat $dm fe_interrupts); q0=$(dmstat $dm requests); t0=$(now)
      timeout "$ROUND_S" dd if=/dev/hwrng of=/dev/null bs=64 2>/dev/null
      t1=$(now); k1=$(dmstat $dm ioeventfd_signals); i1=$(dmstat $dm fe_interrupts); q1=$(dmstat $dm requests)
      echo "qd1 $label round $r s $(elapsed "$t0" "$t1") completions $((k1 - k0)) interrupts $((i1 - i0)) trapped $((q1 - q0))" >> $OUT
    done
    r=$((r + 1))
  done
  stop_pid $n_pid "baoctl run (qd1)"
  stop_pid $r_pid "bao-bench-rng"
  echo "# bao-bench-rng: $(tail -n1 /tmp/bench-rng.log)" >> $OUT
  rmmod virtio_rng 2>/dev/null
  bao-export $OUT mmio-roundtrip.txt
) || bao-export $OUT mmio-roundtrip.txt; fi

if part par; then (
  # Frontends as processes on the frontend CPU, each making trapped accesses one after another
  # to its own device model through bao-sim's `bench` (the caller sleeps until COMPLETE, as a
  # vCPU waits on Bao). A run's rate per device is 1 / its average round trip, from the kernel.
  load ndms=4
  rng_yaml /tmp/bench-par.yaml 0 1 2 3
  run_node /tmp/bench-par.yaml /tmp/baoctl-par.log
  p_pid=$!
  for dm in 0 1 2 3; do
    [ "$(access_read $dm 0)" = 0x74726976 ] || { tail -n 20 /tmp/baoctl-par.log; fail "par: DM $dm did not answer"; }
  done
  flood() { # dm count offset -> avg_ns
    timeout 120 sh -c "exec 4<>$D/dm$1/bench && echo '$2 $3 4' >&4 && cat <&4" | awk '$1 == "avg_ns" {print $2}'
  }
  for spec in isr-read:0x60:400 features-read:0x10:150; do
    class=${spec%%:*}; rest=${spec#*:}; off=${rest%%:*}; count=${rest#*:}
    flood 0 20 "$off" > /dev/null # warm-up
    rounds=4
    r=0
    while [ $r -lt $rounds ]; do
      if [ $((r % 2)) = 0 ]; then ks="1 2 4"; else ks="4 2 1"; fi
      for k in $ks; do
        j=0; pids=""
        while [ $j -lt $k ]; do
          flood $j "$count" "$off" > /tmp/par-$j.out &
          pids="$pids $!"
          j=$((j + 1))
        done
        for w in $pids; do wait $w; done
        avgs=""; j=0
        while [ $j -lt $k ]; do avgs="$avgs $(cat /tmp/par-$j.out)"; j=$((j + 1)); done
        echo "par $class busy $k round $r avg_ns$avgs" >> $OUT
      done
      r=$((r + 1))
    done
  done
  stop_pid $p_pid "baoctl run (par)"
  handoff_lines /tmp/baoctl-par.log node-bao-par
  bao-export $OUT mmio-roundtrip.txt
) || bao-export $OUT mmio-roundtrip.txt; fi

cat $OUT
bao-export $OUT mmio-roundtrip.txt
exit 0
