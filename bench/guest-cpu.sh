# bench/guest-cpu.sh: where the guest's two CPUs went over a measure, for the QEMU benchmarks'
# guest jobs (busybox sh; shipped as /usr/bin/bench-guest-cpu.sh and sourced). Ticks from
# /proc (USER_HZ 100 on x86), so a figure is good to about a percent over a few seconds.
#   cpu_window_start <pid>   remember the CPUs' ticks, <pid>'s threads' ticks and the time
#   cpu_window_cpus          "cpu0-busy=B cpu0-sirq=S cpu1-busy=B cpu1-sirq=S" since the start
#                            (busy: not idle nor iowait; sirq: softirq; % of that CPU)
#   cpu_window_threads       "group=U/S ..." since the start: % of one CPU in user and system
#                            mode per thread group of <pid>: js (its main thread: the daemon's
#                            JavaScript thread), else the thread's name (bao-attach,
#                            libuv-worker; V8's workers are named after the process, "node")

# "user nice system idle iowait irq softirq" of cpu0 and cpu1, a line each.
_cpu_ticks() { awk '/^cpu[01] / { print $2, $3, $4, $5, $6, $7, $8 }' /proc/stat; }
# "<tid> <group> <user> <system>" per thread of $_cw_pid.
_thread_ticks() {
  for t in /proc/$_cw_pid/task/*; do
    [ -r "$t/stat" ] || continue
    awk -v tid="${t##*/}" -v js="$([ "${t##*/}" = "$_cw_pid" ] && echo 1)" '{
      c = $0; sub(/^[^(]*\(/, "", c); sub(/\).*/, "", c)
      split(substr($0, index($0, ") ") + 2), f, " "); print tid, (js ? "js" : c), f[12], f[13] }' "$t/stat"
  done
}
cpu_window_start() {
  _cw_pid=$1
  _cw_cpu=$(_cpu_ticks)
  _cw_thr=$(_thread_ticks)
  _cw_t0=$(cut -d' ' -f1 /proc/uptime)
}
cpu_window_cpus() {
  printf '%s\n%s\n' "$_cw_cpu" "$(_cpu_ticks)" | awk '
    NR <= 2 { for (i = 1; i <= 7; i++) b[NR, i] = $i; next }
    { c = NR - 3; t = 0; for (i = 1; i <= 7; i++) { d[i] = $i - b[c + 1, i]; t += d[i] }
      if (t <= 0) t = 1
      printf "%scpu%d-busy=%.0f cpu%d-sirq=%.0f", (c ? " " : ""), c, 100 * (t - d[4] - d[5]) / t, c, 100 * d[7] / t }'
}
cpu_window_threads() {
  s=$(awk -v a="$_cw_t0" '{ print $1 - a }' /proc/uptime)
  # Threads present at both ends only (one that started or ended in between is left out).
  printf '%s\n--\n%s\n' "$_cw_thr" "$(_thread_ticks)" | awk -v s="$s" '
    $1 == "--" { after = 1; next }
    !after { u0[$1] = $3; k0[$1] = $4; next }
    ($1 in u0) { g[$2] = 1; u[$2] += $3 - u0[$1]; k[$2] += $4 - k0[$1] }
    END { if (s <= 0) s = 1; for (x in g) printf "%s%s=%.0f/%.0f", (n++ ? " " : ""), x, u[x] / s, k[x] / s }'
}

# The backend CPU sampled with perf (the host's, shipped by the wrapper: bench_tool_files):
#   perf_window_start <label> <seconds>   samples CPU $PERF_CPU (default 1, the backend's;
#                                         cpu-clock, call chains) for <seconds>
#                                         in the background into /tmp/perf-<label>.data
#   perf_window_wait                      waits for it
#   perf_summaries <out> [<symbol>]       appends per sampled label "# perf <label> ..." lines:
#                                         the shares per command and object, per symbol inside
#                                         node, and the 40 largest symbols; with <symbol>, its
#                                         callers ("# perf-callers ...")
# node's JIT code is named when node ran with --perf-basic-prof-only-functions; its builtins
# are left as offsets into the node binary (bench/perf-resolve.mjs names them on the host).
perf_window_start() {
  echo 0 > /proc/sys/kernel/kptr_restrict
  echo -1 > /proc/sys/kernel/perf_event_paranoid
  perf record -q -g -e cpu-clock -C "${PERF_CPU:-1}" -o "/tmp/perf-$1.data" -- sleep "$2" > /dev/null 2>&1 &
  _pw_pid=$!
}
perf_window_wait() {
  [ -n "${_pw_pid:-}" ] && wait "$_pw_pid"
  _pw_pid=""
}
perf_summaries() {
  for f in /tmp/perf-*.data; do
    [ -f "$f" ] || continue
    m=${f#/tmp/perf-}; m=${m%.data}
    _rep() { perf report -i "$f" --stdio --no-children -g none "$@" 2>/dev/null | awk -v m="$m" '/^ +[0-9.]+%/ { sub(/^ +/, ""); print "# perf " m " " $0 }'; }
    _rep --sort comm,dso --percent-limit 0.5 | head -n 12 >> "$1"
    _rep --dsos node --sort dso,sym --percent-limit 0.25 | head -n 30 >> "$1"
    _rep --sort comm,dso,sym --percent-limit 0.4 | head -n 40 >> "$1"
    [ -n "${2:-}" ] && perf report -i "$f" --stdio --no-children -S "$2" -g caller,0.5,callee,function,percent --percent-limit 0.5 2>/dev/null |
      grep -v '^$' | grep -v '^#' | head -n 80 | sed "s/^/# perf-callers $m /" >> "$1"
  done
  return 0
}
