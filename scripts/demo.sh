#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): installs what is needed, builds,
# brings up the embedded two-gateway topology (scripts/testbed.sh), sends ping and a
# checksummed TCP transfer through the tunnel, prints the gateways' counters, then runs
# `bench --pps` on its own embedded topology.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BIN=target/release
LOG=${LOG:-/tmp/rampart-demo}
mkdir -p "$LOG"
export P=rp

cleanup() {
  for g in 1 2; do [ -f "$LOG/gw$g.pid" ] && kill "$(cat "$LOG/gw$g.pid")" 2>/dev/null || true; done
  sleep 1
  scripts/testbed.sh down
}
trap cleanup EXIT

scripts/testbed.sh up
for g in 1 2; do
  ip netns exec rpgw$g $BIN/rampart run --config configs/testbed/gw$g.json >"$LOG/gw$g.out" 2>"$LOG/gw$g.log" &
  echo $! >"$LOG/gw$g.pid"
done
# Wait for the tunnel (up to about two minutes); if it never carries a ping, say why.
up=0
for i in $(seq 1 100); do
  for g in 1 2; do
    kill -0 "$(cat "$LOG/gw$g.pid")" 2>/dev/null || { echo "demo: gateway $g exited:" >&2; cat "$LOG/gw$g.log" >&2; exit 1; }
  done
  ip netns exec rph1 ping -c1 -W1 10.2.0.1 >/dev/null 2>&1 && { up=1; break; }
  sleep 0.2
done
if [ $up = 0 ]; then
  echo "demo: no ping through the tunnel after $i tries; gateway logs and the hosts' neighbours:" >&2
  tail -n 20 "$LOG/gw1.log" "$LOG/gw2.log" >&2
  ip netns exec rph1 ip neigh >&2; ip netns exec rph2 ip neigh >&2
  exit 1
fi
echo "== ping 10.1.0.1 -> 10.2.0.1 through the tunnel"
ip netns exec rph1 ping -c 5 -i 0.2 10.2.0.1
echo "== ping fd01::1 -> fd02::1 (IPv6 inside IPv4 ESP)"
ip netns exec rph1 ping -6 -c 3 -i 0.2 fd02::1
echo "== 50 MB over TCP, sha256 checked at both ends"
python3 scripts/transfer.py --server-ns rph2 --client-ns rph1 --addr 10.2.0.1 --mb 50
for g in 1 2; do kill -USR1 "$(cat "$LOG/gw$g.pid")"; done
sleep 0.5
echo "== gateway counters"; cat "$LOG/gw1.out" "$LOG/gw2.out"
cleanup; trap - EXIT
echo "== bench --pps (embedded topology)"
$BIN/bench --pps
