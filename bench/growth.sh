#!/usr/bin/env bash
# What grows faster than N (issue 18): `lab run` of a lab file under `perf record` (all CPUs,
# 499 Hz, no call graphs), then bench/growth.py: the samples of the run's own processes and of
# the kernel's threads per connection established, by windows of the ramp, and the symbols whose
# cost per connection grew most from the first windows to the last. Run it on a quiet machine:
# other namespaces' work done by kernel threads is counted too.
#
# Usage (root): bench/growth.sh [LAB_FILE] [WINDOW_S]   (default labs/million.toml, 10)
#   WORK=DIR   where perf.data, the samples and the run's --out go (default /tmp/lab-growth)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "$0: needs root" >&2; exit 3; }
file=${1:-labs/million.toml}
window=${2:-10}
WORK=${WORK:-/tmp/lab-growth}
command -v perf >/dev/null || { apt-get update -q && apt-get install -y -q linux-perf; }
cargo build --release --quiet
rm -rf "$WORK" && mkdir -p "$WORK"
cp target/release/lab "$WORK/lab"

perf_pid= run_pid= watch_pid=
cleanup() {
  [[ -n $watch_pid ]] && kill "$watch_pid" 2>/dev/null
  [[ -n $run_pid ]] && kill -TERM "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null
  [[ -n $perf_pid ]] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null
  return 0
}
trap cleanup EXIT

perf record -q -e cpu-clock -F 499 -a -o "$WORK/perf.data" >/dev/null 2>&1 &
perf_pid=$!
sleep 1
"$WORK/lab" run "$file" --out "$WORK/out" --json >"$WORK/report.json" 2>"$WORK/err.txt" &
run_pid=$!
# The run's processes: lab run and its agents (their children), as they appear.
(while kill -0 "$run_pid" 2>/dev/null; do
  echo "$run_pid"; pgrep -P "$run_pid" || true; sleep 0.5
done | sort -u >"$WORK/pids") &
watch_pid=$!
wait "$run_pid" || echo "lab run exited with $? (see $WORK/err.txt)" >&2
run_pid=
wait "$watch_pid" || true
watch_pid=
kill -INT "$perf_pid" && wait "$perf_pid" || true
perf_pid=
sort -u -o "$WORK/pids" "$WORK/pids"
perf script -i "$WORK/perf.data" -F comm,pid,time,ip,sym 2>/dev/null | python3 -c '
import re, sys
rx = re.compile(r"^\s*(.*?)\s+(\d+)\s+(\d+\.\d+):\s+\S+\s+(.*)$")
for line in sys.stdin:
    m = rx.match(line)
    if m:
        comm, pid, t, sym = m.groups()
        sym = sym.strip() or "[unknown]"
        print(f"{comm}\t{pid}\t{t}\t{sym}")
' >"$WORK/samples.tsv"
# The ramp starts with the first connect of an agent.
start=$(awk -F'\t' 'NR == FNR { p[$1]; next } ($2 in p) && $4 ~ /^(inet_stream_connect|__inet_stream_connect|tcp_v4_connect)$/ { print $3; exit }' \
  "$WORK/pids" "$WORK/samples.tsv")
[[ -n $start ]] || { echo "no connect sampled: no ramp to look at" >&2; exit 1; }
python3 bench/growth.py "$WORK/samples.tsv" "$WORK/out/established.csv" "$start" "$WORK/pids" "$window" |
  tee "$WORK/growth.txt"
