#!/usr/bin/env bash
# The same topology as bench/100-containers.toml, built the way a person following the article
# would, with iproute2 commands: one LAN switch, one host with docker0, N containers.
# Usage: ip-script.sh up|down PREFIX [N]
set -euo pipefail
cmd=$1 p=$2 n=${3:-100}
if [ "$cmd" = down ]; then
  for i in $(seq "$n" -1 1); do ip netns del "$p-c$i"; done
  ip netns del "$p-host1"; ip netns del "$p-lan"
  exit 0
fi
ip netns add "$p-lan"
ip -n "$p-lan" link set lo up
ip -n "$p-lan" link add lan type bridge
ip -n "$p-lan" link set lan up
ip netns add "$p-host1"
ip -n "$p-host1" link set lo up
ip -n "$p-lan" link add host1 type veth peer name eth0 netns "$p-host1"
ip -n "$p-lan" link set host1 master lan up
ip -n "$p-host1" addr add 192.168.49.6/24 dev eth0
ip -n "$p-host1" link set eth0 up
ip netns exec "$p-host1" sysctl -qw net.ipv4.ip_forward=1
ip -n "$p-host1" link add docker0 type bridge
ip -n "$p-host1" addr add 172.17.0.1/16 dev docker0
ip -n "$p-host1" link set docker0 up
ip netns exec "$p-host1" nft -f - <<'NFT'
table ip nat {
  chain POSTROUTING {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 172.17.0.0/16 oifname != "docker0" counter masquerade
  }
}
table ip filter {
  chain DOCKER-USER {
  }
  chain DOCKER {
    iifname != "docker0" oifname "docker0" counter drop
  }
  chain DOCKER-INTERNAL {
  }
  chain DOCKER-BRIDGE {
    oifname "docker0" counter jump DOCKER
  }
  chain DOCKER-CT {
    oifname "docker0" ct state established,related counter accept
  }
  chain DOCKER-FORWARD {
    counter jump DOCKER-CT
    counter jump DOCKER-INTERNAL
    counter jump DOCKER-BRIDGE
    iifname "docker0" counter accept
  }
  chain FORWARD {
    type filter hook forward priority filter; policy drop;
    counter jump DOCKER-USER
    counter jump DOCKER-FORWARD
  }
}
NFT
for i in $(seq 1 "$n"); do
  c="$p-c$i" ip4="172.17.$(( (i + 1) / 256 )).$(( (i + 1) % 256 ))"
  ip netns add "$c"
  ip -n "$c" link set lo up
  ip -n "$p-host1" link add "veth$(printf %07x "$i")" type veth peer name eth0 netns "$c"
  ip -n "$p-host1" link set "veth$(printf %07x "$i")" master docker0 up
  ip -n "$c" addr add "$ip4/16" dev eth0
  ip -n "$c" link set eth0 up
  ip -n "$c" route add default via 172.17.0.1
done
