#!/usr/bin/env bash
# compare_strongswan.sh - IKEv2 setup rate and memory per IKE_SA: rampart-control's engine
# (`bench --ike`) side by side with strongSwan's charon + load-tester
# (shared/anchors-ike/run_loadtest.sh, reused as is, never copied).
#
# Usage: bench/ike/compare_strongswan.sh [GROUP...]       (default: x25519 ecp256)
# Environment:
#   N [20000]          IKE_SAs per run (both sides; strongSwan needs a multiple of 10)
#   RUNS [3]           bench --ike runs per group (the median is reported)
#   ANCHORS [auto]     live:     re-measure strongSwan now with run_loadtest.sh `one`
#                                (as root; builds the load-tester plugin on first use, which needs
#                                 apt-get source, i.e. the network)
#                      recorded: print the anchors' recorded figures from
#                                shared/anchors-ike/results/runs.jsonl
#                      auto:     live if the plugin is already built in $LT_STATE_DIR, else recorded
#   IKE_LOAD_ARGS []   extra arguments for bench --ike (e.g. "--window 200")
#   CARGO_TARGET_DIR   where bench is built (release)
# Live strongSwan runs write their JSON to a scratch OUT directory, not to the anchors' results.
set -Eeuo pipefail
HERE="$(cd "$(dirname "$(readlink -f "$0")")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ANCH="$(cd "$ROOT/../shared/anchors-ike" 2>/dev/null && pwd || echo /work/shared/anchors-ike)"
N="${N:-20000}"
RUNS="${RUNS:-3}"
ANCHORS="${ANCHORS:-auto}"
GROUPS_="${*:-x25519 ecp256}"
LT_STATE="${LT_STATE_DIR:-/tmp/lt-anchors}"
SCRATCH="$(mktemp -d /tmp/ike-compare.XXXXXX)"

log() { printf '[compare] %s\n' "$*" >&2; }

(cd "$ROOT" && cargo build --release -q -p rampart-bench --bin bench) || { log "cargo build failed"; exit 1; }
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/bench"
[ -x "$BIN" ] || { log "no $BIN"; exit 1; }

if [ "$ANCHORS" = auto ]; then
    if [ -f "$LT_STATE/build/libstrongswan-load-tester.so" ] && [ "$(id -u)" = 0 ]; then ANCHORS=live; else ANCHORS=recorded; fi
fi
log "strongSwan figures: $ANCHORS"

for g in $GROUPS_; do
    for r in $(seq 1 "$RUNS"); do
        log "bench --ike $g run $r/$RUNS (N=$N)"
        # shellcheck disable=SC2086
        "$BIN" --ike -n "$N" --group "$g" --json ${IKE_LOAD_ARGS:-} >>"$SCRATCH/rampart.jsonl"
    done
    if [ "$ANCHORS" = live ]; then
        for r in $(seq 1 "$RUNS"); do
            log "strongSwan $g run $r/$RUNS (N=$N)"
            if ! OUT="$SCRATCH/sw" RUNS=1 "$ANCH/run_loadtest.sh" one "$g" "$N" >>"$SCRATCH/strongswan.jsonl"; then
                log "run_loadtest.sh failed; falling back to the recorded figures"
                ANCHORS=recorded
                break
            fi
        done
    fi
done
[ "$ANCHORS" = live ] && { "$ANCH/run_loadtest.sh" down >/dev/null 2>&1 || true; }

python3 - "$SCRATCH/rampart.jsonl" "$ANCH/results/runs.jsonl" "$SCRATCH/strongswan.jsonl" "$ANCHORS" "$N" "$GROUPS_" <<'PYEOF'
import json, statistics, sys, os
rp, recorded, live, mode, n, groups = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6].split()
ours = [json.loads(l) for l in open(rp) if l.strip()]
src = live if mode == "live" else recorded
sw = [json.loads(l) for l in open(src) if l.strip()] if os.path.exists(src) else []
med = lambda xs: statistics.median(xs) if xs else float("nan")
def sw_runs(g, nn):
    return [r for r in sw if r.get("status") == "ok" and r.get("group") == g and r.get("n") == nn
            and r.get("kernel", "fake") == "fake" and r.get("table_size", 65536) == 65536]
