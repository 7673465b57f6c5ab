#!/bin/sh
# lab more-src on real Docker: the networks and containers that give the containers the lab's source addresses.
# Each host's part is for that machine; `#   ` lines are for you to run there by hand.
set -e
# The load tester's image (lab's own client is built into lab, not an image):
IMAGE=${IMAGE:-your/load-tester}

# ==== host client-host: Docker with 3 containers
# - docker0, Docker's default bridge, cannot take com.docker.network.host_ipv4: dockerd has no flag
#   for it, and daemon.json's default-network-opts reach user-defined networks only. Containers on
#   docker0 leave as the host's primary address, 192.168.49.6, through MASQUERADE: one NAT path of
#   64,512 ports per server address and port, the wall. Another source address needs a user-defined
#   network.
# - host_ipv4 is one address, not a pool: Docker writes `SNAT --to-source ADDR` with no range and
#   has no per-container source address. The lab's pool 192.168.49.6-192.168.49.8 on the default
#   bridge becomes 3 networks, one per address, and the containers are spread over them here,
#   deliberately, so that no (address, server) path carries more than it must; the lab's kernel
#   hashes each (container, server) pair to a pool address instead, so a container may leave as
#   another address than in the lab.
# - The host_ipv4 addresses must be on this machine (the `ip addr add` lines): Docker does not check
#   (its own test uses 172.0.0.172), and SNAT to an address the host does not have sends SYNs whose
#   replies never come back.
# - Both firewall backends honour host_ipv4: iptables writes `-t nat -A POSTROUTING -s SUBNET ! -o
#   BRIDGE -j SNAT --to-source ADDR`, nftables (daemon.json "firewall-backend": "nftables", Docker
#   29+) `oifname != "BRIDGE" ip saddr SUBNET counter snat to ADDR comment "SNAT"`. The lab imitates
#   iptables (Docker's default, stored by iptables-nft).
# - Docker 28+ gives each container a random MAC; the lab uses 02:42 + the address, as Docker 27 and
#   older did (add --mac-address to fix one).
# Its addresses must be on this machine, 192.168.49.6 first (the primary, what MASQUERADE picks):
#   ip addr add 192.168.49.7/24 dev eth0
#   ip addr add 192.168.49.8/24 dev eth0
# network more-src-snat1: 1 container (c1), leaving as 192.168.49.6 (host_ipv4)
#   to 192.168.49.5:9000: 25,000 connections from 1 container
docker network create --driver bridge --subnet 172.18.0.0/16 --gateway 172.18.0.1 \
  -o com.docker.network.bridge.name=br-more-src-1 \
  -o com.docker.network.host_ipv4=192.168.49.6 \
  more-src-snat1
# network more-src-snat2: 1 container (c2), leaving as 192.168.49.7 (host_ipv4)
#   to 192.168.49.5:9000: 25,000 connections from 1 container
docker network create --driver bridge --subnet 172.19.0.0/16 --gateway 172.19.0.1 \
  -o com.docker.network.bridge.name=br-more-src-2 \
  -o com.docker.network.host_ipv4=192.168.49.7 \
  more-src-snat2
# network more-src-snat3: 1 container (c3), leaving as 192.168.49.8 (host_ipv4)
#   to 192.168.49.5:9000: 25,000 connections from 1 container
docker network create --driver bridge --subnet 172.20.0.0/16 --gateway 172.20.0.1 \
  -o com.docker.network.bridge.name=br-more-src-3 \
  -o com.docker.network.host_ipv4=192.168.49.8 \
  more-src-snat3
# load (lab's built-in client): 25,000 connections to 192.168.49.5:9000, a ping on each every 100 s
docker run -d --name more-src-c1 --network more-src-snat1 --ip 172.18.0.2 \
  --sysctl net.ipv4.ip_local_port_range='1024 65535' \
  --sysctl net.ipv4.tcp_syn_retries=2 \
  "$IMAGE"
# load (lab's built-in client): 25,000 connections to 192.168.49.5:9000, a ping on each every 100 s
docker run -d --name more-src-c2 --network more-src-snat2 --ip 172.19.0.2 \
  --sysctl net.ipv4.ip_local_port_range='1024 65535' \
  --sysctl net.ipv4.tcp_syn_retries=2 \
  "$IMAGE"
# load (lab's built-in client): 25,000 connections to 192.168.49.5:9000, a ping on each every 100 s
docker run -d --name more-src-c3 --network more-src-snat3 --ip 172.20.0.2 \
  --sysctl net.ipv4.ip_local_port_range='1024 65535' \
  --sysctl net.ipv4.tcp_syn_retries=2 \
  "$IMAGE"

# ==== host server-host: no Docker
#   sysctl -w net.core.somaxconn=65535
#   sysctl -w net.ipv4.tcp_max_syn_backlog=65535
# server srv: lab's built-in server; run yours on this machine itself (not in a container), port
#   9000 of every address, with a listen backlog of 65535
