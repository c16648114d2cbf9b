#!/usr/bin/env bash
# Installs what Rampart needs on a fresh Debian 12 machine (as root), then builds it.
# Idempotent: packages already present are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(libdpdk-dev dpdk pkg-config libclang-dev clang libipsec-mb-dev
      strongswan-charon strongswan-swanctl strongswan-pki libcharon-extra-plugins
      libstrongswan-standard-plugins libstrongswan-extra-plugins
      tshark tcpdump iproute2 iputils-ping ethtool nftables python3 python3-pip iperf3 procps)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# strongSwan's charon must not run as a system service: the testbeds start their own.
systemctl disable --now strongswan-starter strongswan 2>/dev/null || true

# The oracle for ESP: scapy over the `cryptography` package.
if ! python3 -c 'import scapy, cryptography' 2>/dev/null; then
  python3 -m pip install -q scapy cryptography 2>/dev/null \
    || python3 -m pip install -q --break-system-packages scapy cryptography
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) and run again" >&2
  exit 1
fi
cargo build --release --workspace --bins
