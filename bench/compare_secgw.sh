#!/usr/bin/env bash
# DPDK ipsec-secgw against `bench --ports`, same harness, one worker lcore each, in one run:
#   encrypt: net_pcap (plain_N.pcap, infinite_rx) -> gateway -> net_null
#   decrypt: net_pcap (ESP of plain_N.pcap, infinite_rx) -> gateway -> net_null
# ipsec-secgw runs its fastest path (librte_ipsec `-l` with cpu-crypto on crypto_aesni_mb,
# the anchors' esp-cpu.cfg); it is built and its plaintext pcaps written by the anchors'
# prepare_secgw.sh (reused, not copied), its ESP input is its own output captured in a finite
# run, and its rate is read over telemetry with the anchors' ethdev_rate.py (median of NWIN
# windows of WIN s). Rampart's ESP input is written by `bench --write-pcap` from the same
# frame sizes. Prints both Mpps and the ratio, and the floor: what a gateway with no code of its
# own reaches on the same harness, measured by bench/probe/floor.c (receive, AES-GCM over each
# frame in place as Rampart's ESP calls it, transmit), with Rampart's fraction of it. Then, for
# encrypt, the ceiling that crypto plus I/O alone set on one core composed from two separate
# measurements: dpdk-testpmd io forwarding on the same vdevs (the anchors' harness-ceiling
# command, its rate read the same way) and intel-ipsec-mb's seal rate at the frame size
# (`aead-speed`), 1 / (1/io + 1/seal), and Rampart's fraction of it.
#
#   bench/compare_secgw.sh                       # sizes 64 512 1420, both directions
#   SIZES="64" DIRS="encrypt" WIN=1 NWIN=3 bench/compare_secgw.sh
#   MEM="-m 1024" bench/compare_secgw.sh         # hugepages (mounted and reserved first)
#   ROUNDS=5 bench/compare_secgw.sh              # each point five times, medians (ratio: of the rounds')
#   COUNT=instructions bench/compare_secgw.sh    # instructions a packet under callgrind, not rates
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
APP=/tmp/ipsec-secgw/build/ipsec-secgw
W=/tmp/secgw-run
SIZES="${SIZES:-64 512 1420}"
DIRS="${DIRS:-encrypt decrypt}"
WIN="${WIN:-2}"
NWIN="${NWIN:-5}"
DURATION="${DURATION:-10}"
read -r -a MEMARGS <<< "${MEM:---no-huge -m 1024}"
BENCH="${BENCH:-${CARGO_TARGET_DIR:-$ROOT/target}/release/bench}"
# Beside `bench`, or the workspace's when BENCH names a copy elsewhere (an A/B build).
AEAD_SPEED="$(dirname "$BENCH")/aead-speed"
[ -x "$AEAD_SPEED" ] || AEAD_SPEED="${CARGO_TARGET_DIR:-$ROOT/target}/release/aead-speed"
BENCH_MEM=(--no-huge); [[ "${MEM:-}" == *--no-huge* || -z "${MEM:-}" ]] || BENCH_MEM=(--hugepages)

if [ ! -d /usr/share/dpdk/examples/ipsec-secgw ]; then
  echo "ipsec-secgw's source comes with Debian's dpdk-doc: apt-get install dpdk-doc"; exit 1
fi
if [ ! -x "$APP" ] || [ ! -f "$W/plain_64.pcap" ]; then
  echo "== building ipsec-secgw (prepare_secgw.sh)"
  bash "$ANCHORS/prepare_secgw.sh" > /dev/null || { echo "prepare_secgw.sh failed"; exit 1; }
fi
if [ ! -x "$BENCH" ] || [ ! -x "$AEAD_SPEED" ]; then
  echo "== building bench"
  (cd "$ROOT" && cargo build --release -p rampart-bench --bin bench --bin aead-speed) || exit 1
fi
FLOOR=$W/floor
if [ ! -x "$FLOOR" ] || [ "$HERE/probe/floor.c" -nt "$FLOOR" ]; then
  gcc -O2 "$HERE/probe/floor.c" -o "$FLOOR" $(pkg-config --cflags --libs libdpdk) -lIPSec_MB || exit 1
fi
EAL=(-l 0,1 "${MEMARGS[@]}" --no-pci --file-prefix secgw --vdev crypto_aesni_mb0)
APPARGS=(-p 0x3 -P -u 0x2 --config "(0,0,1),(1,0,1)" -l -f "$ANCHORS/secgw/esp-cpu.cfg")

rate_of() { # rx tx log cmd... -> median tx Mpps of DPDK app `cmd` (file prefix secgw), over telemetry
  local rx=$1 tx=$2 log=$3 pid res; shift 3
  taskset -c 0,1 timeout -s INT 90 "$@" > "$log" 2>&1 < /dev/null &
  pid=$!
  res=$(taskset -c 0 python3 "$ANCHORS/ethdev_rate.py" secgw "$rx" "$tx" "$WIN" "$NWIN" 1 | tail -1)
  kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  echo "$res" | tr ' ' '\n' | awk -F= '$1=="tx_mpps"{print $2}'
}

