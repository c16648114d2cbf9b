//! The flow cache never shadows a newer table: through the real Gateway and Worker on ring
//! ports, one flow is sent again after each table change and must get the new verdict:
//! PROTECT with SA A, then a newer SA B for the same policy (same SPD generation: the cache
//! keeps the policy, the SA comes from the current snapshot), then a higher-priority
//! DISCARD, then a higher-priority BYPASS, then the DISCARD and BYPASS gone again. Every
//! verdict, DISCARD and BYPASS included, is cached: the second packet of each step hits.
//! The worker's cache of routed destinations obeys the same rule: when the peer's MAC
//! changes, the next ESP frame goes to the new MAC.
//!
//! EAL starts once per process: this file holds one test.

mod common;
use common::*;
use dpdk_sys::{ArrayVec, Mbuf};
use rampart_dataplane::counters::DropReason;
use rampart_dataplane::spd::{Action, Direction, Policy, Selector, Spd};
use rampart_dataplane::tables::{SaEntry, SpiMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The SPD: PROTECT 10.1/16 -> 10.2/16, with `over` above it for 10.2.0.5.
fn spd(over: Option<Action>) -> Spd {
    let mut p = vec![Policy { id: 0, priority: 100, dir: Direction::Outbound, sel: Selector::new(v4([10, 1, 0, 0], 16), v4([10, 2, 0, 0], 16)), action: Action::Protect }];
    if let Some(a) = over {
        p.push(Policy { id: 1, priority: 10, dir: Direction::Outbound, sel: Selector::new(v4([10, 1, 0, 0], 16), v4([10, 2, 0, 5], 32)), action: a });
    }
    Spd::new(p).unwrap()
}

#[derive(Debug, PartialEq)]
enum Out {
    Esp(u32),
    Clear,
    Dropped(DropReason),
}

/// Sends the frame and says what became of it.
fn send(bed: &RingBed) -> Out {
    let c = &bed.gw.shared[0].counters;
    let drops0: Vec<u64> = DropReason::ALL.iter().map(|&r| c.drops.get(r)).collect();
    bed.put(&bed.lan_rx, &udp_frame([10, 2, 0, 5]));
    let t0 = Instant::now();
    let mut out = ArrayVec::<Mbuf, 1>::new();
    loop {
        if bed.wan_tx.dequeue_burst(&mut out) == 1 {
            let m = out.pop().unwrap();
            let d = m.data();
            assert_eq!(d[14 + 9], 50, "ESP on the WAN");
            return Out::Esp(u32::from_be_bytes(d[34..38].try_into().unwrap()));
        }
        // BYPASS traffic to 10.2.0.5 leaves by the LAN port here (a route), so clear and ESP
        // output are told apart by the ring they come out of.
        if bed.lan_tx.dequeue_burst(&mut out) == 1 {
            out.clear();
            return Out::Clear;
        }
        for (i, &r) in DropReason::ALL.iter().enumerate() {
            if c.drops.get(r) > drops0[i] {
                return Out::Dropped(r);
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "the packet went nowhere");
        std::thread::yield_now();
    }
}

#[test]
fn newer_tables_are_never_shadowed_by_the_flow_cache() {
    let mut bed = RingBed::open("shadow");
    let (a, b) = (sa(0x1001, 0), sa(0x2002, 0));
    let t = |bed: &RingBed, gen, over, out: &Arc<SaEntry>| bed.tables(gen, spd(over), out, SpiMap::default());
    let first = t(&bed, 1, None, &a);
    bed.gw.start(first).unwrap();
    let counters = bed.gw.shared[0].clone();
    let hits = || counters.counters.flow_hits.get();

    let steps: [(u64, Option<Action>, &Arc<SaEntry>, Out); 5] = [
        (1, None, &a, Out::Esp(0x1001)),
        // A newer SA for the same policy, the SPD unchanged: the cached policy now uses B.
        (1, None, &b, Out::Esp(0x2002)),
        (2, Some(Action::Discard), &b, Out::Dropped(DropReason::Discard)),
        (3, Some(Action::Bypass), &b, Out::Clear),
        (4, None, &a, Out::Esp(0x1001)),
    ];
    for (i, (gen, over, out, want)) in steps.into_iter().enumerate() {
        if i > 0 {
            let next = t(&bed, gen, over, out);
            bed.gw.publisher().publish(next);
            // The worker takes the new snapshot at its next loop; wait for that.
            let it = counters.counters.iterations.get();
            while counters.counters.iterations.get() < it + 2 {
                std::thread::yield_now();
            }
        }
        assert_eq!(send(&bed), want, "step {i}: first packet");
        let h = hits();
        assert_eq!(send(&bed), want, "step {i}: cached");
        assert_eq!(hits(), h + 1, "step {i}: the second packet hits the flow cache");
        bed.gw.publisher().reclaim();
    }

    // The peer moves to a new MAC (a new neighbour entry, published like any table change).
    let esp_dst_mac = |bed: &RingBed| {
        bed.put(&bed.lan_rx, &udp_frame([10, 2, 0, 5]));
        let t0 = Instant::now();
        let mut out = ArrayVec::<Mbuf, 1>::new();
        while bed.wan_tx.dequeue_burst(&mut out) == 0 {
            assert!(t0.elapsed() < Duration::from_secs(5), "no ESP frame");
            std::thread::yield_now();
        }
        let m = out.pop().unwrap();
        <[u8; 6]>::try_from(&m.data()[..6]).unwrap()
    };
    assert_eq!(esp_dst_mac(&bed), [2, 0, 0, 0, 0, 0xcc]);
    let mut moved = t(&bed, 4, None, &a);
    let mut n = (*moved.neighbors).clone();
    n.learn(1, std::net::IpAddr::V4(PEER), [2, 0, 0, 0, 0, 0xee]);
    moved.neighbors = Arc::new(n);
    bed.gw.publisher().publish(moved);
    let it = counters.counters.iterations.get();
    while counters.counters.iterations.get() < it + 2 {
        std::thread::yield_now();
    }
    assert_eq!(esp_dst_mac(&bed), [2, 0, 0, 0, 0, 0xee], "the new MAC, not a cached one");
    bed.gw.stop();
}
