#!/usr/bin/env bash
# Benchmark: `lab up` / `lab down` of one host with 100 containers, beside the same topology
# built by an `ip` command script. Prints the median of RUNS runs of each, in milliseconds.
# Usage (root): bench/up-down.sh [RUNS]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release --quiet
lab=${CARGO_TARGET_DIR:-target}/release/lab
ms() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
lab_up=() lab_down=() ip_up=() ip_down=()
for _ in $(seq "$runs"); do
  t0=$(ms); "$lab" up bench/100-containers.toml --name bench100 2>/dev/null; t1=$(ms)
  "$lab" down bench100 2>/dev/null; t2=$(ms)
  lab_up+=($(( (t1 - t0) / 1000000 ))) lab_down+=($(( (t2 - t1) / 1000000 )))
  t0=$(ms); bash bench/ip-script.sh up benchip 100; t1=$(ms)
  bash bench/ip-script.sh down benchip 100; t2=$(ms)
  ip_up+=($(( (t1 - t0) / 1000000 ))) ip_down+=($(( (t2 - t1) / 1000000 )))
done
left=$(ip netns list | grep -cE '^(bench100|benchip)-' || true)
printf 'lab up      %5s ms   (median of %s)\n' "$(printf '%s\n' "${lab_up[@]}" | median)" "$runs"
printf 'lab down    %5s ms\n' "$(printf '%s\n' "${lab_down[@]}" | median)"
printf 'ip script up   %5s ms\n' "$(printf '%s\n' "${ip_up[@]}" | median)"
printf 'ip script down %5s ms\n' "$(printf '%s\n' "${ip_down[@]}" | median)"
printf 'namespaces left behind: %s\n' "$left"