secgw_cmd() { # dir size -> sets CMD (ipsec-secgw on the harness) and RX, TX (its input and output ports)
  local d=$1 s=$2 P=$W/plain_$2.pcap E=$W/esp_cpu_$2.pcap v0 v1
  if [ "$d" = encrypt ]; then
    v0="net_pcap0,rx_pcap=$P,rx_pcap=$P,infinite_rx=1"; v1="net_null1,no-rx=1"; RX=0; TX=1
  else
    if [ ! -s "$E" ]; then # its own ESP output, from a finite run
      timeout -s INT 6 taskset -c 0,1 "$APP" "${EAL[@]}" --vdev "net_pcap0,rx_pcap=$P,rx_pcap=$P" \
        --vdev "net_pcap1,tx_pcap=/dev/null,tx_pcap=$E" -- "${APPARGS[@]}" > "$W/compare_secgw_capture_$s.txt" 2>&1
    fi
    v0="net_null0,no-rx=1"; v1="net_pcap1,rx_pcap=$E,rx_pcap=$E,infinite_rx=1"; RX=1; TX=0
  fi
  CMD=("$APP" "${EAL[@]}" --vdev "$v0" --vdev "$v1" -- "${APPARGS[@]}")
}

bench_cmd() { # dir size duration -> sets CMD (`bench --ports` on the harness); fails if no ESP input
  local d=$1 s=$2 P=$W/plain_$2.pcap E=$W/rampart_esp_$2.pcap ports
  if [ "$d" = encrypt ]; then
    ports=("net_pcap0,rx_pcap=$P,infinite_rx=1" "net_null1,no-rx=1")
  else
    "$BENCH" --pps --direction decrypt --size "$s" --write-pcap "$E" "${BENCH_MEM[@]}" > "$W/compare_bench_pcap_$s.txt" 2>&1 || return
    ports=("net_null0,no-rx=1" "net_pcap1,rx_pcap=$E,infinite_rx=1")
  fi
  CMD=("$BENCH" --pps --json --direction "$d" --size "$s" --duration "$3" "${BENCH_MEM[@]}" --ports "${ports[@]}")
}

secgw_mpps() { # dir size -> median tx Mpps of the output port
  secgw_cmd "$1" "$2"
  rate_of "$RX" "$TX" "$W/compare_secgw_${1}_$2.txt" "${CMD[@]}"
}

