//! Two Rampart gateways negotiating with each other over IKEv2 in the namespace testbed
//! (configs/testbed/ike-gw{1,2}.json): gw1 has start action "trap", so the first packet
//! from its LAN brings the tunnel up; when gw2 dies without a word, gw1 finds out within two
//! liveness intervals; when gw2 comes back, gw1 (dpd_action "restart") brings the tunnel up
//! again by itself.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn config(g: usize) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(format!("configs/testbed/ike-gw{g}.json"))).unwrap()).unwrap()
}

#[test]
fn trap_liveness_and_restart() {
    if !is_root() {
        eprintln!("SKIPPED trap_liveness_and_restart: needs root for network namespaces");
        return;
    }
    let _one_bed = BED.lock();
    let mut bed = Bed::up("e2e-ike", vec![config(1), config(2)], [true, true]);
    assert!(bed.child_spis(1).is_empty(), "nothing is negotiated before traffic");
    // The first packets find no SA (dropped, counted), and ask for one.
    let _ = sh("ip netns exec rph1 ping -c 1 -W 1 10.2.0.1");
    bed.wait("the trapped tunnel", || !bed.child_spis(1).is_empty());
    assert!(bed.drops(1, "no_sa") >= 1);
    ok("ip netns exec rph1 ping -c 3 -i 0.2 10.2.0.1");
    ok("ip netns exec rph1 ping -6 -c 3 -i 0.2 fd02::1");
    ok("python3 scripts/transfer.py --server-ns rph2 --client-ns rph1 --addr 10.2.0.1 --mb 10");

    // gw2 dies; gw1 checks liveness every 5 s and gives a check 5 s to be answered.
    let t0 = Instant::now();
    bed.gws[1].kill().unwrap();
    let _ = bed.gws[1].wait();
    bed.wait("gw1 to declare gw2 dead", || bed.log(1).contains("reason=DeadPeer"));
    let dead = t0.elapsed();
    assert!(dead < Duration::from_secs(12), "dead peer found after {dead:?}");
    assert!(bed.child_spis(1).is_empty(), "the dead peer's CHILD_SAs are gone");

    // gw2 is back: gw1 restarts the tunnel by itself.
    bed.start(2);
    bed.wait("the tunnel to come back", || !bed.child_spis(1).is_empty() && !bed.child_spis(2).is_empty());
    ok("ip netns exec rph1 ping -c 3 -i 0.2 10.2.0.1");
    eprintln!("dead peer found {:.1} s after it was killed", dead.as_secs_f64());
}
