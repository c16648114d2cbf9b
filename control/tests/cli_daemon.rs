//! `rampart ctl` against running gateways in the namespace testbed (needs root): listing SAs,
//! policies, counters and the version, human and JSON; errors exit non-zero and leave the
//! daemon serving; `initiate`, `rekey` and `terminate` on two Rampart gateways that run IKEv2
//! with each other; and `reload` (manual SAs and policies, peers added, changed and removed)
//! while traffic crosses an unchanged tunnel without loss.

mod common;
use common::*;
use serde_json::{json, Value};

fn skip(name: &str) -> bool {
    if !is_root() {
        eprintln!("SKIPPED {name}: needs root for network namespaces (run as root)");
        return true;
    }
    false
}

/// Packets through the named SA, from `counters --json`.
fn sa_packets(counters: &Value, sa: &str) -> u64 {
    counters["sas"].as_array().unwrap().iter().filter(|s| s["sa"] == sa).map(|s| s["packets"].as_u64().unwrap()).sum()
}

#[test]
fn cli_with_manual_sas() {
    if skip("cli_with_manual_sas") {
        return;
    }
    let _g = BED.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Bed::up("cli-manual", vec![testbed_config(1), testbed_config(2)], [true, true]);
    bed.wait("the tunnel", || sh("ip netns exec rph1 ping -c1 -W1 10.2.0.1").status.success());

    // list-sas: human and JSON.
    let text = bed.ctl_ok(1, &["list-sas"]);
    for want in ["manual_sas:", "tunnel-out", "tunnel-in", "0x00001001", "0x00002001"] {
        assert!(text.contains(want), "list-sas lacks {want}:\n{text}");
    }
    let v = bed.ctl_json(1, &["list-sas"]);
    let manual = v["manual_sas"].as_array().unwrap();
    assert!(manual.iter().any(|s| s["name"] == "tunnel-out" && s["spi"] == "0x00001001" && s["direction"] == "outbound"), "{v}");
    assert!(manual.iter().any(|s| s["name"] == "tunnel-in" && s["spi"] == "0x00002001" && s["direction"] == "inbound"), "{v}");

    // list-policies.
    let text = bed.ctl_ok(1, &["list-policies"]);
    for want in ["10.1.0.0/24", "10.2.0.0/24", "protect", "discard", "tunnel-out"] {
        assert!(text.contains(want), "list-policies lacks {want}:\n{text}");
    }
    let p = bed.ctl_json(1, &["list-policies"]);
    assert!(p.as_array().unwrap().iter().any(|r| r["dst"] == "10.2.0.99/32" && r["action"] == "discard"), "{p}");

    // counters go up with a ping.
    let c0 = bed.ctl_json(1, &["counters"]);
    ok("ip netns exec rph1 ping -c 5 -i 0.1 10.2.0.1");
    let c1 = bed.ctl_json(1, &["counters"]);
    assert!(sa_packets(&c1, "tunnel-out") >= sa_packets(&c0, "tunnel-out") + 5, "{c0}\n{c1}");
    assert!(sa_packets(&c1, "tunnel-in") >= sa_packets(&c0, "tunnel-in") + 5, "{c0}\n{c1}");
    let text = bed.ctl_ok(1, &["counters"]);
    assert!(text.contains("uptime_seconds") && text.contains("tunnel-out") && text.contains("lan"), "{text}");

    // version.
    assert!(bed.ctl_ok(1, &["version"]).contains("rampart"));
    let v = bed.ctl_json(1, &["version"]);
    assert_eq!(v["name"], "rampart");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

    // Errors: non-zero exit with a message; the daemon serves on.
    let o = bed.ctl(1, &["bogus"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bogus"), "{o:?}");
    let o = bed.ctl(1, &["initiate", "nosuch"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no peer named `nosuch`"), "{o:?}");
    let o = bed.ctl(1, &["terminate", "nosuch"]);
    assert!(!o.status.success());
    assert!(bed.ctl_ok(1, &["version"]).contains("rampart"));
    ok("ip netns exec rph1 ping -c 1 -W 2 10.2.0.1");

    // Reload with the manual SAs unchanged and one policy changed, under traffic: the SAs keep
    // their sequence numbers and replay windows (a fresh outbound SA would start again at 1
    // and the peer would drop it all as replays), so no packet is lost.
    let ping = ping_bg(&bed.dir, 1, "10.2.0.1", 60, "0.05");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&bed.configs[0]).unwrap()).unwrap();
    cfg["policies"][0]["dst"] = json!("10.2.0.98/32");
    std::fs::write(&bed.configs[0], serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let r = bed.ctl_json(1, &["reload"]);
    assert_eq!(r, json!({"added": [], "removed": [], "changed": [], "unchanged": []}));
    let (tx, rx) = ping_result(ping);
    assert_eq!((tx, rx), (60, 60), "packets lost across a reload; logs in {}", bed.dir.display());
    let p = bed.ctl_json(1, &["list-policies"]);
    assert!(p.as_array().unwrap().iter().any(|r| r["dst"] == "10.2.0.98/32" && r["action"] == "discard"), "{p}");
    let d0 = sa_packets(&bed.ctl_json(1, &["counters"]), "tunnel-out");
    assert!(!sh("ip netns exec rph1 ping -c 2 -i 0.2 -W 1 10.2.0.98").status.success());
    assert_eq!(sa_packets(&bed.ctl_json(1, &["counters"]), "tunnel-out"), d0, "discarded traffic went through the SA");
    assert!(bed.log(1).contains("config reloaded"));

    // A bad config is refused with the field named, and nothing changes.
    cfg["sas"][0]["key"] = json!("00");
    std::fs::write(&bed.configs[0], serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let o = bed.ctl(1, &["reload"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("sas[0].key"), "{o:?}");
    ok("ip netns exec rph1 ping -c 3 -i 0.1 -W 1 10.2.0.1");
}

#[test]
fn cli_with_ike_peers() {
    if skip("cli_with_ike_peers") {
        return;
    }
    let _g = BED.lock().unwrap_or_else(|e| e.into_inner());
    let mut c1 = ike_config(1, "start");
    c1["peers"].as_array_mut().unwrap().extend([dummy_peer("dummy-a", 1), dummy_peer("dummy-b", 2)]);
    let bed = Bed::up("cli-ike", vec![c1.clone(), ike_config(2, "none")], [false, false]);
    let mut bed = bed;
    bed.start(2);
    bed.start(1);

    // Up: ping works, both sides list the child.
    bed.wait("the IKE tunnel", || sh("ip netns exec rph1 ping -c1 -W1 10.2.0.1").status.success());
    let v = bed.ctl_json(1, &["list-sas"]);
    assert_eq!(v["ike_sas"].as_array().unwrap().len(), 1, "{v}");
    let child = &v["child_sas"][0];
    assert_eq!((child["peer"].as_str(), child["child"].as_str()), (Some("gw2"), Some("net")), "{v}");
    // Lifetimes: the defaults rekey within the hour and expire after that.
    let (rekey, expires) = (child["rekey_in_s"].as_u64().unwrap(), child["expires_in_s"].as_u64().unwrap());
    assert!(rekey > 0 && rekey <= expires && expires <= 3600 + 600, "{v}");
    let text = bed.ctl_ok(1, &["list-sas"]);
    assert!(text.contains("child_sas:") && text.contains("gw2") && text.contains(child["spi_in"].as_str().unwrap()), "{text}");
    assert_eq!(bed.child_spis(2).len(), 1);

    // Rekeys under traffic, each side initiating in turn: the SPIs change, no packet is lost
    // (the responder keeps sending on the old SA until the initiator deletes it).
    let before = bed.child_spis(1);
    let ping = ping_bg(&bed.dir, 1, "10.2.0.1", 500, "0.01");
    for g in [1, 2, 1, 2] {
        std::thread::sleep(std::time::Duration::from_millis(600));
        let was = bed.child_spis(g);
        let r = bed.ctl_json(g, &["rekey", &format!("gw{}", 3 - g), "--child", "net"]);
        assert_eq!(r["child_rekeys"].as_array().unwrap().len(), 1, "{r}");
        bed.wait("the rekeyed child", || {
            let now = bed.child_spis(g);
            now.len() == 1 && now != was
        });
    }
    let (tx, rx) = ping_result(ping);
    assert_eq!((tx, rx), (500, 500), "packets lost across rekeys; logs in {}", bed.dir.display());
    let after = bed.child_spis(1);
    assert_ne!(after, before);
    assert!(bed.ctl(1, &["rekey", "gw2", "--child", "nosuch"]).status.code() != Some(0));

    // Reload gw1 with one dummy peer changed, one removed, one added, under traffic through
    // the unchanged tunnel: nothing lost, the tunnel's SAs untouched.
    let ping = ping_bg(&bed.dir, 1, "10.2.0.1", 60, "0.05");
    std::thread::sleep(std::time::Duration::from_millis(800));
    let mut c1b = c1.clone();
    let mut a = dummy_peer("dummy-a", 1);
    a["remote_id"] = json!("dummy-a-changed.rampart.test");
    c1b["peers"] = json!([ike_peer(1, "start"), a, dummy_peer("dummy-c", 3)]);
    c1b["control"] = json!({"socket": bed.sockets[0]});
    // First a bad one: refused, field named, nothing changed.
    let mut bad = c1b.clone();
    bad["peers"][1]["auth"]["psk"] = json!("short");
    std::fs::write(&bed.configs[0], serde_json::to_string_pretty(&bad).unwrap()).unwrap();
    let o = bed.ctl(1, &["reload"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("peers[1].auth.psk"), "{o:?}");
    std::fs::write(&bed.configs[0], serde_json::to_string_pretty(&c1b).unwrap()).unwrap();
    let r = bed.ctl_json(1, &["reload"]);
    assert_eq!(r, json!({"added": ["dummy-c"], "removed": ["dummy-b"], "changed": ["dummy-a"], "unchanged": ["gw2"]}));
    let (tx, rx) = ping_result(ping);
    assert_eq!((tx, rx), (60, 60), "packets lost on the unchanged tunnel across a reload; logs in {}", bed.dir.display());
    assert_eq!(bed.child_spis(1), after, "the unchanged peer's CHILD_SA was replaced");
    let log = bed.log(1);
    assert!(log.contains("config reloaded") && log.contains("dummy-c") && log.contains("reload refused"), "{log}");
    assert!(bed.ctl(1, &["initiate", "dummy-b"]).status.code() != Some(0), "a removed peer is still known");
    assert!(bed.ctl_json(1, &["initiate", "dummy-c"])["initiating"] == true);

    // Terminate: no child, traffic stops; initiate: back.
    bed.ctl_ok(1, &["terminate", "gw2"]);
    bed.wait("the child to go", || bed.child_spis(1).is_empty() && bed.child_spis(2).is_empty());
    assert!(!sh("ip netns exec rph1 ping -c 2 -i 0.2 -W 1 10.2.0.1").status.success(), "traffic crossed with no SA");
    let r = bed.ctl_json(1, &["initiate", "gw2"]);
    assert_eq!(r["initiating"], true);
    bed.wait("the tunnel again", || sh("ip netns exec rph1 ping -c1 -W1 10.2.0.1").status.success());
    assert_eq!(bed.child_spis(1).len(), 1);
    assert!(bed.ctl_ok(1, &["version"]).contains("rampart"));
}
