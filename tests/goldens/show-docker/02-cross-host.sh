#!/bin/sh
# lab cross-host on real Docker: the networks and containers that give the containers the lab's source addresses.
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
# - Docker 28+ gives each container a random MAC; the lab uses 02:42 + the address, as Docker 27 and
#   older did (add --mac-address to fix one).
# network bridge: 3 containers (c1, c2, c3), leaving as 192.168.49.6, the host's primary address
#   (MASQUERADE)
#   to 192.168.49.5:9000: 75,000 connections from 3 containers, past one NAT path's 64,512 ports
# load (lab's built-in client): 25,000 connections to 192.168.49.5:9000, a ping on each every 100 s
docker run -d --name cross-host-c1 --network bridge \
  --sysctl net.ipv4.ip_local_port_range='1024 65535' \
  --sysctl net.ipv4.tcp_syn_retries=2 \
  "$IMAGE"
# load (lab's built-in client): 25,000 connections to 192.168.49.5:9000, a ping on each every 100 s
docker run -d --name cross-host-c2 --network bridge \
  --sysctl net.ipv4.ip_local_port_range='1024 65535' \
  --sysctl net.ipv4.tcp_syn_retries=2 \
  "$IMAGE"
# load (lab's built-in client): 25,000 connections to 192.168.49.5:9000, a ping on each every 100 s
docker run -d --name cross-host-c3 --network bridge \
  --sysctl net.ipv4.ip_local_port_range='1024 65535' \
  --sysctl net.ipv4.tcp_syn_retries=2 \
  "$IMAGE"

# ==== host server-host: no Docker
#   sysctl -w net.core.somaxconn=65535
#   sysctl -w net.ipv4.tcp_max_syn_backlog=65535
# server srv: lab's built-in server; run yours on this machine itself (not in a container), port
#   9000 of every address, with a listen backlog of 65535