print()
print(f"IKEv2 setup, IKE_SA_INIT + IKE_AUTH with 1 CHILD_SA, PSK, aes128gcm16-prfsha256-<group>, N = {n}")
print(f"rampart: bench --ike (median of runs, this machine, now)")
label = "re-measured now with run_loadtest.sh" if mode == "live" else "RECORDED (shared/anchors-ike/results/runs.jsonl), not re-measured"
print(f"strongSwan 5.9.8 charon + load-tester: {label}")
print()
hdr = f"{'group':<9} {'metric':<40} {'rampart':>10} {'strongSwan':>11} {'ratio':>7}"
print(hdr); print("-" * len(hdr))
for g in groups:
    o = [r for r in ours if r["group"] == g]
    s = sw_runs(g, n)
    mem_note = ""
    if not s:
        s2 = [r for r in sw_runs(g, 10000)] or [r for r in sw_runs(g, 50000)]
        s, mem_note = s2, " (strongSwan N differs)"
    rows = [
        ("IKE_SA/s at responder (10-90 %)", med([r["ike_sa_per_s"] for r in o]), med([r["rate_steady"] for r in s]), True),
        ("responder CPU share", med([r["responder_cpu_share"] for r in o]) * 100, med([r["res_cpu_util"] for r in s]) * 100, None),
        ("responder CPU us per IKE_SA", med([r["responder_us_per_sa"] for r in o]), med([r["res_cpu_us_per_sa"] for r in s]), False),
        ("responder IKE_SA/s per full core", med([r["responder_sa_per_s_per_core"] for r in o]), med([1e6 / r["res_cpu_us_per_sa"] for r in s]), True),
        ("initiator CPU us per IKE_SA", med([r["initiator_us_per_sa"] for r in o]), med([r["ini_cpu_us_per_sa"] for r in s]), False),
        ("responder heap bytes per IKE_SA" + mem_note, med([r["heap_bytes_per_sa_at_n"] for r in o]), med([r["heap_bytes_per_sa"] for r in s]), False),
        ("responder VmRSS bytes per IKE_SA" + mem_note, med([r["rss_bytes_per_sa_at_n"] for r in o]), med([r["rss_bytes_per_sa"] for r in s]), False),
    ]
    for name, a, b, higher_better in rows:
        if higher_better is None:
            ratio = ""
        else:
            x = (a / b) if higher_better else (b / a) if a else float("nan")
            ratio = f"{x:6.1f}x"
        print(f"{g:<9} {name:<40} {a:>10.0f} {b:>11.0f} {ratio:>7}")
    steady = med([r["heap_bytes_per_sa_steady"] for r in o])
    print(f"{g:<9} {'rampart heap B/SA once response caches expire':<40} {steady:>10.0f}")
    print(f"{'':<9} runs: rampart " + ", ".join(f"{r['ike_sa_per_s']:.0f}" for r in o) +
          "; strongSwan " + ", ".join(f"{r['rate_steady']:.0f}" for r in s))
    print()
print("ratio: how many times better rampart is (rate: rampart/strongSwan; cost and memory: strongSwan/rampart).")
print("Both: responder on one core, initiator(s) on the other. Memory is the responder process's growth")
print("/ N right after the N-th SA (strongSwan: 3 s after; its heap figure is mallinfo2 in-use bytes, ours")
print("counts requested bytes in a counting allocator). The wall-clock rates depend on the initiator")
print("keeping up and on other load on the machine; the CPU-per-SA figures do not.")
PYEOF
log "raw JSON: $SCRATCH"
