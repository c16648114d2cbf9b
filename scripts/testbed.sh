#!/usr/bin/env bash
# The embedded two-gateway topology, in network namespaces on one machine:
#
#   ${P}h1 (10.1.0.1, fd01::1) ─ lan ─ ${P}gw1 ═══ wan ═══ ${P}gw2 ─ lan ─ ${P}h2 (10.2.0.1, fd02::1)
#                                  gw1: 10.1.0.254 / 192.0.2.1   gw2: 192.0.2.2 / 10.2.0.254
#
# The hosts are ordinary kernel stacks. The gateways' interfaces carry no kernel address: each
# Rampart gateway owns its two ports through DPDK's net_af_packet, run inside its namespace.
#   testbed.sh up | down
# P (default "rp") prefixes every namespace and interface name so that beds can coexist.
set -euo pipefail
P=${P:-rp}

down() {
  for ns in h1 gw1 gw2 h2; do
    ip netns pids "${P}$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "${P}$ns" 2>/dev/null || true
  done
}

# A veth pair with one end in each namespace; offloads off so that frames are whole and
# checksummed when a packet socket reads them.
link() { # ns1 if1 ns2 if2 mtu
  ip link add "$2" netns "${P}$1" mtu "$5" type veth peer name "$4" netns "${P}$3" mtu "$5"
  for e in "$1 $2" "$3 $4"; do
    set -- $e
    ip -n "${P}$1" link set "$2" up
    ip netns exec "${P}$1" ethtool -K "$2" tx off tso off gso off gro off rx off >/dev/null 2>&1 || true
  done
}

up() {
  down
  for ns in h1 gw1 gw2 h2; do
    ip netns add "${P}$ns"
    ip -n "${P}$ns" link set lo up
  done
  for ns in gw1 gw2; do
    # The gateway's kernel must stay out of the way of the DPDK ports.
    ip netns exec "${P}$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  link h1 "${P}h1-eth" gw1 "${P}g1-lan" 1500
  link gw1 "${P}g1-wan" gw2 "${P}g2-wan" 1600
  link gw2 "${P}g2-lan" h2 "${P}h2-eth" 1500
  ip -n "${P}h1" addr add 10.1.0.1/24 dev "${P}h1-eth"
  ip -n "${P}h1" addr add fd01::1/64 dev "${P}h1-eth" nodad
  ip -n "${P}h1" route add default via 10.1.0.254
  ip -n "${P}h1" -6 route add default via fd01::fe
  ip -n "${P}h2" addr add 10.2.0.1/24 dev "${P}h2-eth"
  ip -n "${P}h2" addr add fd02::1/64 dev "${P}h2-eth" nodad
  ip -n "${P}h2" route add default via 10.2.0.254
  ip -n "${P}h2" -6 route add default via fd02::fe
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