bench_mpps() { # dir size -> Mpps and engine
  bench_cmd "$1" "$2" "$DURATION" || return
  "${CMD[@]}" 2> "$W/compare_bench_${1}_$2.txt" | tail -1 | python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.3f %s" % (j["mpps"], j["engine"].split(" (")[0]))'
}

floor_mpps() { # dir size -> median tx Mpps of bench/probe/floor.c on the harness, Rampart's input
  local F=(-l 0,1 "${MEMARGS[@]}" --no-pci --file-prefix secgw)
  if [ "$1" = encrypt ]; then
    rate_of 0 1 "$W/compare_floor_$1_$2.txt" "$FLOOR" "${F[@]}" --vdev "net_pcap0,rx_pcap=$W/plain_$2.pcap,infinite_rx=1" \
      --vdev "net_null1,no-rx=1" -- seal 0 1
  else
    rate_of 1 0 "$W/compare_floor_$1_$2.txt" "$FLOOR" "${F[@]}" --vdev "net_null0,no-rx=1" \
      --vdev "net_pcap1,rx_pcap=$W/rampart_esp_$2.pcap,infinite_rx=1" -- open 1 0
  fi
}

io_mpps() { # size -> median tx Mpps of testpmd io forwarding, pcap -> null
  rate_of 0 1 "$W/compare_testpmd_$1.txt" dpdk-testpmd -l 0,1 "${MEMARGS[@]}" --no-pci --file-prefix secgw \
    --vdev "net_pcap0,rx_pcap=$W/plain_$1.pcap,infinite_rx=1" --vdev "net_null1,no-rx=1" -- \
    --no-mlockall --total-num-mbufs=16384 --forward-mode=io --nb-cores=1 -a --stats-period=1000
}

if [ "${COUNT:-}" = instructions ]; then
  # Each gateway's worker under callgrind instead of timed: instructions a packet, which do not
  # move between runs as rates do on a shared machine. Valgrind has no AVX-512, so ipsec-mb runs
  # its AVX2 code here in both gateways (the same routine, so the aes-gcm column matches).
  command -v valgrind > /dev/null || { echo "COUNT=instructions needs valgrind (apt-get install valgrind)"; exit 1; }
  printf '%-8s %-6s %-12s %9s %8s %8s %8s %8s\n' direction size gateway packets total aes-gcm PMDs gateway
  for d in $DIRS; do
    for s in $SIZES; do
      secgw_cmd "$d" "$s"
      timeout -s INT "${CG_SECONDS:-60}" valgrind --tool=callgrind --callgrind-out-file="$W/cg_secgw_${d}_$s.out" \
        --toggle-collect=ipsec_poll_mode_worker "${CMD[@]}" > "$W/cg_secgw_${d}_$s.txt" 2>&1
      bench_cmd "$d" "$s" "${CG_DURATION:-3}" || { echo "$d $s: bench --write-pcap failed"; continue; }
      valgrind --tool=callgrind --callgrind-out-file="$W/cg_bench_${d}_$s.out" \
        --toggle-collect='*Worker::poll_once*' "${CMD[@]}" > "$W/cg_bench_${d}_$s.txt" 2>&1
      python3 "$HERE/instructions.py" "$d" "$s" ipsec-secgw="$W/cg_secgw_${d}_$s.out" rampart="$W/cg_bench_${d}_$s.out"
    done
  done
  exit 0
fi

# ROUNDS > 1: each point runs the two gateways one after the other ROUNDS times and prints the
# medians, the ratio being the median of the rounds' own ratios (each taken from two runs a
# few seconds apart, so the slow stretches of a shared machine hit it less than a single run).
ROUNDS="${ROUNDS:-1}"
median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print("%.3f" % statistics.median(v) if v else "")' "$@"; }
ratio() { python3 -c 'import sys; a,b=map(float,sys.argv[1:]); print(b/a if a>0 else 0)' "$@"; }
declare -A ENC
printf '%-8s %-6s %10s %12s %6s %10s %8s  %s\n' direction size "secgw Mpps" "rampart Mpps" ratio "floor Mpps" "of floor" "rampart engine"
for d in $DIRS; do
  for s in $SIZES; do
    A=(); B=(); F=(); R=(); Q=()
    for _ in $(seq "$ROUNDS"); do
      a=$(secgw_mpps "$d" "$s"); read -r b eng <<< "$(bench_mpps "$d" "$s")"; f=$(floor_mpps "$d" "$s")
      [ -n "$a" ] && A+=("$a"); [ -n "$b" ] && B+=("$b"); [ -n "$f" ] && F+=("$f")
      [ -n "$a" ] && [ -n "$b" ] && R+=("$(ratio "$a" "$b")")
      [ -n "$f" ] && [ -n "$b" ] && Q+=("$(ratio "$f" "$b")")
    done
    a=$(median "${A[@]}"); b=$(median "${B[@]}"); f=$(median "${F[@]}"); r=$(median "${R[@]}"); q=$(median "${Q[@]}")
    [ "$d" = encrypt ] && ENC[$s]=${b:-0}
    rounds=""; [ "$ROUNDS" -gt 1 ] && [ -n "$r" ] && rounds="  rounds:$(printf ' %.2f' "${R[@]}"), of floor:$(printf ' %.2f' "${Q[@]}")"
    [ -n "$r" ] && r=$(printf '%.2f' "$r") || r=n/a
    [ -n "$q" ] && q=$(printf '%.2f' "$q") || q=n/a
    printf '%-8s %-6s %10s %12s %6s %10s %8s  %s%s\n' "$d" "$s" "${a:-fail}" "${b:-fail}" "$r" "${f:-fail}" "$q" "${eng:-}" "$rounds"
  done
done

[[ " $DIRS " == *" encrypt "* ]] || exit 0
echo
printf '%-6s %10s %10s %13s %14s %9s\n' size "io Mpps" "seal Mops" "ceiling Mpps" "rampart Mpps" fraction
SEAL=$(taskset -c 1 "$AEAD_SPEED" --json --runs 5 2>/dev/null | python3 -c '
import json, sys
for l in sys.stdin:
    j = json.loads(l)
    if j["engine"] == "ipsec-mb":
        print(j["bytes"], j["seal_mops"])')
for s in $SIZES; do
  io=$(io_mpps "$s"); seal=$(echo "$SEAL" | awk -v s="$s" '$1==s{print $2}')
  python3 -c "
import sys
s, io, seal, b = sys.argv[1], float(sys.argv[2] or 0), float(sys.argv[3] or 0), float(sys.argv[4] or 0)
c = 1 / (1 / io + 1 / seal) if io > 0 and seal > 0 else 0
print('%-6s %10.2f %10.2f %13.2f %14.2f %9s' % (s, io, seal, c, b, '%.2f' % (b / c) if c > 0 else 'n/a'))" "$s" "${io:-0}" "${seal:-0}" "${ENC[$s]:-0}"
done
