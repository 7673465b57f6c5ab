#!/usr/bin/env bash
# One entry point on a fresh Debian machine: installs the system packages lab needs (once),
# builds lab, then either runs lab with your arguments or runs the whole test suite.
#
#   sudo ./lab.sh up labs/02-cross-host.toml    build lab (release) and run it with these arguments
#   sudo ./lab.sh test                          formatting, lints, unit and real-namespace tests
set -euo pipefail
cd "$(dirname "$0")"

# Build: libnftnl/libmnl headers (nftnl-sys, mnl-sys) and pkg-config to find them.
# Tests: iproute2, nftables and procps, whose `ip`, `nft` and `sysctl` the tests use to check
# what lab built (and to run `lab show --commands`).
packages=(libnftnl-dev libmnl-dev pkg-config iproute2 nftables procps)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "lab.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = test ]; then
  shift
  cargo fmt --all -- --check
  cargo clippy --all-targets --quiet -- -D warnings
  # Lab tests build real namespaces as root; each uses its own lab name, so they run in parallel.
  cargo test --quiet "$@"
  # The suite must leave nothing: no lab records and no namespaces of test labs.
  leftovers=$(ls /run/lab-tests 2>/dev/null || true)
  if [ -n "$leftovers" ]; then echo "lab.sh: tests left lab records: $leftovers" >&2; exit 1; fi
  exit 0
fi

cargo build --release --quiet
exec target/release/lab "$@"
