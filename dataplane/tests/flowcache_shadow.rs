//! The flow cache never shadows a newer table: through the real Gateway and Worker on ring
//! ports, one flow is sent again after each table change and must get the new verdict:
//! PROTECT with SA A, then a newer SA B for the same policy (same SPD generation: the cache
//! keeps the policy, the SA comes from the current snapshot), then a higher-priority
//! DISCARD, then a higher-priority BYPASS, then the DISCARD and BYPASS gone again. Every
//! verdict, DISCARD and BYPASS included, is cached: the second packet of each step hits.
//!
//! EAL starts once per process: this file holds one test.

use dpdk_sys::{Mbuf, Ring};
use rampart_dataplane::counters::{DropReason, SaDrops};
use rampart_dataplane::crypto::AeadAlg;
use rampart_dataplane::esp::{Lifetime, Mode, Sa, SaParams};
use rampart_dataplane::gateway::{Gateway, GatewaySpec};
use rampart_dataplane::l3::{LocalAddr, Locals, Neighbors, Routes};
use rampart_dataplane::spd::{Action, Direction, Policy, Prefix, Selector, Spd};
use rampart_dataplane::tables::{SaEntry, SpiMap, Tables};
use rampart_dataplane::worker::WorkerShared;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn sa(spi: u32) -> Arc<SaEntry> {
    let p = SaParams {
        spi,
        alg: AeadAlg::AesGcm128,
        key: vec![spi as u8; 20],
        mode: Mode::Tunnel,
        tunnel: Some((IpAddr::V4(LOCAL), IpAddr::V4(PEER))),
        encap: None,
        esn: false,
        replay_window: 0,
        lifetime: Lifetime::default(),
    };
    Arc::new(SaEntry { name: format!("sa{spi:x}"), sa: Sa::new(p).unwrap(), selectors: vec![], drops: SaDrops::new(1) })
}

fn v4(a: [u8; 4], l: u8) -> Prefix {
    Prefix::new(IpAddr::from(a), l)
}

/// The SPD: PROTECT 10.1/16 -> 10.2/16, with `over` above it for 10.2.0.5.
fn spd(over: Option<Action>) -> Spd {
    let mut p = vec![Policy { id: 0, priority: 100, dir: Direction::Outbound, sel: Selector::new(v4([10, 1, 0, 0], 16), v4([10, 2, 0, 0], 16)), action: Action::Protect }];
    if let Some(a) = over {
        p.push(Policy { id: 1, priority: 10, dir: Direction::Outbound, sel: Selector::new(v4([10, 1, 0, 0], 16), v4([10, 2, 0, 5], 32)), action: a });
    }
    Spd::new(p).unwrap()
}

