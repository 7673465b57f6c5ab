# lab in a container: the build stage compiles lab with lab.sh (libnftnl linked in), the
# runtime stage is Debian slim with lab, the lab files and the tools to look inside a lab.
#
#   docker build -t lab .
#   docker run --rm --privileged --network none lab run labs/02-cross-host.toml
#
# docs/ci.md says what the container needs (and why --privileged), and how to use it in CI.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# lab.sh installs the build packages it lists (libnftnl-dev libmnl-dev pkg-config ...), builds
# target/release/lab and runs it: `--version` proves the binary starts.
RUN ./lab.sh --version

FROM debian:bookworm-slim
# libmnl0: the only shared library lab needs besides glibc (libnftnl is linked in). iproute2
# and nftables: to look inside a lab (`lab exec LAB NODE -- ip addr`, `... -- nft list ruleset`).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmnl0 iproute2 nftables \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/lab /usr/local/bin/lab
COPY labs /lab/labs
WORKDIR /lab
# lab exits 0, 1 (expectations not met), 2 (bad input), 3 (this container cannot run labs),
# 4 (runtime error) or 128+N (signal N): `docker run` returns the same status.
ENTRYPOINT ["lab"]
CMD ["--help"]
