//! End to end in network namespaces (scripts/testbed.sh): two kernel hosts, two Rampart
//! gateways on DPDK net_af_packet ports, a WAN veth between them, manually keyed SAs.
//! Ping and a 50 MB checksummed TCP transfer cross the tunnel; tshark (an independent
//! dissector) sees only ESP between the gateways on the WAN; a replayed ESP frame and one
//! with a bad ICV are dropped and counted; DISCARD traffic never reaches the WAN.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn tunnel_end_to_end() {
    if !is_root() {
        eprintln!("SKIPPED tunnel_end_to_end: needs root for network namespaces");
        return;
    }
    let _one_bed = BED.lock();
    let bed = Bed::up("e2e", vec![testbed_config(1), testbed_config(2)], [true, true]);
    let t0 = Instant::now();
    while !sh("ip netns exec rph1 ping -c1 -W1 10.2.0.1").status.success() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the tunnel did not come up; see {}", bed.dir.display());
    }
    // gw1's traffic is captured on gw2's end of the WAN, and the reverse; the first 256
    // bytes of each frame, so that tcpdump keeps up with the transfer.
    let pcap = bed.dir.join("wan-to-gw2.pcap");
    let pcap_back = bed.dir.join("wan-to-gw1.pcap");
    let caps = [capture("rpgw2", "rpg2-wan", &pcap, 256), capture("rpgw1", "rpg1-wan", &pcap_back, 256)];
    ok("ip netns exec rph1 ping -c 5 -i 0.2 10.2.0.1");
    ok("ip netns exec rph2 ping -c 3 -i 0.2 10.1.0.1");
    ok("ip netns exec rph1 ping -6 -c 3 -i 0.2 fd02::1");
    // The far gateway's own LAN address, through the tunnel: its answer goes back in it.
    ok("ip netns exec rph1 ping -c 2 -i 0.2 10.2.0.254");
    println!("{}", ok("python3 scripts/transfer.py --server-ns rph2 --client-ns rph1 --addr 10.2.0.1 --mb 50"));
    // Small frames captured whole, newer than the transfer: one of them is replayed below.
    ok("ip netns exec rph1 ping -c 2 -i 0.2 10.2.0.1");
    caps.into_iter().for_each(stop);

    // The WAN, as an independent dissector reads it: ESP between the gateways, and ARP.
    let fields = ok(&format!("tshark -r {} -T fields -e frame.protocols -e ip.src -e ip.dst", pcap.display()))
        + &ok(&format!("tshark -r {} -T fields -e frame.protocols -e ip.src -e ip.dst", pcap_back.display()));
    let mut esp = 0;
    for line in fields.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f[0] == "eth:ethertype:arp" {
            continue;
        }
        assert_eq!(f[0], "eth:ethertype:ip:esp", "not ESP on the WAN: {line}");
        assert!(matches!((f[1], f[2]), ("192.0.2.1", "192.0.2.2") | ("192.0.2.2", "192.0.2.1")), "{line}");
        esp += 1;
    }
    assert!(esp > 30_000, "only {esp} ESP frames for 50 MB");

    // Replay a captured ESP frame from gw1 towards gw2: dropped and counted. The newest one,
    // so that it is inside the window: with ESN, a sequence number left of the window is
    // taken for the next 2^32 cycle (RFC 4303 A2) and fails the ICV instead.
    let frames = pcap_frames(&pcap);
    let from_gw1 = frames
        .iter()
        .rev()
        .find(|f| f.len() > 80 && f[12..14] == [8, 0] && f[23] == 50 && f[26..30] == [192, 0, 2, 1])
        .expect("an ESP frame from gw1")
        .clone();
    let replay0 = bed.drops(2, "replay");
    inject("rpgw1", "rpg1-wan", &from_gw1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(bed.drops(2, "replay"), replay0 + 1, "the replayed frame was not counted as a replay");

    // The same frame with a sequence number never seen and one ICV bit flipped: it passes the
    // replay check, fails authentication, and must not advance the window.
    let mut forged = from_gw1.clone();
    let seq_at = 14 + 20 + 4;
    let seq = u32::from_be_bytes(forged[seq_at..seq_at + 4].try_into().unwrap());
    forged[seq_at..seq_at + 4].copy_from_slice(&(seq + 100_000).to_be_bytes());
    *forged.last_mut().unwrap() ^= 1;
    let auth0 = bed.drops(2, "auth_failed");
    inject("rpgw1", "rpg1-wan", &forged);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(bed.drops(2, "auth_failed"), auth0 + 1, "the forged frame was not counted as an authentication failure");
    ok("ip netns exec rph1 ping -c 2 -i 0.2 10.2.0.1");

    // DISCARD: nothing for the blocked host reaches the WAN.
    let pcap2 = bed.dir.join("wan-discard.pcap");
    let cap = capture("rpgw2", "rpg2-wan", &pcap2, 256);
    let discard0 = bed.drops(1, "policy_discard");
    assert!(!sh("ip netns exec rph1 ping -c 3 -i 0.2 -W 1 10.2.0.99").status.success());
    stop(cap);
    assert_eq!(bed.drops(1, "policy_discard"), discard0 + 3);
    let n = ok(&format!("tshark -r {} -Y 'ip' -T fields -e ip.src | wc -l", pcap2.display()));
    assert_eq!(n.trim(), "0", "discarded traffic reached the WAN");
}
