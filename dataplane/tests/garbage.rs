//! Hostile input through the real worker: tens of thousands of random and mutated frames on
//! both ports (random bytes; valid Ethernet/IPv4/IPv6 headers over random payloads; ESP to
//! the gateway with a known SPI and random bits; truncations of valid frames). The worker
//! must not panic or stall, must account for every frame it received (each ends up sent,
//! served locally, handed up, or dropped with a reason), and must still forward a valid
//! packet afterwards.
//!
//! EAL starts once per process: this file holds one test.

mod common;
use common::*;
use rampart_dataplane::counters::DropReason;
use rampart_dataplane::spd::{Action, Direction, Policy, Selector, Spd};
use rampart_dataplane::tables::SpiMap;
use std::time::{Duration, Instant};

/// xorshift64*: reproducible noise without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn frame(r: &mut Rng) -> Vec<u8> {
    let len = 14 + (r.next() % 200) as usize;
    let mut f = r.bytes(len);
    match r.next() % 5 {
        0 => {}
        1 => f[12..14].copy_from_slice(&[0x08, 0x00]),
        2 => {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            if f.len() > 14 {
                f[14] = 0x60 | (f[14] & 0x0f);
            }
        }
        3 => {
            // IPv4 to the gateway, ESP (raw or in UDP 4500), a known SPI, the rest random.
            f.resize(f.len().max(60), 0);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            let total = (f.len() - 14) as u16;
            f[16..18].copy_from_slice(&total.to_be_bytes());
            f[20..22].copy_from_slice(&[0, 0]); // not a fragment
            f[26..30].copy_from_slice(&PEER.octets());
            f[30..34].copy_from_slice(&LOCAL.octets());
            if r.next().is_multiple_of(2) {
                f[23] = 50;
                f[34..38].copy_from_slice(&0x2002u32.to_be_bytes());
            } else {
                f[23] = 17;
                f[36..38].copy_from_slice(&4500u16.to_be_bytes());
                f[38..40].copy_from_slice(&(total - 20).to_be_bytes());
                f[42..46].copy_from_slice(&0x2002u32.to_be_bytes());
            }
        }
        _ => {
            let good = udp_frame([10, 2, 0, (r.next() % 250) as u8]);
            let cut = (r.next() as usize) % good.len();
            f = good[..cut.max(1)].to_vec();
        }
    }
    f
}

#[test]
fn random_frames_are_all_counted_and_the_worker_carries_on() {
    let mut bed = RingBed::open("garbage");
    let spd = Spd::new(vec![
        Policy { id: 0, priority: 100, dir: Direction::Outbound, sel: Selector::new(v4([10, 1, 0, 0], 16), v4([10, 2, 0, 0], 16)), action: Action::Protect },
        Policy { id: 1, priority: 100, dir: Direction::Inbound, sel: Selector::new(v4([10, 2, 0, 0], 16), v4([10, 1, 0, 0], 16)), action: Action::Protect },
    ])
    .unwrap();
    let mut sad_in = SpiMap::default();
    sad_in.insert(0x2002, sa(0x2002, 1024));
    let tables = bed.tables(1, spd, &sa(0x1001, 0), sad_in);
    bed.gw.start(tables).unwrap();
    let shared = bed.gw.shared[0].clone();
    let c = &shared.counters;

    let mut r = Rng(0x5eed_1234_abcd_ef01);
    let n = 40_000u64;
    for i in 0..n {
        let ring = if i % 2 == 0 { &bed.lan_rx } else { &bed.wan_rx };
        bed.put(ring, &frame(&mut r));
        if i % 256 == 0 {
            RingBed::drain(&bed.lan_tx);
            RingBed::drain(&bed.wan_tx);
            while ring_backlog(&bed) > 512 {
                std::thread::yield_now();
            }
        }
    }
    let t0 = Instant::now();
    while c.rx_packets.get() < n {
        assert!(t0.elapsed() < Duration::from_secs(20), "the worker stalled at {} of {n}", c.rx_packets.get());
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(100));
    RingBed::drain(&bed.lan_tx);
    RingBed::drain(&bed.wan_tx);
    let drops = c.drops.total();
    let handled = c.encrypted.get() + c.decrypted.get() + c.bypassed.get() + c.local.get() + c.exceptions.get() + drops;
    assert_eq!(c.rx_packets.get(), n);
    assert!(handled >= n, "only {handled} of {n} frames accounted for: {:?}", c.drops.nonzero());
    assert!(c.drops.get(DropReason::Malformed) > 0 && c.drops.get(DropReason::AuthFailed) > 0, "{:?}", c.drops.nonzero());
    // Nothing inbound was delivered: random ESP never authenticates.
    assert_eq!(c.decrypted.get(), 0);
    eprintln!("{n} frames: drops {:?}, local {}, exceptions {}", c.drops.nonzero(), c.local.get(), c.exceptions.get());

    // Still forwarding.
    let before = c.encrypted.get();
    bed.put(&bed.lan_rx, &udp_frame([10, 2, 0, 9]));
    let t0 = Instant::now();
    while c.encrypted.get() == before {
        assert!(t0.elapsed() < Duration::from_secs(5), "a valid packet after the garbage was not encrypted");
        std::thread::yield_now();
    }
    bed.gw.stop();
}

fn ring_backlog(bed: &RingBed) -> usize {
    bed.lan_rx.count() + bed.wan_rx.count()
}
