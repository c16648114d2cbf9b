#!/usr/bin/env bash
# Rampart against strongSwan in network namespaces (the testbed of ../shared/interop/):
# strongSwan runs in ss-left, Rampart takes the ss-right side on DPDK af_packet ports.
#   scripts/interop.sh [CONFIG] [-- strongswan-pair.sh test arguments via env]
# Env: INTEROP_DIR (default ../shared/interop), INITIATE=yes|no (who starts: strongSwan, or
# Rampart: at start-up when the config says "start_action": "start", else on demand through
# `rampart ctl initiate left`), IKE_PROPOSALS/ESP_PROPOSALS
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
  [ "${KEEP:-0}" = 1 ] || { bash "$PAIR" down >/dev/null 2>&1; ip netns del ss-nat 2>/dev/null; } || true
}
trap cleanup EXIT

PEER=external bash "$PAIR" up
# Rampart owns wan0 through DPDK: the kernel of ss-right must neither answer ARP for
# 192.0.2.2 nor reject UDP 500/4500. Its LAN port is a DPDK TAP device named ipsec0, the
# interface through which the kernel host 10.2.0.1 (on lan0) reaches 10.1.0.0/24.
ip -n ss-right addr flush dev wan0
if [ "${NAT:-0}" = 1 ]; then
  # ss-left 192.0.2.1 -> [nat-in, proxy ARP for 192.0.2.2 | ss-nat | nat-out 198.51.100.1,
  # masquerade to ports 20000-30000] -> wan0 of ss-right (Rampart: 192.0.2.2 and 198.51.100.2).
  ip netns del ss-nat 2>/dev/null || true
  ip netns add ss-nat
  ip netns exec ss-nat sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  ip -n ss-right link set wan0 netns ss-nat
  ip -n ss-nat link set wan0 name nat-in
  ip -n ss-nat addr add 192.0.2.254/24 dev nat-in
  ip -n ss-right link add wan0 type veth peer name nat-out netns ss-nat
  ip -n ss-nat addr add 198.51.100.1/24 dev nat-out
  for i in lo nat-in nat-out; do ip -n ss-nat link set "$i" up; done
  ip -n ss-right link set wan0 up
  ip netns exec ss-nat ethtool -K nat-out tx off >/dev/null 2>&1 || true
  ip netns exec ss-nat sysctl -qw net.ipv4.conf.nat-in.proxy_arp=1
  ip -n ss-nat route add 192.0.2.2/32 dev nat-out
  ip netns exec ss-nat nft -f - <<'NFT'
table ip nat {
  chain post {
    type nat hook postrouting priority 100;
    oifname "nat-out" ip protocol udp masquerade to :20000-30000
  }
}
NFT
fi
ip netns exec ss-right "$BIN" run --config "$CONFIG" >"$LOG/rampart.out" 2>"$LOG/rampart.log" &
echo $! >"$LOG/rampart.pid"
for _ in $(seq 1 50); do ip -n ss-right link show ipsec0 >/dev/null 2>&1 && break; sleep 0.2; done
# The tunnel MTU, as strongSwan sets it for its own ipsec0: room for ESP in a 1500-byte WAN.
ip -n ss-right link set ipsec0 mtu 1400 up
ip -n ss-right route replace 10.1.0.0/24 via 10.2.0.254 dev ipsec0 onlink src 10.2.0.1
SOCK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["control"]["socket"])' "$CONFIG")
START=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["peers"][0].get("start_action", "none"))' "$CONFIG")
if [ "${INITIATE:-yes}" = no ] && [ "$START" != start ]; then
  # Rampart initiates on demand, as an operator would: `rampart ctl initiate`.
  ( sleep 1; "$BIN" ctl --socket "$SOCK" initiate left ) &
fi
rc=0
bash "$PAIR" test || rc=$?
if [ "${NAT:-0}" = 1 ]; then
  echo "== NAT translations (ss-nat)"
  ip netns exec ss-nat cat /proc/net/nf_conntrack 2>/dev/null | grep -E "dport=(500|4500)" | head -4 || true
  grep -q "remote=198.51.100.1:2" "$LOG/rampart.log" || { echo "FAIL: Rampart did not see the peer behind the NAT's mapped port"; rc=1; }
fi
if [ "${REKEY_DURING:-0}" = 1 ] && [ $rc = 0 ]; then
  python3 scripts/transfer.py --server-ns ss-right --client-ns ss-left --addr 10.2.0.1 --port 9100 --mb 40 >"$LOG/transfer.out" 2>&1 &
  tp=$!
  sleep 0.3
  "$BIN" ctl --socket "$SOCK" rekey left --child net
  sleep 0.3
  "$BIN" ctl --socket "$SOCK" rekey left --ike
  if wait $tp; then echo "rekeys during a transfer: $(tail -1 "$LOG/transfer.out")"; else echo "FAIL: the transfer across the rekeys broke"; cat "$LOG/transfer.out"; rc=1; fi
fi
if [ "${LIVENESS:-0}" = 1 ] && [ $rc = 0 ]; then
  # strongSwan dies without a word; Rampart must find out by itself.
  t0=$(date +%s)
  ip netns pids ss-left | xargs -r kill -9
  dead=""
  for _ in $(seq 1 120); do
    grep -q "IKE_SA down.*DeadPeer" "$LOG/rampart.log" && { dead=$(( $(date +%s) - t0 )); break; }
    sleep 0.5
  done
  # The config checks every 10 s; a silent peer is dead within two intervals (plus slack).
  if [ -n "$dead" ] && [ "$dead" -le "${LIVENESS_MAX:-25}" ]; then
    echo "liveness: Rampart declared strongSwan dead ${dead} s after it was killed"
  else
    echo "FAIL: strongSwan was not declared dead within ${LIVENESS_MAX:-25} s (${dead:-never})"; rc=1
  fi
fi
kill -USR1 "$(cat "$LOG/rampart.pid")" 2>/dev/null || true
sleep 0.3
echo "== rampart log"; grep -E "IKE_SA|CHILD_SA|auth|WARN|ERROR" "$LOG/rampart.log" | tail -20
echo "== rampart counters"; tail -8 "$LOG/rampart.out"
exit $rc
