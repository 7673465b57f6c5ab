#!/usr/bin/env bash
# One entry point on a fresh Debian machine: installs the system packages lab needs (once),
# builds lab, then either runs lab with your arguments or runs the whole test suite.
#
#   ./lab.sh up labs/02-cross-host.toml    build lab (release) and run it with these arguments
#   ./lab.sh test                          formatting, lints, unit and real-namespace tests
#
# It needs root (packages; labs are network namespaces). As root (a root shell, as on a Debian
# box installed without sudo, or a container's build) it goes on; from a user account it runs
# itself again through sudo, keeping PATH and rustup's and cargo's homes so that the same cargo
# builds; without root and without sudo it says how to run it as root.
set -euo pipefail
if [ "$EUID" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    echo "lab.sh: needs root: running it again with sudo" >&2
    exec sudo env "PATH=$PATH" "RUSTUP_HOME=${RUSTUP_HOME:-${HOME:-}/.rustup}" \
      "CARGO_HOME=${CARGO_HOME:-${HOME:-}/.cargo}" "$0" "$@"
  fi
  echo "lab.sh: needs root (it installs packages, and labs are network namespaces), and sudo is" \
    "not installed: run it as root, e.g. su -c '$0 $*' (or log in as root)" >&2
  exit 1
fi
cd "$(dirname "$0")"

# Build: libnftnl/libmnl headers (nftnl-sys, mnl-sys) and pkg-config to find them.
# Tests: iproute2, nftables and procps, whose `ip`, `nft` and `sysctl` the tests use to check
# what lab built (and to run `lab show --commands`); graphviz, whose `dot` draws
# `lab graph --format svg` and checks the DOT of every lab.
packages=(libnftnl-dev libmnl-dev pkg-config iproute2 nftables procps graphviz)
# Only for `lab.sh test` (installed on that path alone): golang-go builds the test server and
# client of tests/programs/ (Go 1.19 on Debian 12, standard library only); nginx-light and wrk
# are a real HTTP server and load generator for the tests that run the user's own programs;
# python3 runs the small servers of tests/privileges.rs (what a program without root cannot do);
# python3-yaml reads the compose files of `lab show --docker compose` (tests/show_docker.rs);
# chromium opens the report.html of `lab run --out` headless and checks what it renders
# (tests/report_html.rs); podman, with runc named (podman would pull in crun, which refuses a
# hybrid cgroup layout), and busybox-static run lab in real containers built from a local rootfs
# (tests/container_engine.rs); tmux is the real terminal the live view is watched in
# (tests/live_panel.rs).
test_packages=(golang-go nginx-light wrk python3 python3-yaml chromium podman runc busybox-static tmux)

# Installs those of the given packages that are not installed yet (nothing if all are).
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "lab.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
install_missing "${packages[@]}"

if [ "${1:-}" = test ]; then
  shift
  install_missing "${test_packages[@]}"
  # The archive check (tests/packaging.rs) asks apt-cache, which knows nothing before the
  # first `apt-get update`.
  if ! ls /var/lib/apt/lists/*Packages* >/dev/null 2>&1; then apt-get update -qq; fi
  # Each step says how long it took (docs/bench.md has where the suite's time goes).
  step() {
    local started=$SECONDS rc=0
    "$@" || rc=$?
    echo "lab.sh: $* took $((SECONDS - started)) s" >&2
    return "$rc"
  }
  step cargo fmt --all -- --check
  step cargo clippy --all-targets --quiet -- -D warnings
  # The integration tests run the release binary, the one users run (the suite is bound by
  # the two cores; two million connections: 92 s against 252 s in the debug build); the unit
  # tests keep the debug build's assertions.
  step cargo build --release --quiet
  export LAB_RELEASE_BIN=$PWD/target/release/lab
  # The test build's binaries keep line tables for backtraces, not full debug info: 11 s less
  # of the build on two cores.
  export CARGO_PROFILE_DEV_DEBUG=line-tables-only
  # What the suite must leave as it found it: namespaces, lab records, lab processes and the
  # tests' temporary files (kept apart in a TMPDIR of their own).
  netns_before=$(ip netns list | awk '{print $1}' | sort)
  suite_tmp=$(mktemp -d /tmp/lab-suite.XXXXXX)
  # Lab tests build real namespaces as root; each uses its own lab name, so they run in
  # parallel: with cargo-nextest, tests of every binary side by side as .config/nextest.toml
  # says; else cargo test, one binary at a time.
  status=0
  if cargo nextest --version >/dev/null 2>&1; then
    TMPDIR=$suite_tmp step cargo nextest run --no-fail-fast "$@" || status=$?
  else
    TMPDIR=$suite_tmp step cargo test --quiet "$@" || status=$?
  fi
  left=()
  new_netns=$(comm -13 <(echo "$netns_before") <(ip netns list | awk '{print $1}' | sort) | tr '\n' ' ')
  [ -z "${new_netns// }" ] || left+=("namespaces: $new_netns")
  for d in /run/lab-tests /run/lab-tests-*; do
    [ -d "$d" ] || continue
    records=$(ls -A "$d" | grep -v -E '^\.(global-limits\.lock|host-limits\.(lock|gen)|heavy\.lock)$' | tr '\n' ' ' || true)
    [ -z "${records// }" ] || left+=("lab records in $d: $records")
  done
  target=$(pwd -P)/target/
  procs=()
  for exe in /proc/[0-9]*/exe; do
    path=$(readlink "$exe" 2>/dev/null) || continue
    case "$path" in "$target"*) pid=${exe#/proc/}; procs+=("${pid%/exe} ($path)") ;; esac
  done
  [ ${#procs[@]} -eq 0 ] || left+=("processes of the suite still running: ${procs[*]}")
  tmp_left=$(ls -A "$suite_tmp" | tr '\n' ' ')
  [ -z "${tmp_left// }" ] || left+=("temporary files in $suite_tmp: $tmp_left")
  rm -rf "$suite_tmp"
  for l in "${left[@]}"; do echo "lab.sh: the tests left $l" >&2; done
  [ ${#left[@]} -eq 0 ] || exit 1
  exit "$status"
fi

cargo build --release --quiet
exec target/release/lab "$@"
