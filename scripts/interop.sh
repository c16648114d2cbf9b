#!/usr/bin/env bash
# Rampart against strongSwan in network namespaces (the testbed of ../shared/interop/):
# strongSwan runs in ss-left, Rampart takes the ss-right side on DPDK af_packet ports.
#   scripts/interop.sh [CONFIG] [-- strongswan-pair.sh test arguments via env]
# Env: INTEROP_DIR (default ../shared/interop), INITIATE=yes|no (who starts: strongSwan or
# Rampart, which then needs a config with "start_action": "start"), IKE_PROPOSALS/ESP_PROPOSALS
# (passed to strongSwan), KEEP=1 leaves the testbed up.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CONFIG=${1:-configs/interop/strongswan-right.json}
INTEROP_DIR=${INTEROP_DIR:-$ROOT/../shared/interop}
PAIR="$INTEROP_DIR/strongswan-pair.sh"
[ -x "$PAIR" ] || [ -f "$PAIR" ] || { echo "interop: $PAIR not found" >&2; exit 3; }
BIN=${RAMPART_BIN:-$ROOT/target/release/rampart}
LOG=${LOG:-/tmp/rampart-interop}
mkdir -p "$LOG"

cleanup() {
  [ -f "$LOG/rampart.pid" ] && kill "$(cat "$LOG/rampart.pid")" 2>/dev/null || true
  sleep 0.5
  [ "${KEEP:-0}" = 1 ] || bash "$PAIR" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

PEER=external bash "$PAIR" up
# Rampart owns wan0 through DPDK: the kernel of ss-right must neither answer ARP for
# 192.0.2.2 nor reject UDP 500/4500. Its LAN port is a DPDK TAP device named ipsec0, the
# interface through which the kernel host 10.2.0.1 (on lan0) reaches 10.1.0.0/24.
ip -n ss-right addr flush dev wan0
ip netns exec ss-right "$BIN" run --config "$CONFIG" >"$LOG/rampart.out" 2>"$LOG/rampart.log" &
echo $! >"$LOG/rampart.pid"
for _ in $(seq 1 50); do ip -n ss-right link show ipsec0 >/dev/null 2>&1 && break; sleep 0.2; done
# The tunnel MTU, as strongSwan sets it for its own ipsec0: room for ESP in a 1500-byte WAN.
ip -n ss-right link set ipsec0 mtu 1400 up
ip -n ss-right route replace 10.1.0.0/24 via 10.2.0.254 dev ipsec0 onlink src 10.2.0.1
rc=0
bash "$PAIR" test || rc=$?
kill -USR1 "$(cat "$LOG/rampart.pid")" 2>/dev/null || true
sleep 0.3
echo "== rampart log"; grep -E "IKE_SA|CHILD_SA|auth|WARN|ERROR" "$LOG/rampart.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -20
echo "== rampart counters"; tail -8 "$LOG/rampart.out"
exit $rc
