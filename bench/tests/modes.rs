//! `bench`'s two modes run end to end as an operator runs them: `--pps` on its embedded
//! topology (its ESP output is checked by Python `cryptography` before any figure), and
//! `--ike` with real IKEv2 exchanges over loopback between processes.

use std::process::Command;

fn run_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bench")).args(args).output().expect("bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench {args:?} failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON line in {stdout}"));
    serde_json::from_str(line).expect("one JSON object")
}

#[test]
fn pps_mode_moves_verified_frames() {
    let j = run_json(&["--pps", "--json", "--duration", "1"]);
    assert!(j["verified_frames"].as_u64().unwrap() > 0, "{j}");
    assert!(j["packets"].as_u64().unwrap() > 0, "{j}");
    assert!(j["mpps"].as_f64().unwrap() > 0.0, "{j}");
    assert!(j["engine"].as_str().is_some_and(|e| !e.is_empty()), "{j}");
}

/// A pcap bigger than the default pool: `net_pcap` with `infinite_rx` keeps every frame in
/// an mbuf, so the run needs `--mbufs`, and then replays the bench's own frames.
#[test]
fn pps_mode_replays_a_large_pcap_with_more_mbufs() {
    let pcap = std::env::temp_dir().join(format!("bench-40k-{}.pcap", std::process::id()));
    let pcap = pcap.to_str().unwrap();
    let flows = ["--flows", "40000", "--policies", "40000"];
    let out = Command::new(env!("CARGO_BIN_EXE_bench")).args(["--pps"]).args(flows).args(["--write-pcap", pcap]).output().expect("bench runs");
    assert!(out.status.success(), "{out:?}");
    let ports = [format!("net_pcap0,rx_pcap={pcap},infinite_rx=1"), "net_null1,no-rx=1".to_string()];
    let mut args = vec!["--pps", "--json", "--duration", "1", "--mbufs", "65535", "--ports", &ports[0], &ports[1]];
    args.extend(flows);
    let j = run_json(&args);
    let _ = std::fs::remove_file(pcap);
    assert!(j["packets"].as_u64().unwrap() > 40000, "{j}");
    // Sized to twice the flows, a few buckets still get more than four flows (the hash is
    // random): those flows push each other out, the rest hit. The figures are the difference
    // of two snapshots of a running worker, which counts a miss before the SPD lookup and its
    // eviction after it: the first snapshot can fall between the two, so one more eviction
    // than misses may show (CI saw 88,812 against 88,811).
    let fc = |k: &str| j["flow_cache"][k].as_u64().unwrap();
    assert!(fc("evictions") <= fc("misses") + 1 && fc("misses") * 20 < fc("hits"), "{j}");
}

/// A flow cache smaller than the flows pushes live flows out, and says so.
#[test]
fn pps_mode_counts_flow_cache_evictions() {
    let j = run_json(&["--pps", "--json", "--duration", "1", "--flows", "4096", "--policies", "64", "--flow-cache", "256"]);
    assert!(j["flow_cache"]["evictions"].as_u64().unwrap() > 0, "{j}");
    assert!(j["packets"].as_u64().unwrap() > 0, "{j}");
}

#[test]
fn ike_mode_establishes_every_sa() {
    let j = run_json(&["--ike", "-n", "200", "--json", "--port", "5611"]);
    assert_eq!(j["established"], 200, "{j}");
    assert_eq!(j["child_sas"], 200, "{j}");
    assert_eq!(j["initiator_failed"], 0, "{j}");
    assert!(j["heap_bytes_per_sa_steady"].as_f64().unwrap() > 0.0, "{j}");
}

#[test]
fn bad_arguments_are_refused_with_usage() {
    for args in [&["--pps", "--size", "nope"][..], &["--pps", "--sas", "0"], &["--pps", "--mbufs", "x"], &["--ike", "-n", "x"], &["--ike", "--bogus"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_bench")).args(args).output().expect("bench runs");
        assert_eq!(out.status.code(), Some(2), "bench {args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "bench {args:?} says why");
    }
}
