#!/usr/bin/env bash
# The same topology as bench/100-containers.toml, built the way a person following the article
# would, with iproute2 commands: one LAN switch, one host with docker0, N containers.
# Usage: ip-script.sh up|down PREFIX [N]
set -euo pipefail
cmd=$1 p=$2 n=${3:-100}
if [ "$cmd" = down ]; then
  for i in $(seq "$n" -1 1); do ip netns del "$p-c$i"; done
  ip netns del "$p-h"; ip netns del "$p-lan"
  exit 0
fi
ip netns add "$p-lan"
ip -n "$p-lan" link set lo up
ip -n "$p-lan" link add lan type bridge
ip -n "$p-lan" link set lan up
ip netns add "$p-h"
ip -n "$p-h" link set lo up
ip -n "$p-lan" link add h type veth peer name eth0 netns "$p-h"
ip -n "$p-lan" link set h master lan up
ip -n "$p-h" addr add 192.168.49.6/24 dev eth0
ip -n "$p-h" link set eth0 up
ip netns exec "$p-h" sysctl -qw net.ipv4.ip_forward=1
ip -n "$p-h" link add docker0 type bridge
ip -n "$p-h" addr add 172.17.0.1/16 dev docker0
ip -n "$p-h" link set docker0 up
for i in $(seq 1 "$n"); do
  c="$p-c$i" ip4="172.17.$(( (i + 1) / 256 )).$(( (i + 1) % 256 ))"
  ip netns add "$c"
  ip -n "$c" link set lo up
  ip -n "$p-h" link add "veth$(printf %07x "$i")" type veth peer name eth0 netns "$c"
  ip -n "$p-h" link set "veth$(printf %07x "$i")" master docker0 up
  ip -n "$c" addr add "$ip4/16" dev eth0
  ip -n "$c" link set eth0 up
  ip -n "$c" route add default via 172.17.0.1
done