/// Eth/IPv4/UDP 10.1.0.1 -> 10.2.0.5.
fn frame() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 2, 0, 5]);
    let mut s: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    s = (s & 0xffff) + (s >> 16);
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&1024u16.to_be_bytes());
    f[36..38].copy_from_slice(&5001u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

#[derive(Debug, PartialEq)]
enum Out {
    Esp(u32),
    Clear,
    Dropped(DropReason),
}

struct Bed {
    pool: dpdk_sys::Mempool,
    lan_rx: Ring,
    lan_tx: Ring,
    wan_tx: Ring,
    shared: Arc<WorkerShared>,
}

impl Bed {
    /// Sends the frame and says what became of it.
    fn send(&self) -> Out {
        let c = &self.shared.counters;
        let drops0: Vec<u64> = DropReason::ALL.iter().map(|&r| c.drops.get(r)).collect();
        let mut m = self.pool.alloc().unwrap();
        let f = frame();
        m.append(f.len() as u16).unwrap().copy_from_slice(&f);
        assert_eq!(self.lan_rx.enqueue_burst(&mut [Some(m)]), 1);
        let t0 = Instant::now();
        let mut out: [Option<Mbuf>; 1] = [None];
        loop {
            if self.wan_tx.dequeue_burst(&mut out) == 1 {
                let m = out[0].take().unwrap();
                let d = m.data();
                assert_eq!(d[14 + 9], 50, "ESP on the WAN");
                return Out::Esp(u32::from_be_bytes(d[34..38].try_into().unwrap()));
            }
            if self.lan_tx.dequeue_burst(&mut out) == 1 {
                out[0].take();
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
}

#[test]
fn newer_tables_are_never_shadowed_by_the_flow_cache() {
    let core = core_affinity::get_core_ids().unwrap_or_default().last().map_or(0, |c| c.id);
    let spec = GatewaySpec {
        eal_args: ["--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry", "-l", "0"]
            .iter()
            .map(|s| s.to_string())
            .chain(["--file-prefix".to_string(), format!("shadow-{}", std::process::id())])
            .collect(),
        ports: vec![],
        cores: vec![core],
        mbufs: 1023,
        idle_sleep: Duration::ZERO,
    };
    let mut gw = Gateway::open(spec).unwrap();
    let rings: Vec<Ring> = ["sh_lan_rx", "sh_lan_tx", "sh_wan_rx", "sh_wan_tx"].iter().map(|n| Ring::new(n, 1024).unwrap()).collect();
    // BYPASS traffic to 10.2.0.5 leaves by the LAN port here (a route), so clear and ESP
    // output are told apart by the ring they come out of.
    gw.attach(dpdk_sys::Port::from_rings("sh_lan", &[&rings[0]], &[&rings[1]]).unwrap()).unwrap();
    gw.attach(dpdk_sys::Port::from_rings("sh_wan", &[&rings[2]], &[&rings[3]]).unwrap()).unwrap();
    let locals = vec![
        LocalAddr { port: 0, addr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 254)), prefix_len: 16 },
        LocalAddr { port: 1, addr: IpAddr::V4(LOCAL), prefix_len: 24 },
    ];
    let statics = vec![rampart_dataplane::l3::Route { dst: v4([10, 2, 0, 0], 16), via: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 253))), port: 0 }];
    let routes = Arc::new(Routes::new(&locals, statics));
    let mut n = Neighbors::default();
    n.learn(1, IpAddr::V4(PEER), [2, 0, 0, 0, 0, 0xcc]);
    n.learn(0, IpAddr::V4(Ipv4Addr::new(10, 1, 0, 253)), [2, 0, 0, 0, 0, 0xdd]);
    let (a, b) = (sa(0x1001), sa(0x2002));
    let tables = |gen: u64, over: Option<Action>, out: &Arc<SaEntry>| {
        let spd = spd(over);
        let out_sa = spd.policies().iter().map(|p| (p.action == Action::Protect).then(|| out.clone())).collect();
        Tables {
            spd_gen: gen,
            spd: Arc::new(spd),
            default_action: Action::Discard,
            out_sa,
            sad_in: SpiMap::default(),
            routes: routes.clone(),
            neighbors: Arc::new(n.clone()),
            locals: Arc::new(Locals::new(locals.clone())),
            macs: Arc::new(vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]]),
        }
    };
    gw.start(tables(1, None, &a)).unwrap();
    let mut rings = rings.into_iter();
    let (lan_rx, lan_tx, _wan_rx, wan_tx) = (rings.next().unwrap(), rings.next().unwrap(), rings.next().unwrap(), rings.next().unwrap());
    let bed = Bed { pool: gw.pool, lan_rx, lan_tx, wan_tx, shared: gw.shared[0].clone() };
    let hits = || bed.shared.counters.flow_hits.get();

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
            gw.publisher().publish(tables(gen, over, out));
            // The worker takes the new snapshot at its next loop; wait for that.
            let it = bed.shared.counters.iterations.get();
            while bed.shared.counters.iterations.get() < it + 2 {
                std::thread::yield_now();
            }
        }
        assert_eq!(bed.send(), want, "step {i}: first packet");
        let h = hits();
        assert_eq!(bed.send(), want, "step {i}: cached");
        assert_eq!(hits(), h + 1, "step {i}: the second packet hits the flow cache");
        gw.publisher().reclaim();
    }
    gw.stop();
}
