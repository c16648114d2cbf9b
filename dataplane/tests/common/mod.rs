//! A gateway on two DPDK ring ports (LAN, WAN) with one worker, for tests that drive the
//! real worker: frames go in on a port's RX ring and come out of the TX rings.
#![allow(dead_code)]

use dpdk_sys::{ArrayVec, Mbuf, Ring};
use rampart_dataplane::counters::SaDrops;
use rampart_dataplane::crypto::AeadAlg;
use rampart_dataplane::esp::{Lifetime, Mode, Sa, SaParams};
use rampart_dataplane::gateway::{Gateway, GatewaySpec};
use rampart_dataplane::l3::{LocalAddr, Locals, Neighbors, Route, Routes};
use rampart_dataplane::spd::{Action, Prefix, Spd};
use rampart_dataplane::tables::{SaEntry, SpiMap, Tables};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

pub const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const LAN_NEXT_HOP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 253);

pub fn v4(a: [u8; 4], l: u8) -> Prefix {
    Prefix::new(IpAddr::from(a), l)
}

/// AES-128-GCM tunnel parameters between LOCAL and PEER.
pub fn params(spi: u32, key: &[u8], replay_window: u32) -> SaParams {
    SaParams {
        spi,
        alg: AeadAlg::AesGcm128,
        key: key.to_vec(),
        mode: Mode::Tunnel,
        tunnel: Some((IpAddr::V4(LOCAL), IpAddr::V4(PEER))),
        encap: None,
        esn: false,
        replay_window,
        lifetime: Lifetime::default(),
    }
}

/// An AES-128-GCM tunnel SA between LOCAL and PEER, its key derived from the SPI.
pub fn sa(spi: u32, replay_window: u32) -> Arc<SaEntry> {
    let p = params(spi, &[spi as u8; 20], replay_window);
    Arc::new(SaEntry { name: format!("sa{spi:x}"), sa: Sa::new(p).unwrap(), selectors: Default::default(), drops: SaDrops::new(1) })
}

pub struct RingBed {
    pub gw: Gateway,
    pub lan_rx: Ring,
    pub lan_tx: Ring,
    pub wan_rx: Ring,
    pub wan_tx: Ring,
}

impl RingBed {
    /// EAL, the two ring ports, one worker on the last core (not yet started).
    pub fn open(tag: &str) -> RingBed {
        let core = core_affinity::get_core_ids().unwrap_or_default().last().map_or(0, |c| c.id);
        let spec = GatewaySpec {
            eal_args: ["--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry", "-l", "0"]
                .iter()
                .map(|s| s.to_string())
                .chain(["--file-prefix".to_string(), format!("{tag}-{}", std::process::id())])
                .collect(),
            ports: vec![],
            cores: vec![core],
            mbufs: 4095,
            idle_sleep: Duration::ZERO,
            flow_cache: 4096,
        };
        let mut gw = Gateway::open(spec).unwrap();
        let ring = |n: &str| Ring::new(&format!("{tag}_{n}"), 1024).unwrap();
        let (lan_rx, lan_tx, wan_rx, wan_tx) = (ring("lan_rx"), ring("lan_tx"), ring("wan_rx"), ring("wan_tx"));
        gw.attach(dpdk_sys::Port::from_rings(&format!("{tag}_lan"), &[&lan_rx], &[&lan_tx]).unwrap()).unwrap();
        gw.attach(dpdk_sys::Port::from_rings(&format!("{tag}_wan"), &[&wan_rx], &[&wan_tx]).unwrap()).unwrap();
        RingBed { gw, lan_rx, lan_tx, wan_rx, wan_tx }
    }

    /// Tables for the bed: LAN 10.1/16 (10.2/16 routed via LAN_NEXT_HOP), WAN LOCAL/24, both
    /// neighbours known; `spd` with `out` as the SA of each PROTECT policy.
    pub fn tables(&self, spd_gen: u64, spd: Spd, out: &Arc<SaEntry>, sad_in: SpiMap<Arc<SaEntry>>) -> Tables {
        let locals = vec![
            LocalAddr { port: 0, addr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 254)), prefix_len: 16 },
            LocalAddr { port: 1, addr: IpAddr::V4(LOCAL), prefix_len: 24 },
        ];
        let statics = vec![Route { dst: v4([10, 2, 0, 0], 16), via: Some(IpAddr::V4(LAN_NEXT_HOP)), port: 0 }];
        let mut n = Neighbors::default();
        n.learn(1, IpAddr::V4(PEER), [2, 0, 0, 0, 0, 0xcc]);
        n.learn(0, IpAddr::V4(LAN_NEXT_HOP), [2, 0, 0, 0, 0, 0xdd]);
        let out_sa = spd.policies().iter().map(|p| (p.action == Action::Protect).then(|| out.clone())).collect();
        Tables {
            spd_gen,
            spd: Arc::new(spd),
            default_action: Action::Discard,
            out_sa,
            sad_in,
            routes: Arc::new(Routes::new(&locals, statics)),
            neighbors: Arc::new(n),
            locals: Arc::new(Locals::new(locals)),
            macs: Arc::new(vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]]),
        }
    }

    /// Puts a frame on a port's RX ring.
    pub fn put(&self, ring: &Ring, frame: &[u8]) {
        let mut m = self.gw.pool.alloc().expect("mbuf");
        m.append(frame.len() as u16).expect("room").copy_from_slice(frame);
        assert_eq!(ring.enqueue_burst(&mut ArrayVec::<Mbuf, 1>::from([m])), 1, "ring full");
    }

    /// Takes what a TX ring holds; returns how many frames there were.
    pub fn drain(ring: &Ring) -> usize {
        let mut out = ArrayVec::<Mbuf, 32>::new();
        let mut n = 0;
        loop {
            let k = ring.dequeue_burst(&mut out);
            out.clear();
            n += k;
            if k == 0 {
                return n;
            }
        }
    }
}

/// Eth/IPv4/UDP 10.1.0.1 -> `dst`, 60 bytes.
pub fn udp_frame(dst: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 0, 1]);
    ip[16..20].copy_from_slice(&dst);
    let mut s: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    s = (s & 0xffff) + (s >> 16);
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&1024u16.to_be_bytes());
    f[36..38].copy_from_slice(&5001u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}
