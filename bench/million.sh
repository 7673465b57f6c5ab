#!/usr/bin/env bash
# Benchmark: the million lab (labs/million.toml: 5 client hosts x 10 containers, one server host
# with 5 addresses, container j -> address j mod 5, port 9000, through Docker's masquerade),
# scaled to N connections (N/50 per container; LAB_FILE=labs/max.toml: 10 hosts, N/100), run
# three ways (issues 7 and 18):
#   lab  `lab run` of the scaled file (it builds its own lab and agents)
#   c    bench/c/client.c + bench/c/server.c, the minimal epoll probe, in the same topology
#        built with `lab up` of the same scaled file (the same kernel tables as lab: busy
#        namespaces' own established-hashes, the conntrack buckets the file allows), each
#        program started with `lab exec`, split over exactly as many processes as lab uses
#        (clients: disjoint port slices of the container's 1024-65535; servers: SO_REUSEPORT)
#   c0   the same probe on the kernel's default tables: the file with `[machine] tcp_tables =
#        "shared"` and without the conntrack buckets raise
# For each run:
#   time      from starting the clients until the server namespace holds N connections accepted
#             by the server processes (the sockstat method of bench/workload.sh, every 50 ms);
#             also when it passed 100k/250k/500k on the way, and lab's own (client-side) series
#   peak      highest rate over 0.5 s of the server-side count
#   memory    userspace: RSS sum and PSS sum (/proc/PID/smaps_rollup) of every workload process
#             (lab: `lab run` and its agents) just after the target; lab's own peak (VmHWM);
#             kernel: the drop of MemAvailable from just before the run to the target
#   CPU       /proc/stat (user, system, softirq, idle) over the ramp; per-process CPU of clients,
#             servers and `lab run`; server-side TCP segments in (2 per handshake, 1 per ping)
#   cost      the machine's busy CPU time over the ramp (all CPUs, /proc/stat) per connection,
#             in microseconds: what one connection costs, to compare across N
#   teardown  lab: from its first agent exiting (it stops them after reading the NAT view) until
#             `lab run` exits; c: SIGTERM to every process until `lab down` has removed the lab
# Before each run it waits until the CPUs are < IDLE_PCT busy (other sessions) and the kernel has
# freed the previous run's sockets. Stops only its own processes, by pid; a trap tears everything
# down on failure; `ip netns list` is left as found.
#
# Usage (root): bench/million.sh [N...]      (default 100000 250000 500000 1000000)
#   VARIANTS="lab c c0"  which to run, in this order for each N
#   LAB_FILE=FILE      the lab to scale (default labs/million.toml; its one client group's
#                      `connections` becomes N / its containers)
#   RUNS=1             rounds (the order of the variants alternates per round)
#   WORK=DIR           files, logs, samples, results (default /tmp/lab-bench-million)
#   PING=DUR           ping interval: lab gets `ping_interval = "DUR"` (e.g. 1h), the C client
#                      -p SECONDS (its pings are one burst per interval, not spread); default:
#                      the lab file's (100 s) for both
#   C_BATCH=512        connects the C client starts per loop turn (compiles a copy)
#   IN_FLIGHT=8192     connects in progress per client process (C -i; lab gets --in-flight only
#                      when it is not the default, and lab's flag is per container)
#   TOPO=lab|notes     lab: labs/million.toml scaled; notes: the kernel notes' probe topology
#                      (4 hosts x 12 containers, 4 server addresses, 64 server processes)
#   SERVERS=K          server processes for c (default: what lab computes)
#   C_PORT_SHIFT=1     c: the containers of one host that share a NAT path (same server address)
#                      start their port walks at different points of their slices, so their
#                      source ports do not collide at the masquerade (lab's agents, and the C
#                      client by default, all walk from the bottom of the same slices)
#   PERF=1             also `perf record -e cpu-clock -a -g` over the ramp (slows the run a bit)
#   PANEL=0            lab: without the live view's NAT panel (--no-nat-panel; it is on by
#                      default, its conntrack counters read every 500 ms)
#   ROUND0=1           number of the first round (to add rounds to an earlier invocation's)
#   TAG=STR            added to lab names and result rows (default: from the options)
#   RUN_TIMEOUT=S      seconds for a run to reach N (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "$0: needs root" >&2; exit 3; }
sizes=("$@")
((${#sizes[@]})) || sizes=(100000 250000 500000 1000000)
for n in "${sizes[@]}"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N...]" >&2; exit 2; }
done

ROOT=$PWD
WORK=${WORK:-/tmp/lab-bench-million}
read -r -a kinds <<<"${VARIANTS:-lab c c0}"
for k in "${kinds[@]}"; do [[ $k =~ ^(lab|c|c0)$ ]] || { echo "VARIANTS: lab, c, c0" >&2; exit 2; }; done
LAB_FILE=${LAB_FILE:-labs/million.toml}
[[ -r $LAB_FILE ]] || { echo "LAB_FILE: cannot read $LAB_FILE" >&2; exit 2; }
RUNS=${RUNS:-1}
ROUND0=${ROUND0:-1}
C_PORT_SHIFT=${C_PORT_SHIFT:-0}
PING=${PING:-}
C_BATCH=${C_BATCH:-512}
IN_FLIGHT=${IN_FLIGHT:-8192}
TOPO=${TOPO:-lab}
[[ $TOPO =~ ^(lab|notes)$ ]] || { echo "TOPO: lab or notes" >&2; exit 2; }
PERF=${PERF:-0}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
IDLE_PCT=${IDLE_PCT:-20}
IDLE_WAIT=${IDLE_WAIT:-300}
SAMPLE_S=0.05
if [[ -z ${TAG:-} ]]; then
  TAG=
  [[ $TOPO == notes ]] && TAG+=n
  [[ -n $PING ]] && TAG+=p${PING}
  [[ $C_BATCH != 512 ]] && TAG+=b$C_BATCH
  [[ $IN_FLIGHT != 8192 ]] && TAG+=i$IN_FLIGHT
  [[ $C_PORT_SHIFT == 1 ]] && TAG+=shift
  [[ $PERF == 1 ]] && TAG+=perf
  [[ ${PANEL:-1} == 0 ]] && TAG+=np
fi
[[ -z $TAG || $TAG =~ ^[a-z0-9]+$ ]] || { echo "TAG: lower-case letters and digits" >&2; exit 2; }
mkdir -p "$WORK/files"
LAB=$WORK/lab # a copy: the tree's binary may be rebuilt meanwhile

# --- what this script started, and the guaranteed cleanup --------------------------------------
pids=()     # every process started here (workload, sampler, helpers, perf), stopped by pid
lab_pid=    # a running `lab run`
ours=()     # lab names this script created (only these are ever taken down)
netns_before=$(ip netns list | awk '{ print $1 }' | sort)

stop_pids() { # TERM, then up to $1 s (default 120) to exit, then KILL
  local p deadline=$((SECONDS + ${1:-120}))
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
  local rc=$? n
  trap - EXIT INT TERM
  stop_pids 60
  if [[ -n $lab_pid ]]; then # lab run tears its lab down on SIGTERM
    kill -TERM "$lab_pid" 2>/dev/null || true
    timeout 180 tail -s 0.2 --pid="$lab_pid" -f /dev/null || kill -KILL "$lab_pid" 2>/dev/null || true
    wait "$lab_pid" 2>/dev/null || true
  fi
  for n in "${ours[@]}"; do
    [[ -n $n && -e /run/lab/$n ]] && { "$LAB" down "$n" >/dev/null 2>&1 || echo "warning: lab down $n failed" >&2; }
  done
  local after
  after=$(ip netns list | awk '{ print $1 }' | sort)
  if [[ $after == "$netns_before" ]]; then echo "ip netns list: as found"
  else echo "warning: ip netns list differs from before: $(comm -13 <(echo "$netns_before") <(echo "$after") | wc -l) new" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "$0: interrupted (SIGINT)" >&2; exit 130' INT
trap 'echo "$0: terminated (SIGTERM)" >&2; exit 143' TERM

# --- build ----------------------------------------------------------------------------------
cargo build --release --quiet
cp "${CARGO_TARGET_DIR:-target}/release/lab" "$LAB"
command -v gcc >/dev/null || { apt-get update -q && apt-get install -y -q gcc; }
command -v jq >/dev/null || { apt-get update -q && apt-get install -y -q jq; }
sed "s/START_BATCH = 512 }/START_BATCH = $C_BATCH }/" bench/c/client.c >"$WORK/client.c"
gcc -O2 -Wall -o "$WORK/cclient" "$WORK/client.c"
gcc -O2 -Wall -o "$WORK/cserver" bench/c/server.c
[[ $PERF == 1 ]] && ! command -v perf >/dev/null && { apt-get update -q && apt-get install -y -q linux-perf; }

HARD=$(ulimit -Hn)
PER_PROCESS=$((HARD - 64)) # lab's FD_RESERVE: what one agent holds at most

# --- lab files ------------------------------------------------------------------------------
# Prints the path of the scaled lab file for N and variant KIND, named NAME.
lab_file() { # N KIND NAME
  local n=$1 kind=$2 name=$3 f=$WORK/files/$3.toml
  if [[ $TOPO == lab ]]; then
    local k
    k=$("$LAB" check "$LAB_FILE" --json | jq '.plan.clients[0].containers | length')
    ((n % k == 0)) || { echo "N must be a multiple of $k (the containers of $LAB_FILE)" >&2; return 2; }
    sed -E -e "s/^name = \".*\"/name = \"$name\"/" \
      -e "s/^connections = [0-9]+$/connections = $((n / k))/" \
      -e "s/^established = [0-9]+$/established = $n/" "$LAB_FILE" >"$f"
  else # the kernel notes' probe: 4 hosts x 12 containers, 4 server addresses
    local h c per=$(((n + 47) / 48))
    {
      printf 'name = "%s"\ndescription = "bench/million.sh TOPO=notes: 4 client hosts x 12 containers, 4 server addresses"\n\n' "$name"
      printf '[lans.lan]\nsubnet = "192.168.49.0/24"\n\n[hosts.server]\nlan = "lan"\n'
      printf 'addresses = ["192.168.49.5", "192.168.49.15", "192.168.49.25", "192.168.49.35"]\n\n'
      for ((h = 1; h <= 4; h++)); do
        printf '[hosts.client%d]\nlan = "lan"\naddresses = ["192.168.49.10%d"]\n\n' "$h" "$h"
        printf '[containers.h%dc]\nhost = "client%d"\nreplicas = 12\n' "$h" "$h"
        printf 'sysctls = { "net.ipv4.ip_local_port_range" = "1024 65535" }\n\n'
      done
      printf '[servers.srv]\nhost = "server"\nport = 9000\n\n[clients.load]\n'
      printf 'containers = ["h1c", "h2c", "h3c", "h4c"]\n'
      printf 'connect = ["192.168.49.5:9000", "192.168.49.15:9000", "192.168.49.25:9000", "192.168.49.35:9000"]\n'
      printf 'connections = %d\n\n[expect]\nestablished = %d\n' "$per" $((per * 48))
    } >"$f"
  fi
  if [[ -n $PING ]]; then
    sed -i "s/^\[clients.load\]$/[clients.load]\nping_interval = \"$PING\"/" "$f"
  fi
  if [[ $kind == c0 ]]; then # the kernel's default tables
    sed -i -E -e 's/, "net.netfilter.nf_conntrack_buckets"|"net.netfilter.nf_conntrack_buckets",? ?//' \
      -e 's/^\[machine\]$/[machine]\ntcp_tables = "shared"/' "$f"
    grep -q '^tcp_tables' "$f" || printf '\n[machine]\ntcp_tables = "shared"\n' >>"$f"
  fi
  "$LAB" check "$f" >/dev/null || { echo "lab check $f failed" >&2; return 2; }
  echo "$f"
}
# Seconds of a duration like 100s, 1h, 2m, 500ms (for the C client's -p).
dur_s() { awk -v d="$1" 'BEGIN { n = d + 0; u = d; sub(/^[0-9.]+/, "", u)
  m = (u == "ms") ? 0.001 : (u == "m") ? 60 : (u == "h") ? 3600 : 1; printf "%d", n * m + 0.5 }'; }

# --- measuring ------------------------------------------------------------------------------
# Runs in the server namespace: "realtime inuse listeners queued tcp_mem_pages" every $2 s;
# queued is -1 unless read (only once inuse - listeners reaches the target, or while the
# listeners are not all there). See bench/workload.sh. The listeners and their accept queues
# come from `ss -Hltn` (sock_diag asked for LISTEN only walks the listening hash): reading
# /proc/net/tcp line by line walked the namespace's whole established-hash again for every
# line, and in the two-million lab (4,194,304 buckets) left the first 35 s of the ramp
# without a sample.
SAMPLER='
exec {z}<> <(:)
end=$((SECONDS + $1)) l=0 q=-1
while ((SECONDS < end)); do
  t=$EPOCHREALTIME n=0 m=0
  while read -r k _ v _ _ _ _ _ _ _ mm; do [[ $k == TCP: ]] && { ((n += v)); m=$mm; break; }; done </proc/net/sockstat
  while read -r k _ v _; do [[ $k == TCP6: ]] && { ((n += v)); break; }; done </proc/net/sockstat6
  if ((l < $4 || n - l >= $3)); then
    l=0 q=0
    while read -r _ qq _; do ((l += 1, q += qq)); done < <(ss -Hltn)
  else q=-1; fi
  echo "$t $n $l $q $m"
  read -t "$2" -u "$z" || true
done'
sampler_pid=
start_sampler() { # LAB SERVER_NODE FILE TARGET LISTENERS
  "$LAB" exec "$1" "$2" -- bash -c "$SAMPLER" sampler $((RUN_TIMEOUT + 60)) $SAMPLE_S "$4" "$5" \
    >"$3" 2>/dev/null &
  sampler_pid=$!
  pids+=($!)
}
# First realtime at which accepted >= N, or empty.
reached() { awk -v n="$2" '$4 >= 0 && $2 - $3 - $4 >= n { print $1; exit }' "$1"; }
# First realtime at which the kernel held N connections (accepted or still queued).
kernel_reached() { awk -v n="$2" '$3 > 0 && $2 - $3 >= n { print $1; exit }' "$1"; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-") print "-"; else printf "%d", (b - a) * 1000 }'; }
# Peak rate over 0.5 s windows of the server-side count, and the mean rate per tenth of N.
rates() { # SAMPLES N T0
  awk -v n="$2" -v t0="$3" '$3 > 0 { t[NR] = $1; c[NR] = $2 - $3; k = NR }
    END { peak = 0; j = 1
      for (i = 1; i <= k; i++) { if (!(i in t)) continue
        while (j < i && (!(j in t) || t[i] - t[j] > 0.5)) j++
        if (j < i && t[i] - t[j] >= 0.45) { r = (c[i] - c[j]) / (t[i] - t[j]); if (r > peak) peak = r } }
      printf "%d", peak
      d = 1; prev = t0; pc = 0
      for (i = 1; i <= k && d <= 10; i++) { if (!(i in t)) continue
        while (d <= 10 && c[i] >= n * d / 10) { printf " %d", (c[i] - pc) / (t[i] - prev + 1e-9); prev = t[i]; pc = c[i]; d++ } }
      printf "\n" }' "$1"; }
milestone() { # SAMPLES COUNT T0: ms from T0 until the kernel held COUNT (queued or not)
  local t; t=$(kernel_reached "$1" "$2"); ms_between "$3" "$t"; }
mem_avail_kib() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }
cpu_line() { head -1 /proc/stat; }
# "user% system% softirq% idle%" of all CPUs between two /proc/stat lines.
cpu_split() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x); split(b, y); t = 0
  for (i = 2; i <= 11; i++) t += y[i] - x[i]; if (!t) t = 1
  printf "%.0f %.0f %.0f %.0f", 100 * (y[2] + y[3] - x[2] - x[3]) / t, 100 * (y[4] - x[4]) / t,
    100 * (y[8] - x[8]) / t, 100 * (y[5] + y[6] - x[5] - x[6]) / t }'; }
# Busy CPU-seconds (all CPUs: everything but idle and iowait) between two /proc/stat lines.
cpu_busy_s() { awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { split(a, x); split(b, y); t = 0
  for (i = 2; i <= 11; i++) t += y[i] - x[i]
  printf "%.1f", (t - (y[5] - x[5]) - (y[6] - x[6])) / hz }'; }
cpu_busy() { # percent of all CPUs busy over 1 s
  local a b; a=$(cpu_line); sleep 1; b=$(cpu_line)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); t = 0
    for (i = 2; i <= 11; i++) t += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6]); printf "%d", t ? 100 * (t - idle) / t : 0 }'; }
