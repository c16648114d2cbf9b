#!/usr/bin/env bash
# DPDK ipsec-secgw against `bench --ports`, same input, same sink, one worker each:
#   outbound: net_pcap (plain_N.pcap, infinite_rx) -> encrypt -> net_null
# ipsec-secgw is built and its pcaps written by the anchors' prepare_secgw.sh (reused, not
# copied); its rate is read over telemetry with the anchors' ethdev_rate.py, as run_secgw.sh
# does (its legacy lookaside path on crypto_aesni_mb). Prints both Mpps and the ratio.
#
#   bench/compare_secgw.sh            # sizes 64 512 1420
#   SIZES="64" WIN=1 NWIN=3 bench/compare_secgw.sh
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ANCHORS="${ANCHORS:-/work/shared/anchors}"
APP=/tmp/ipsec-secgw/build/ipsec-secgw
W=/tmp/secgw-run
SIZES="${SIZES:-64 512 1420}"
WIN="${WIN:-2}"
NWIN="${NWIN:-5}"
DURATION="${DURATION:-10}"
read -r -a MEMARGS <<< "${MEM:---no-huge -m 1024}"
BENCH="${BENCH:-${CARGO_TARGET_DIR:-$ROOT/target}/release/bench}"

if [ ! -x "$APP" ] || [ ! -f "$W/plain_64.pcap" ]; then
  echo "== building ipsec-secgw (prepare_secgw.sh)"
  bash "$ANCHORS/prepare_secgw.sh" || { echo "prepare_secgw.sh failed"; exit 1; }
fi
if [ ! -x "$BENCH" ]; then
  echo "== building bench"
  (cd "$ROOT" && cargo build --release -p rampart-bench --bin bench) || exit 1
fi

secgw_mpps() { # size -> median tx Mpps on port 1
  local s=$1 P=$W/plain_$1.pcap log=$W/compare_secgw_$1.txt pid res
  taskset -c 0,1 timeout -s INT 90 "$APP" -l 0,1 "${MEMARGS[@]}" --no-pci --file-prefix secgw \
    --vdev crypto_aesni_mb0 --vdev "net_pcap0,rx_pcap=$P,rx_pcap=$P,infinite_rx=1" --vdev "net_null1,no-rx=1" -- \
    -p 0x3 -P -u 0x2 --config "(0,0,1),(1,0,1)" -f "$ANCHORS/secgw/esp.cfg" > "$log" 2>&1 &
  pid=$!
  res=$(taskset -c 0 python3 "$ANCHORS/ethdev_rate.py" secgw 0 1 "$WIN" "$NWIN" 1 | tail -1)
  kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  echo "$res" | tr ' ' '\n' | awk -F= '$1=="tx_mpps"{print $2}'
}

bench_mpps() { # size -> Mpps
  local s=$1 P=$W/plain_$1.pcap
  "$BENCH" --pps --json --size "$s" --duration "$DURATION" \
    --ports "net_pcap0,rx_pcap=$P,infinite_rx=1" "net_null1,no-rx=1" 2> "$W/compare_bench_$s.txt" \
    | tail -1 | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["mpps"])'
}

printf '%-6s %14s %14s %8s\n' size "secgw Mpps" "rampart Mpps" ratio
for s in $SIZES; do
  a=$(secgw_mpps "$s"); b=$(bench_mpps "$s")
  r=$(python3 -c "import sys; a,b=sys.argv[1:]; print('%.2f' % (float(b)/float(a)) if a and b and float(a)>0 else 'n/a')" "${a:-0}" "${b:-0}")
  printf '%-6s %14s %14s %8s\n' "$s" "${a:-fail}" "${b:-fail}" "$r"
done
