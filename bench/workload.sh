#!/usr/bin/env bash
# Benchmark: the workload of labs/03-more-server-addresses.toml (the article's multi-IP
# experiment: 3 containers x 25,000 connections to 3 server addresses = 75,000, through Docker's
# masquerade) run three ways in the same lab namespaces:
#   lab  `lab run` (it builds its own lab, benchwlrun)
#   c    bench/c/client.c + bench/c/server.c, a minimal C epoll probe: the kernel's own pace
#   go   bench/go/client.go + bench/go/server.go, the article's programs (a goroutine per conn.)
# For each: the time from starting the clients until the server namespace holds 75,000
# accepted connections, and the userspace memory (sum of RSS) of the workload processes.
# Repeats RUNS times in rotating order and prints medians. See docs/bench.md.
#
# Usage (root): bench/workload.sh [RUNS]        (default 3; builds what it needs first)
#   WORK=DIR      logs, samples, binaries (default /tmp/lab-bench-workload)
#   VARIANTS="lab c go"   which to run (default all three)
#   IN_FLIGHT=N   connects in progress per client process, for lab run and the C client
#                 (default 8192, lab's default)
#   GO_SINGLE=1   go: one server process without SO_REUSEPORT, exactly the article's server (it
#                 stops at the open-files limit: see docs/bench.md)
#   PANEL=0|1     lab: the live view's NAT panel (the progress lines and the conntrack counters
#                 read every 500 ms) off with -q (default, as before) or on (lab's default
#                 outside -q), to measure what the panel costs
#   IDLE_PCT=N    wait (at most IDLE_WAIT s, default 180) until other work uses < N% of the
#                 CPUs (default 20) before each run; the figure is printed beside each run
#
# How the server side is counted, the same for all three: a bash loop inside the server
# namespace reads /proc/net/sockstat(6) every 50 ms (TCP + TCP6 "inuse": O(1)); connections =
# inuse - listeners. Once that reaches 75,000 it also reads the listeners' accept queues (rx_queue
# of the LISTEN lines of /proc/net/tcp(6)): accepted = connections - queued. (`ss state
# established` would count queued connections too, and costs 25 ms of CPU a call here.)
# Start of the clients: for c and go, just before the script starts them; for lab, the start
# time of its first client agent process (10 ms resolution). lab's own series (established.csv,
# client-side, 100 ms ticks) is printed beside.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [RUNS]" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "$0: needs root" >&2; exit 3; }

LAB=$(realpath "${CARGO_TARGET_DIR:-target}")/release/lab
LAB_FILE=labs/03-more-server-addresses.toml
NAME=benchwl          # the lab for c and go
RUN_NAME=benchwlrun   # the lab `lab run` builds
TARGET=75000
SERVERS=5             # server processes: what lab starts (75,000 x 1.25 / (20,000 - 64))
SPLIT=2               # client processes per container: 25,000 / 2 under 20,000 open files
PER_CONTAINER=25000
TARGETS=(192.168.49.5 192.168.49.15 192.168.49.25)   # container i -> address i, port 9000
RUN_TIMEOUT=90        # seconds for a run to reach the target
WORK=${WORK:-/tmp/lab-bench-workload}
IDLE_PCT=${IDLE_PCT:-20}
IN_FLIGHT=${IN_FLIGHT:-8192}
GO_SINGLE=${GO_SINGLE:-0}
read -r -a kinds <<<"${VARIANTS:-lab c go}"
for k in "${kinds[@]}"; do [[ $k =~ ^(lab|c|go)$ ]] || { echo "VARIANTS: lab, c, go" >&2; exit 2; }; done
IDLE_WAIT=${IDLE_WAIT:-180}

# --- what this script started, and the guaranteed cleanup --------------------------------------
pids=()       # workload processes and samplers (by pid, never by name)
sampler_pid=
res=
lab_pid=      # a running `lab run`
our_lab=      # benchwl while it is up

