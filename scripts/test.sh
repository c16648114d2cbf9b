#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine (as root): installs what is needed (packages,
# scapy), builds, then the unit, property, vector, oracle (scapy), DPDK and network-namespace
# end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The namespace tests share one test bed and fixed names: one test binary at a time.
# The scapy oracle must run here, not be skipped.
export RAMPART_REQUIRE_SCAPY=1
cargo test --release --workspace -- --test-threads=1