files_in_use() { awk '{ print $1 - $2 }' /proc/sys/fs/file-nr; }
# Waits (at most IDLE_WAIT s) until other work uses < IDLE_PCT% of the CPUs, fewer than
# 100,000 files are open system-wide and MemAvailable has moved less than 32 MiB in 3 s (the
# kernel has freed the previous run's namespaces and sockets); prints "busy% load1 files".
wait_idle() {
  local b m m0=0 deadline=$((SECONDS + IDLE_WAIT))
  while :; do
    b=$(cpu_busy)
    m=$(mem_avail_kib)
    ((b < IDLE_PCT && $(files_in_use) < 100000 && (m - m0 < 32768 && m0 - m < 32768) ||
      SECONDS >= deadline)) && break
    m0=$m
    sleep 2
  done
  echo "$b $(cut -d' ' -f1 /proc/loadavg) $(files_in_use)"
}
# Memory the kernel uses for itself (KiB): MemTotal - MemFree - Buffers - Cached - AnonPages,
# i.e. everything but free memory, the page cache and processes' anonymous memory (slab,
# socket buffers, page tables, stacks, ...). Unlike MemAvailable it does not move with the page
# cache or with reclaim estimates.
kernel_used_kib() { awk '{ v[$1] = $2 } END { print v["MemTotal:"] - v["MemFree:"] - v["Buffers:"] - v["Cached:"] - v["AnonPages:"] }' /proc/meminfo; }
slab_kib() { awk '/^Slab:/ { print $2 }' /proc/meminfo; }
# "rss_kib pss_kib" summed over the given pids (those still alive); bash builtins only, so
# that 160 processes take milliseconds.
mem_of() {
  local p rss=0 pss=0 k v _
  for p in "$@"; do
    { while read -r k v _; do [[ $k == VmRSS: ]] && { rss=$((rss + v)); break; }; done; } \
      <"/proc/$p/status" 2>/dev/null || true
    { while read -r k v _; do [[ $k == Pss: ]] && { pss=$((pss + v)); break; }; done; } \
      <"/proc/$p/smaps_rollup" 2>/dev/null || true
  done
  echo "$rss $pss"
}
# CPU seconds (user+system) used so far by the given pids.
cpu_of() {
  local p t=0 st
  for p in "$@"; do
    read -r -a st <"/proc/$p/stat" 2>/dev/null || continue
    t=$((t + st[13] + st[14]))
  done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }'
}
# Tcp InSegs of the namespace of process $1.
in_segs() { awk '/^Tcp:/ { if (h) { print $11; exit } h = 1 }' "/proc/$1/net/snmp" 2>/dev/null || echo 0; }
# Sum over the namespaces of the given pids (each counted once) of TcpExt field $1.
tcpext_sum() {
  local field=$1 p ns seen=" " sum=0 v
  shift
  for p in "$@"; do
    ns=$(readlink "/proc/$p/ns/net" 2>/dev/null) || continue
    [[ $seen == *" $ns "* ]] && continue
    seen+="$ns "
    v=$(awk -v f="$field" '/^TcpExt:/ { if (!h) { for (i = 2; i <= NF; i++) if ($i == f) c = i; h = 1 }
      else { print $c + 0; exit } }' "/proc/$p/net/netstat" 2>/dev/null || echo 0)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
# Conntrack insert_failed + drop in the namespaces of the given pids (the client hosts).
ct_drops() {
  local p sum=0 v
  for p in "$@"; do
    # Hex, one row per CPU: entries clashres found new invalid ignore delete chainlength
    # insert insert_failed drop ...
    [[ -r /proc/$p/net/stat/nf_conntrack ]] || continue
    { read -r _
      while read -r -a v; do sum=$((sum + 16#${v[9]} + 16#${v[10]})); done; } <"/proc/$p/net/stat/nf_conntrack"
  done
  echo "$sum"
}
softnet_drops() { local a b d=0; while read -r a b _; do d=$((d + 16#$b)); done </proc/net/softnet_stat; echo "$d"; }
waitfor_gone() { # PID TIMEOUT_S: waits for a process that is not our child
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
}
helpers=()
start_helpers() { # LAB HOST...: a `sleep` in each host namespace, to read its /proc/PID/net
  local name=$1 h
  shift
  helpers=()
  for h in "$@"; do
    "$LAB" exec "$name" "$h" -- sleep $((RUN_TIMEOUT + 60)) &
    pids+=($!) helpers+=($!)
  done
}
kill_pid() { # stops one of ours and removes it from pids
  local p=$1 i
  kill -TERM "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for i in "${!pids[@]}"; do [[ ${pids[i]} == "$p" ]] && unset 'pids[i]'; done
  pids=("${pids[@]}")
}
perf_pid=
start_perf() { # DIR
  [[ $PERF == 1 ]] || return 0
  perf record -q -e cpu-clock -F 250 -a -g -o "$1/perf.data" >/dev/null 2>&1 &
  perf_pid=$!
  pids+=($!)
}
stop_perf() {
  [[ -n $perf_pid ]] || return 0
  kill -INT "$perf_pid" 2>/dev/null || true
  waitfor_gone "$perf_pid" 60
  wait "$perf_pid" 2>/dev/null || true
  local i
  for i in "${!pids[@]}"; do [[ ${pids[i]} == "$perf_pid" ]] && unset 'pids[i]'; done
  pids=("${pids[@]}")
  perf_pid=
}
perf_summary() { # DIR (after the run: not timed)
  [[ -s $1/perf.data ]] || return 0
  local r=(perf report -i "$1/perf.data" --stdio --no-children -g none)
  {
    echo "== by command (self)"
    "${r[@]}" --sort comm 2>/dev/null | grep -v -e '^#' -e '^$' | head -20 || true
    echo "== by symbol (self)"
    "${r[@]}" --sort sym 2>/dev/null | grep -v -e '^#' -e '^$' | head -80 || true
    echo "== by command, symbol (self)"
    "${r[@]}" --sort comm,sym 2>/dev/null | grep -v -e '^#' -e '^$' | head -80 || true
    echo "== inclusive (children), top"
    perf report -i "$1/perf.data" --stdio --children -g none --sort sym 2>/dev/null |
      grep -v -e '^#' -e '^$' | head -120 || true
  } >"$1/perf.txt"
}

# The plan of a lab file: "container address target connections" per container of the client
# group, and the server node.
plan_clients() {
  "$LAB" check "$1" --json | jq -r '.plan as $p | $p.clients[0] as $g | $g.containers | to_entries[]
    | "\($p.containers[.value].name) \($p.containers[.value].address) \($g.connect[.key % ($g.connect | length)]) \($g.connections) \($p.containers[.value].host)"'
}
plan_server_node() { "$LAB" check "$1" --json | jq -r '.plan as $p | $p.hosts[$p.servers[0].host].name'; }
plan_client_hosts() { "$LAB" check "$1" --json | jq -r '.plan as $p | [$p.containers[].host] | unique | .[] | $p.hosts[.].name'; }
# Processes lab starts: servers = ceil(N * 1.25 / per_process); clients per container =
# ceil(connections / per_process) (src/workload/run.rs).
lab_servers() { awk -v n="$1" -v p="$PER_PROCESS" 'BEGIN { s = n * 1.25 / p; printf "%d", (s == int(s)) ? s : int(s) + 1 }'; }
lab_splits() { echo $((($1 + PER_PROCESS - 1) / PER_PROCESS)); }

# --- one run ----------------------------------------------------------------------------------
# Sets `row`, tab-separated (see the header below).
run_one() { # KIND N DIR
  local kind=$1 n=$2 dir=$3 name file server_node t0 t tk i p
  name=mb$((n / 1000))k${TAG}-$kind
  file=$(lab_file "$n" "$kind" "$name")
  server_node=$(plan_server_node "$file")
  local -a plan hosts client_pids=() server_pids=()
  mapfile -t plan < <(plan_clients "$file")
  mapfile -t hosts < <(plan_client_hosts "$file")
  local conns nclients=0 splits servers
  read -r _ _ _ conns _ <<<"${plan[0]}"
  splits=$(lab_splits "$conns")
  nclients=$((${#plan[@]} * splits))
  servers=$(lab_servers "$((conns * ${#plan[@]}))")
  [[ $kind != lab && -n ${SERVERS:-} ]] && servers=$SERVERS
  [[ $TOPO == notes && $kind != lab && -z ${SERVERS:-} ]] && servers=64
  n=$((conns * ${#plan[@]}))
  if [[ -e /run/lab/$name ]] || ip netns list | grep -q "^$name-"; then
    echo "lab $name exists already (someone else's?); not touching it" >&2
    return 2
  fi
  local mem0 cpu0= sn0 segs0=0 mem1 cpu1 ramp_cpu
  local slab0
  local ku0
  mem0=$(mem_avail_kib) sn0=$(softnet_drops) slab0=$(slab_kib) ku0=$(kernel_used_kib)
  cp /proc/meminfo "$dir/meminfo.before"
  local lab_hwm=0 t_up=- up0 spread=-
  if [[ $kind == lab ]]; then
    ours+=("$name")
    local args=(run "$file" --out "$dir" --timeout "$RUN_TIMEOUT")
    [[ ${PANEL:-1} == 0 ]] && args+=(--no-nat-panel)
    # lab's --in-flight is per container (shared by its processes); its default is 8192 per
    # process, what IN_FLIGHT's default means here, so it is passed only when set otherwise.
    [[ $IN_FLIGHT != 8192 ]] && args+=(--in-flight "$IN_FLIGHT")
    up0=$EPOCHREALTIME
    # Its progress lines on stderr, timestamped: "stopping agents: 0 of K exited" comes as it
    # sends SIGTERM to its agents, "tearing down lab" as it starts `down`.
    "$LAB" "${args[@]}" >"$dir/lab.log" 2> >(while IFS= read -r l; do
      printf '%s %s\n' "$EPOCHREALTIME" "$l"; done >"$dir/lab.err") &
    lab_pid=$!
    for ((i = 0; i < 3000; i++)); do # the server namespace, as soon as it exists
      "$LAB" exec "$name" "$server_node" -- true 2>/dev/null && break
      kill -0 "$lab_pid" 2>/dev/null || break
      sleep 0.02
    done
    start_sampler "$name" "$server_node" "$dir/samples" "$n" "$servers"
    # Every agent, as it appears, with its start time. Servers start first and are all ready
    # before any client starts: the first agent after `servers` of them starts the ramp's CPU
    # and segment counts (within 20 ms). Which is which is read from their namespaces once all
    # have started (a new agent enters its namespace only after reading its task).
    local kids=() sns first= last= st
    declare -A started=()
    for ((i = 0; i < 6000; i++)); do
      mapfile -t kids < <(pgrep -P "$lab_pid" -f " agent$" || true) # not the stderr timestamper
      for p in "${kids[@]}"; do
        [[ -n ${started[$p]:-} ]] && continue
        read -r -a st <"/proc/$p/stat" 2>/dev/null || continue
        started[$p]=${st[21]}
      done
      ((${#kids[@]} >= 1)) && [[ -z $perf_pid && $PERF == 1 ]] && start_perf "$dir"
      ((${#started[@]} > servers)) && [[ -z $cpu0 ]] && cpu0=$(cpu_line) segs0=$(in_segs "$sampler_pid")
      ((${#started[@]} >= servers + nclients)) && break
      kill -0 "$lab_pid" 2>/dev/null || break
      sleep 0.02
    done
    sleep 0.1
    sns=$(readlink "/proc/$sampler_pid/ns/net")
    local pns
    for p in "${!started[@]}"; do
      pns=$(readlink "/proc/$p/ns/net" 2>/dev/null) || continue # gone: not an agent
      if [[ $pns == "$sns" ]]; then server_pids+=("$p")
      else
        client_pids+=("$p")
        [[ -z $first || ${started[$p]} -lt $first ]] && first=${started[$p]}
        [[ -z $last || ${started[$p]} -gt $last ]] && last=${started[$p]}
      fi
    done
    start_helpers "$name" "${hosts[@]}"
    [[ ${#server_pids[@]} == "$servers" && ${#client_pids[@]} == "$nclients" ]] ||
      echo "warning: lab started ${#server_pids[@]} servers and ${#client_pids[@]} clients, expected $servers and $nclients" >&2
    local upt now
    read -r upt _ </proc/uptime; now=$EPOCHREALTIME
    t0=$(awk -v s="$first" -v up="$upt" -v now="$now" 'BEGIN { if (s == "") print "-"; else printf "%.3f", now - up + s / 100 }')
    t_up=$(ms_between "$up0" "$t0")
    spread=$(((last - first) * 10)) # clock ticks of 10 ms
    [[ -n $cpu0 ]] || cpu0=$(cpu_line) segs0=$(in_segs "$sampler_pid")
  else
    ours+=("$name")
    up0=$EPOCHREALTIME
    "$LAB" up "$file" >"$dir/up.log" 2>&1
    t_up=$(ms_between "$up0" "$EPOCHREALTIME")
    "$LAB" exec "$name" "$server_node" -- sysctl -qw net.core.somaxconn=65535 \
      net.ipv4.tcp_max_syn_backlog=65535
    local logs=()
    for ((i = 0; i < servers; i++)); do
      "$LAB" exec "$name" "$server_node" -- "$WORK/cserver" 9000 >"$dir/server$i.log" 2>&1 &
      pids+=($!) server_pids+=($!) logs+=("$dir/server$i.log")
    done
    for ((i = 0; i < 600; i++)); do
      (($(cat "${logs[@]}" 2>/dev/null | grep -c '^ready$' || true) >= servers)) && break
      sleep 0.05
    done
    start_sampler "$name" "$server_node" "$dir/samples" "$n" "$servers"
    start_helpers "$name" "${hosts[@]}"
    for ((i = 0; i < 200; i++)); do
      [[ -s $dir/samples ]] && (($(awk 'NR == 1 { print $3 }' "$dir/samples") >= servers)) && break
      sleep 0.05
    done
    local ping_s=100
    [[ -n $PING ]] && ping_s=$(dur_s "$PING")
    start_perf "$dir"
    cpu0=$(cpu_line) segs0=$(in_segs "$sampler_pid")
    t0=$EPOCHREALTIME
    local line cname addr target cn chost lo hi k rk=0 per
    declare -A sharing=() rank=()
    for line in "${plan[@]}"; do
      read -r _ _ target _ chost <<<"$line"
      sharing["$chost $target"]=$((${sharing["$chost $target"]:-0} + 1))
    done
    for line in "${plan[@]}"; do
      read -r cname addr target cn chost <<<"$line"
      if [[ $C_PORT_SHIFT == 1 ]]; then # this container's rank among those sharing its path
        rk=${rank["$chost $target"]:-0}
        rank["$chost $target"]=$((rk + 1))
      fi
      for ((k = 0; k < splits; k++)); do
        lo=$((1024 + 64512 * k / splits)) hi=$((1024 + 64512 * (k + 1) / splits - 1))
        per=$((cn / splits + (k < cn % splits ? 1 : 0)))
        lo=$((lo + rk * (hi - lo + 1) / ${sharing["$chost $target"]}))
        ((hi - lo + 1 >= per)) || { echo "C_PORT_SHIFT: slice $lo-$hi too small for $per" >&2; return 2; }
        "$LAB" exec "$name" "$cname" -- "$WORK/cclient" -s "$addr" -i "$IN_FLIGHT" -p "$ping_s" \
          "$target" "$per" "$lo-$hi" >"$dir/client-$cname-$k.log" 2>&1 &
        pids+=($!) client_pids+=($!)
      done
    done
    spread=$(ms_between "$t0" "$EPOCHREALTIME")
  fi

  # --- until N are accepted at the server --------------------------------------------------
  t=
  local deadline=$((SECONDS + RUN_TIMEOUT)) h
  while ((SECONDS < deadline)); do
    t=$(reached "$dir/samples" "$n")
    [[ -n $t ]] && break
    if [[ $kind == lab ]]; then
      kill -0 "$lab_pid" 2>/dev/null || { echo "lab run exited early (see $dir/lab.log)" >&2; break; }
      h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$lab_pid/status" 2>/dev/null || echo 0)
      ((h > lab_hwm)) && lab_hwm=$h
    else
      for p in "${server_pids[@]}"; do
        kill -0 "$p" 2>/dev/null || { echo "c server $p exited" >&2; break 2; }
      done
    fi
    sleep 0.1
  done
  # At once: lab run stops its agents soon after. Userspace memory first, then CPU.
  local rss pss
  if [[ $kind == lab ]]; then
    read -r rss pss < <(mem_of "$lab_pid" "${server_pids[@]}" "${client_pids[@]}")
  else
    read -r rss pss < <(mem_of "${server_pids[@]}" "${client_pids[@]}")
  fi
  mem1=$(mem_avail_kib) cpu1=$(cpu_line)
  cp /proc/meminfo "$dir/meminfo.at-n"
  local slab=$(( $(slab_kib) - slab0 )) kused=$(( $(kernel_used_kib) - ku0 ))
  local cpu_clients cpu_servers cpu_lab=-
  cpu_clients=$(cpu_of "${client_pids[@]}") cpu_servers=$(cpu_of "${server_pids[@]}")
  [[ $kind == lab ]] && cpu_lab=$(cpu_of "$lab_pid")
  ramp_cpu=$(cpu_split "$cpu0" "$cpu1")
  local busy_s us_per
  busy_s=$(cpu_busy_s "$cpu0" "$cpu1")
  us_per=$(awk -v s="$busy_s" -v n="$n" 'BEGIN { printf "%.1f", s * 1e6 / n }')
  local segs=$(( $(in_segs "$sampler_pid") - segs0 ))
  stop_perf
  local synre ctd
  synre=$(tcpext_sum TCPSynRetrans "${client_pids[@]}")
  ctd=$(ct_drops "${helpers[@]}")
  local listen_drops
  listen_drops=$(tcpext_sum ListenDrops "$sampler_pid")
  for p in "${helpers[@]}" "$sampler_pid"; do kill_pid "$p"; done
  helpers=()
  local sn=$(( $(softnet_drops) - sn0 ))

  # --- teardown ------------------------------------------------------------------------------
  local td0 td1 td_kill=- t_after=-
  if [[ $kind == lab ]]; then
    # lab run stops by itself once everything is established: NAT view, stop agents, down.
    local deadline=$((SECONDS + RUN_TIMEOUT + 300))
    while kill -0 "$lab_pid" 2>/dev/null && ((SECONDS < deadline)); do
      h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$lab_pid/status" 2>/dev/null || echo 0)
      ((h > lab_hwm)) && lab_hwm=$h
      sleep 0.1
    done
    td1=$EPOCHREALTIME
    if kill -0 "$lab_pid" 2>/dev/null; then
      echo "lab run did not finish; stopping it" >&2
      kill -TERM "$lab_pid" 2>/dev/null || true
    fi
    wait "$lab_pid" || echo "lab run exited with $? (see $dir/lab.log)" >&2
    lab_pid=
    sleep 0.2 # the stderr timestamper's last lines
    td0=$(awk '/ stopping agents: 0 of / { print $1; exit }' "$dir/lab.err")
    local tdown
    tdown=$(awk '/ tearing down lab / { print $1; exit }' "$dir/lab.err")
    [[ -n $td0 ]] || td0=$tdown
    [[ -n $td0 ]] || td0=$td1
    td_kill=$(ms_between "$td0" "$tdown")
    t_after=$(ms_between "$t" "$td0")
  else
    td0=$EPOCHREALTIME
    stop_pids 300
    td_kill=$(ms_between "$td0" "$EPOCHREALTIME")
    "$LAB" down "$name" >"$dir/down.log" 2>&1 || echo "lab down $name failed" >&2
    td1=$EPOCHREALTIME
  fi
  for ((i = 0; i < 600; i++)); do
    ip netns list | grep -q "^$name-" || break
    sleep 0.1
  done
  td1=$(awk -v a="$td1" -v b="$EPOCHREALTIME" 'BEGIN { print (b > a) ? b : a }')
  local left
  left=$(ip netns list | grep -c "^$name-" || true)
  ours=("${ours[@]/$name/}")

  # --- lab's own figures -----------------------------------------------------------------
  local own=- est=- failed=- report_rss=- report_pss=-
  if [[ $kind == lab && -s $dir/report.json ]]; then
    own=$(awk -F, -v n="$n" 'NR > 1 && $NF >= n { print $1; exit }' "$dir/established.csv" 2>/dev/null)
    est=$(jq '.outcome.last.established' "$dir/report.json")
    failed=$(jq '[.outcome.last.failed | .. | numbers] | add // 0' "$dir/report.json")
    report_rss=$(jq '((.outcome.last.agents_rss_bytes + .lab_rss_bytes) / 1024) | floor' "$dir/report.json" 2>/dev/null || echo -)
    report_pss=$(jq '(.outcome.last.agents_pss_bytes / 1024) | floor' "$dir/report.json" 2>/dev/null || echo -)
  elif [[ $kind != lab ]]; then
    est=$(cat "$dir"/client-*.log | awk '/ established / { e += $1; f += $3 } END { print e + 0 }')
    failed=$(cat "$dir"/client-*.log | awk '/ established / { f += $3 } END { print f + 0 }')
  fi
  local rate
  rate=$(rates "$dir/samples" "$n" "$t0")
  echo "$rate" >"$dir/rates"
  local m100 m250 m500
  m100=$(milestone "$dir/samples" 100000 "$t0") m250=$(milestone "$dir/samples" 250000 "$t0")
  m500=$(milestone "$dir/samples" 500000 "$t0")
  ((n >= 100000)) || m100=- ; ((n >= 250000)) || m250=- ; ((n >= 500000)) || m500=-
  # kind N ms_accepted ms_kernel peak rss pss lab_hwm kmem_drop teardown_ms ...
  row=$(printf '%s\t' "$kind" "$n" "$(ms_between "$t0" "$t")" \
    "$(ms_between "$t0" "$(kernel_reached "$dir/samples" "$n")")" "${rate%% *}" "$rss" "$pss" \
    "$lab_hwm" $((mem0 - mem1)) "$slab" "$kused" "$(ms_between "$td0" "$td1")" "$td_kill" "$t_after" "$t_up" \
    "$spread" "$servers" "$nclients" "$est" "$failed" "$own" "$report_rss" "$report_pss" \
    "$ramp_cpu" "$cpu_clients" "$cpu_servers" "$cpu_lab" "$segs" "$synre" "$ctd" "$listen_drops" \
    "$sn" "$m100" "$m250" "$m500" "$left" "$name" "$busy_s" "$us_per")
  row=${row%$'\t'}
}

# --- the runs ---------------------------------------------------------------------------------
results=$WORK/results${TAG:+-$TAG}.tsv
header='kind	N	ms_to_N	ms_kernel	peak_per_s	rss_kib	pss_kib	lab_hwm_kib	memavail_drop_kib	slab_growth_kib	kernel_used_growth_kib	teardown_ms	td_kill_ms	after_N_until_sigterm_ms	up_ms	client_start_spread_ms	servers	clients	established	failed	lab_series_ms	lab_report_rss_kib	lab_report_pss_kib	cpu_user_sys_softirq_idle_pct	cpu_clients_s	cpu_servers_s	cpu_lab_s	server_segs_in	syn_retrans	ct_insert_failed_drop	listen_drops	softnet_drops	ms_100k	ms_250k	ms_500k	netns_left	name	ramp_cpu_busy_s	us_cpu_per_connection	busy_pct	load1	files_before	date'
[[ -s $results ]] || echo "$header" >"$results"
date -u +'%F %T UTC'
echo "sizes: ${sizes[*]}; variants: ${kinds[*]}; rounds: $RUNS; topology: $TOPO ($LAB_FILE); ping: ${PING:-lab file}; C batch $C_BATCH, in flight $IN_FLIGHT; open files $HARD"
printf '%-4s %9s %10s %10s %8s %9s %9s %9s %10s %10s %8s %s\n' kind N "to N (ms)" "kernel ms" peak/s \
  "RSS MiB" "PSS MiB" "lab HWM" "kernel MiB" "down (ms)" "us/conn" "cpu u/s/si/idle"
for ((r = ROUND0; r < ROUND0 + RUNS; r++)); do
  for n in "${sizes[@]}"; do
    for ((j = 0; j < ${#kinds[@]}; j++)); do
      kind=${kinds[(r - 1 + j) % ${#kinds[@]}]}
      dir=$WORK/run$r-$((n / 1000))k${TAG}-$kind
      rm -rf "$dir"; mkdir -p "$dir"
      read -r busy load1 files0 < <(wait_idle)
      run_one "$kind" "$n" "$dir"
      printf '%s\t%s\t%s\t%s\t%s\n' "$row" "$busy" "$load1" "$files0" "$(date -u +%FT%TZ)" >>"$results"
      IFS=$'\t' read -r -a f <<<"$row"
      printf '%-4s %9s %10s %10s %8s %9s %9s %9s %10s %10s %8s %s\n' "${f[0]}" "${f[1]}" "${f[2]}" "${f[3]}" \
        "${f[4]}" "$(awk -v k="${f[5]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
        "$(awk -v k="${f[6]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
        "$(awk -v k="${f[7]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
        "$(awk -v k="${f[10]}" 'BEGIN { printf "%.0f", k / 1024 }')" "${f[11]}" "${f[38]}" "${f[23]} (busy before $busy%)"
      perf_summary "$dir"
    done
  done
done
echo
echo "medians of every row of $results (time from starting the clients to N accepted):"
awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  { k = $c["N"] " " $c["kind"]; n[k]++; t[k, n[k]] = $c["ms_to_N"]; if (!(k in seen)) { seen[k]; order[++m] = k } }
  END { for (j = 1; j <= m; j++) { k = order[j]; cnt = n[k]
      for (a = 1; a <= cnt; a++) for (b = a + 1; b <= cnt; b++) if (t[k, b] + 0 < t[k, a] + 0) { x = t[k, a]; t[k, a] = t[k, b]; t[k, b] = x }
      split(k, f, " "); med[k] = t[k, int((cnt + 1) / 2)]
      printf "  %-4s %9s  %8.1f s  (%d runs)", f[2], f[1], med[k] / 1000, cnt
      if (f[2] == "lab" && (f[1] " c") in med) printf "  %.2fx the probe on the same tables", med[k] / med[f[1] " c"]
      if (f[2] == "lab" && (f[1] " c0") in med) printf "  %.2fx the probe on the default tables", med[k] / med[f[1] " c0"]
      if (f[2] == "c" && (f[1] " c0") in med) printf "  %.2fx the probe on the default tables", med[k] / med[f[1] " c0"]
      printf "\n" } }' "$results"
echo "results: $results (one row per run; the per-run directories hold samples, rates, logs)"