stop_pids() { # TERM, up to 20 s to exit (closing 12,500 sockets takes a while), then KILL
  local p deadline=$((SECONDS + 20))
  ((${#pids[@]})) || return 0
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pids
  if [[ -n $lab_pid ]]; then # lab run tears its lab down on SIGTERM
    kill -TERM "$lab_pid" 2>/dev/null || true
    timeout 30 tail -s 0.1 --pid="$lab_pid" -f /dev/null || kill -KILL "$lab_pid" 2>/dev/null || true
    wait "$lab_pid" 2>/dev/null || true
  fi
  [[ -d /run/lab/$RUN_NAME ]] && { "$LAB" down "$RUN_NAME" >/dev/null 2>&1 || true; }
  [[ -n $our_lab ]] && { "$LAB" down "$our_lab" >/dev/null 2>&1 || true; }
  local left
  left=$(ip netns list | awk '{print $1}' | grep -cE "^($NAME|$RUN_NAME)-" || true)
  ((left == 0)) || echo "warning: $left namespaces of $NAME/$RUN_NAME left" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- prerequisites ---------------------------------------------------------------------------
for n in "$NAME" "$RUN_NAME"; do
  if [[ -e /run/lab/$n ]] || ip netns list | grep -qE "^$n-"; then
    echo "$0: lab $n exists already (someone else's run?); not touching it" >&2
    trap - EXIT; exit 2
  fi
done
netns_before=$(ip netns list | awk '{print $1}' | grep -E "^($NAME|$RUN_NAME)-" | sort || true)
mkdir -p "$WORK"
cargo build --release --quiet
command -v gcc >/dev/null || { apt-get update -q && apt-get install -y -q gcc; }
command -v go >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-go; }
gcc -O2 -Wall -o "$WORK/cclient" bench/c/client.c
gcc -O2 -Wall -o "$WORK/cserver" bench/c/server.c
(export GOCACHE=${GOCACHE:-$WORK/gocache}
 go build -o "$WORK/goclient" bench/go/client.go && go build -o "$WORK/goserver" bench/go/server.go)

# --- measuring -------------------------------------------------------------------------------
# Runs in the server namespace: "realtime_s connections_inuse listeners queued" every 50 ms;
# queued is -1 while not read (only once the target is reached, or while listeners < expected).
SAMPLER='
exec {z}<> <(:)
end=$((SECONDS + $1)) l=0 q=-1
while ((SECONDS < end)); do
  t=$EPOCHREALTIME n=0
  while read -r k _ v _; do [[ $k == TCP: ]] && { ((n += v)); break; }; done </proc/net/sockstat
  while read -r k _ v _; do [[ $k == TCP6: ]] && { ((n += v)); break; }; done </proc/net/sockstat6
  if ((l < $4 || n - l >= $3)); then
    l=0 q=0
    for f in /proc/net/tcp /proc/net/tcp6; do
      { read -r _; while read -r _ _ _ st qq _; do [[ $st == 0A ]] || break
        ((l += 1, q += 16#${qq#*:})); done; } <$f
    done
  else q=-1; fi
  echo "$t $n $l $q"
  read -t "$2" -u "$z" || true
done'
start_sampler() { # LAB_NAME FILE LISTENERS
  "$LAB" exec "$1" server-host -- bash -c "$SAMPLER" sampler $((RUN_TIMEOUT + 30)) 0.05 \
    "$TARGET" "$3" >"$2" 2>/dev/null &
  sampler_pid=$!
  pids+=($!)
}
# First realtime at which accepted >= TARGET, or empty.
reached() { awk -v n="$TARGET" '$4 >= 0 && $2 - $3 - $4 >= n { print $1; exit }' "$1"; }
# First realtime at which the kernel held TARGET connections (accepted or queued).
kernel_reached() { awk -v n="$TARGET" '$2 - $3 >= n { print $1; exit }' "$1"; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%d", (b - a) * 1000 }'; }
div() { awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { if (a == "-") print "-"; else printf "%.*f", d, a / b }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

cpu_busy() { # percent of all CPUs busy over 1 s
  local a b
  a=$(head -1 /proc/stat); sleep 1; b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); t = 0
    for (i = 2; i <= 11; i++) t += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6]); printf "%d", t ? 100 * (t - idle) / t : 0 }'
}
# Network namespaces of others (other labs, test suites): a sign of concurrent network work.
others_ns() { ip netns list | awk '{ print $1 }' | grep -vcE "^($NAME|$RUN_NAME)-" || true; }
wait_idle() { # prints "busy% load1"
  local b deadline=$((SECONDS + IDLE_WAIT))
  while :; do
    b=$(cpu_busy)
    ((b < IDLE_PCT || SECONDS >= deadline)) && break
    sleep 2
  done
  echo "$b $(cut -d' ' -f1 /proc/loadavg)"
}

# Waits until FILE has COUNT lines matching RE (at most 10 s).
wait_lines() {
  local i
  for ((i = 0; i < 200; i++)); do
    (($(cat "$@" 2>/dev/null | grep -cE "$RE" || true) >= COUNT)) && return 0
    sleep 0.05
  done
  echo "timed out waiting for '$RE' in $*" >&2
  return 1
}

# --- the three variants ----------------------------------------------------------------------
# Each sets res="ms_to_target ms_kernel_established rss_kib lab_own_series_ms" (they run in this
# shell, not a subshell, so that the cleanup trap knows every pid they start).

run_probe() { # c|go RUN_DIR
  local kind=$1 dir=$2 c p i t0 t lo hi servers=$SERVERS reuse=-reuseport
  [[ $kind == go && $GO_SINGLE == 1 ]] && servers=1 reuse=
  "$LAB" up "$LAB_FILE" --name "$NAME" >/dev/null 2>&1
  our_lab=$NAME
  "$LAB" exec "$NAME" server-host -- sysctl -qw net.core.somaxconn=65535 \
    net.ipv4.tcp_max_syn_backlog=65535
  local logs=() servers_pids=()
  for ((i = 0; i < servers; i++)); do
    if [[ $kind == c ]]; then
      "$LAB" exec "$NAME" server-host -- "$WORK/cserver" 9000 >"$dir/server$i.log" 2>&1 &
    else
      "$LAB" exec "$NAME" server-host -- "$WORK/goserver" $reuse >"$dir/server$i.log" 2>&1 &
    fi
    pids+=($!) servers_pids+=($!) logs+=("$dir/server$i.log")
  done
  RE='^(ready|listen ok)$' COUNT=$servers wait_lines "${logs[@]}"
  start_sampler "$NAME" "$dir/samples" "$servers"
  for ((i = 0; i < 200; i++)); do
    [[ -s $dir/samples ]] && (($(awk 'NR == 1 { print $3 }' "$dir/samples") >= servers)) && break
    sleep 0.05
  done
  t0=$EPOCHREALTIME
  for c in 1 2 3; do
    for ((p = 0; p < SPLIT; p++)); do
      lo=$((1024 + 64512 * p / SPLIT)) hi=$((1024 + 64512 * (p + 1) / SPLIT - 1))
      if [[ $kind == c ]]; then
        "$LAB" exec "$NAME" "c$c" -- "$WORK/cclient" -i "$IN_FLIGHT" "${TARGETS[c - 1]}:9000" \
          $((PER_CONTAINER / SPLIT)) "$lo-$hi" >"$dir/client$c-$p.log" 2>&1 &
      else
        "$LAB" exec "$NAME" "c$c" -- "$WORK/goclient" -rip "${TARGETS[c - 1]}" \
          -n $((PER_CONTAINER / SPLIT)) >"$dir/client$c-$p.log" 2>&1 &
      fi
      pids+=($!)
    done
  done
  t=
  for ((i = 0; i < RUN_TIMEOUT * 10; i++)); do
    t=$(reached "$dir/samples")
    [[ -n $t ]] && break
    for p in "${servers_pids[@]}"; do # a server that exits ends the run
      kill -0 "$p" 2>/dev/null && continue
      echo "run $dir: server process $p exited: $(grep -v -e '^recv conn' -e '^total count' \
        "$dir"/server*.log | tail -1)" >&2
      break 2
    done
    sleep 0.1
  done
  sleep 1 # the memory "at the end": a second after the target
  local rss=0
  for p in "${pids[@]}"; do
    [[ $p == "$sampler_pid" || ! -e /proc/$p ]] && continue
    rss=$((rss + $(rss_kib "$p")))
    # Per process, for the analysis: memory kinds (KiB) and CPU time so far (clock ticks).
    echo "$p $(cat "/proc/$p/comm" 2>/dev/null) $(awk '/^(VmRSS|RssAnon|RssFile):/ { printf "%s%s ", $1, $2 }' \
      "/proc/$p/status" 2>/dev/null) utime:$(awk '{ print $14 }' "/proc/$p/stat" 2>/dev/null) stime:$(awk '{ print $15 }' \
      "/proc/$p/stat" 2>/dev/null)" >>"$dir/processes.txt"
  done
  stop_pids
  "$LAB" down "$NAME" >/dev/null 2>&1
  our_lab=
  res="$(ms_between "$t0" "$t") $(ms_between "$t0" "$(kernel_reached "$dir/samples")") $rss -"
}

run_lab() { # RUN_DIR
  local dir=$1 i k first= up now t
  # lab's --in-flight is per container, its default 8192 per process (IN_FLIGHT's default).
  local flight=()
  [[ $IN_FLIGHT != 8192 ]] && flight=(--in-flight "$IN_FLIGHT")
  local view=(-q)
  [[ ${PANEL:-0} == 1 ]] && view=()
  "$LAB" run "$LAB_FILE" --name "$RUN_NAME" --out "$dir" "${view[@]}" --timeout $RUN_TIMEOUT \
    "${flight[@]}" \
    >"$dir/lab.log" 2>&1 &
  lab_pid=$!
  # The sampler, as soon as the lab's server namespace exists; the agents' start times.
  for ((i = 0; i < 500; i++)); do
    "$LAB" exec "$RUN_NAME" server-host -- true 2>/dev/null && break
    kill -0 "$lab_pid" 2>/dev/null || break
    sleep 0.01
  done
  start_sampler "$RUN_NAME" "$dir/samples" "$SERVERS"
  declare -A start=()
  for ((i = 0; i < 1000 && ${#start[@]} < SERVERS + 3 * SPLIT; i++)); do
    for k in $(pgrep -P "$lab_pid" -f ' agent$' || true); do
      [[ -n ${start[$k]:-} ]] || start[$k]=$(awk '{ print $22 }' "/proc/$k/stat" 2>/dev/null || true)
    done
    kill -0 "$lab_pid" 2>/dev/null || break
    sleep 0.01
  done
  read -r up _ </proc/uptime; now=$EPOCHREALTIME
  # The first client agent: the (SERVERS+1)-th agent to start (servers start, and are ready,
  # before any client).
  first=$(printf '%s\n' "${start[@]}" | sort -n | sed -n "$((SERVERS + 1))p")
  local deadline=$((SECONDS + RUN_TIMEOUT + 60)) # short sleeps: a signal's trap runs at once
  while kill -0 "$lab_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -TERM "$lab_pid" 2>/dev/null || true
  wait "$lab_pid" || echo "lab run exited with $? (see $dir/lab.log)" >&2
  lab_pid=
  stop_pids
  local t0=-
  [[ -n $first ]] && t0=$(awk -v s="$first" -v up="$up" -v now="$now" 'BEGIN { printf "%.3f", now - up + s / 100 }')
  t=$(reached "$dir/samples")
  local mem own
  mem=$(jq '(.outcome.last.agents_rss_bytes + .lab_rss_bytes) / 1024 | floor' "$dir/report.json" 2>/dev/null || echo 0)
  own=$(awk -F, -v n="$TARGET" 'NR > 1 && $NF >= n { print $1; exit }' "$dir/established.csv" 2>/dev/null)
  res="$( [[ $t0 == - ]] && echo - || ms_between "$t0" "$t") $( [[ $t0 == - ]] && echo - || ms_between "$t0" "$(kernel_reached "$dir/samples")") $mem ${own:--}"
}

# --- the runs --------------------------------------------------------------------------------
results=$WORK/results.tsv
printf 'run\tvariant\tms_accepted\tms_kernel\trss_kib\tlab_series_ms\tbusy_pct_before\tload1\tothers_ns_before_after\n' >"$results"
date -u +'%F %T UTC'
printf '%-4s %-4s %12s %12s %10s %9s %14s %6s %6s %9s\n' run kind "to 75,000" "kernel est." "RSS MiB" \
  "KiB/conn" "lab's series" busy load1 "other ns"
for ((r = 1; r <= runs; r++)); do
  for ((j = 0; j < ${#kinds[@]}; j++)); do
    kind=${kinds[(r - 1 + j) % ${#kinds[@]}]}
    dir=$WORK/run$r-$kind
    rm -rf "$dir"; mkdir -p "$dir"
    read -r busy load1 < <(wait_idle)
    ns0=$(others_ns)
    if [[ $kind == lab ]]; then run_lab "$dir"; else run_probe "$kind" "$dir"; fi
    read -r ms kms rss own <<<"$res"
    ns="$ns0/$(others_ns)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$kind" "$ms" "$kms" "$rss" "$own" "$busy" \
      "$load1" "$ns" >>"$results"
    printf '%-4s %-4s %9s ms %9s ms %10s %9s %11s ms %5s%% %6s %9s\n' "$r" "$kind" "$ms" "$kms" \
      "$(div "$rss" 1024 1)" "$(div "$rss" "$TARGET" 2)" "$own" "$busy" "$load1" "$ns"
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : "-" }'; }
echo
echo "medians of $runs (time from starting the clients to 75,000 accepted by the server processes)"
echo "  (runs that never got there, shown as '-' above, are left out of the medians)"
for kind in "${kinds[@]}"; do
  col() { awk -F'\t' -v k="$kind" -v c="$1" '$2 == k && $c != "-" { print $c }' "$results" | median; }
  ms=$(col 3) kms=$(col 4) rss=$(col 5) own=$(col 6)
  printf '  %-4s %6s ms  (kernel: %6s ms)  %7s MiB  %5s KiB/conn  %s\n' "$kind" "$ms" "$kms" \
    "$(div "$rss" 1024 1)" "$(div "$rss" "$TARGET" 2)" \
    "$([[ $kind == lab ]] && echo "lab's own series: $own ms")"
done
echo "results: $results"
after=$(ip netns list | awk '{print $1}' | grep -E "^($NAME|$RUN_NAME)-" | sort || true)
[[ $after == "$netns_before" ]] && echo "ip netns list: as found" || echo "ip netns list: differs!" >&2
