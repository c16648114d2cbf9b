//! Hitless table updates under load: the real Gateway and Worker forward a steady stream
//! between two net_ring ports while this thread publishes a new `Tables` thousands of times a
//! second (a fresh outbound `Sa` object each time, alternating between two SPIs, and now and
//! then a rebuilt SPD with a new generation), reclaiming old snapshots as it goes.
//!
//! Checked: every packet sent comes out (no drop of any reason); each output decrypts with
//! the receiver's SA for the SPI it carries and gives back exactly the packet that went in;
//! each `Sa` object's sequence numbers (objects start at disjoint, known offsets) come out
//! contiguous and in order; and no packet sealed by an `Sa` object leaves the worker after
//! that object was freed (the control thread watches each retired entry through a `Weak`
//! and notes the worker's TX count when the entry is gone).
//!
//! EAL starts once per process: this file holds one test.

use dpdk_sys::{ArrayVec, Mbuf};
use rampart_dataplane::counters::SaDrops;
use rampart_dataplane::crypto;
use rampart_dataplane::esp::Sa;
use rampart_dataplane::spd::{Action, Direction, Policy, Prefix, Selector, Spd};
use rampart_dataplane::tables::{SaEntry, SpiMap, Tables};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

const SPI_A: u32 = 0x0000_1001;
const SPI_B: u32 = 0x0000_2002;
const KEY_A: [u8; 20] = [0x11; 20];
const KEY_B: [u8; 20] = [0x22; 20];
/// Sa object k starts sending at sequence number (k << SEQ_SHIFT) + 1.
const SEQ_SHIFT: u32 = 16;
/// Packets in flight at most (generator to sink): far below every ring and queue size, so
/// a drop can only come from the dataplane.
const WINDOW: u64 = 512;
const FLOWS: u64 = 64;
const RUN: Duration = Duration::from_secs(3);

/// The outbound SA object number `k`: SPI A for even k, B for odd, sequence numbers from its own range.
fn out_sa(k: u64) -> Arc<SaEntry> {
    let (spi, key) = if k.is_multiple_of(2) { (SPI_A, &KEY_A) } else { (SPI_B, &KEY_B) };
    let sa = Sa::new(params(spi, key, 0)).expect("sa");
    sa.advance_seq((k << SEQ_SHIFT) + 1).expect("seq");
    Arc::new(SaEntry { name: format!("out{k}"), sa, selectors: Default::default(), drops: SaDrops::new(1) })
}

fn spd() -> Spd {
    let v4 = |a: [u8; 4], l| Prefix::new(IpAddr::from(a), l);
    Spd::new(vec![Policy {
        id: 0,
        priority: 100,
        dir: Direction::Outbound,
        sel: Selector::new(v4([10, 1, 0, 0], 16), v4([10, 2, 0, 0], 16)),
        action: Action::Protect,
    }])
    .expect("spd")
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Eth/IPv4/UDP from 10.1.0.x to 10.2.0.y, 100 bytes, the packet number in the payload.
fn frame(id: u64) -> Vec<u8> {
    let flow = id % FLOWS;
    let mut f = vec![0u8; 100];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xbb]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&86u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 0, 1 + flow as u8]);
    ip[16..20].copy_from_slice(&[10, 2, 0, 1 + (flow * 7 % 200) as u8]);
    let c = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&(1024 + flow as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&5001u16.to_be_bytes());
    udp[4..6].copy_from_slice(&66u16.to_be_bytes());
    f[42..50].copy_from_slice(&id.to_be_bytes());
    f
}

/// What the sink saw, for the final checks.
#[derive(Default)]
struct SinkLog {
    /// Per Sa object k: (packets, last sequence number, arrival index of its last packet).
    per_object: Vec<(u64, u64, u64)>,
    errors: Vec<String>,
}

mod common;
use common::{params, RingBed};

#[test]
fn table_swaps_under_load_lose_nothing() {
    // As `rampart run` does by default: ipsec-mb where it is usable, so the worker seals on
    // its thread while this one opens, both through the one shared intel-ipsec-mb manager.
    let engine = crypto::select_engine(crypto::Engine::Auto).unwrap();
    eprintln!("hitless: crypto engine {engine}");
    let mut bed = RingBed::open("hitless");
    let mut next_k = 0u64;
    let mut weaks: Vec<Weak<SaEntry>> = Vec::new();
    let first = out_sa(next_k);
    weaks.push(Arc::downgrade(&first));
    next_k += 1;
    let tables = bed.tables(1, spd(), &first, SpiMap::default());
    drop(first); // the tables hold it now, and its Weak must see it go
    let (lan_rx, wan_tx) = (bed.lan_rx, bed.wan_tx);
    let gw = &mut bed.gw;
    gw.start(tables).expect("start");
    let counters = gw.shared[0].clone();

    // Generator and sink in one thread (the test has two cores; the worker has the other).
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    // For each Sa object k: the worker's TX count seen once the object was freed.
    let freed_at: Arc<Mutex<Vec<Option<u64>>>> = Arc::new(Mutex::new(vec![None]));
    let pool = gw.pool;
    let traffic = {
        let (stop, sent, received, freed_at) = (stop.clone(), sent.clone(), received.clone(), freed_at.clone());
        std::thread::spawn(move || {
            let _lcore = dpdk_sys::register_thread();
            let rx_a = Sa::new(params(SPI_A, &KEY_A, 1024)).unwrap();
            let rx_b = Sa::new(params(SPI_B, &KEY_B, 1024)).unwrap();
            let mut log = SinkLog::default();
            let (mut n_sent, mut n_recv) = (0u64, 0u64);
            let mut out = ArrayVec::<Mbuf, 32>::new();
            loop {
                let stopping = stop.load(Ordering::Relaxed);
                if !stopping && n_sent - n_recv < WINDOW {
                    let mut burst = ArrayVec::<Mbuf, 32>::new();
                    if pool.alloc_bulk(&mut burst, 32) {
                        for m in burst.iter_mut() {
                            let f = frame(n_sent);
                            m.append(f.len() as u16).unwrap().copy_from_slice(&f);
                            m.set_user(n_sent);
                            n_sent += 1;
                        }
                        while !burst.is_empty() {
                            lan_rx.enqueue_burst(&mut burst);
                        }
                        sent.store(n_sent, Ordering::Relaxed);
                    }
                }
                let n = wan_tx.dequeue_burst(&mut out);
                for mut m in out.drain(..) {
                    let idx = n_recv;
                    n_recv += 1;
                    if let Err(e) = check(&mut m, idx, &rx_a, &rx_b, &mut log, &freed_at) {
                        log.errors.push(e);
                    }
                }
                received.store(n_recv, Ordering::Relaxed);
                if stopping && n_recv >= n_sent {
                    break;
                }
                if stopping && n == 0 {
                    std::thread::sleep(Duration::from_micros(50));
                }
                if log.errors.len() > 20 {
                    break;
                }
            }
            (n_sent, n_recv, log)
        })
    };

    // The control side: swap, sometimes with a new SPD generation, reclaim, watch the frees.
    let started = Instant::now();
    let mut swaps = 0u64;
    let mut spd_bumps = 0u64;
    let mut max_pending = 0;
    while started.elapsed() < RUN && next_k < (1 << (32 - SEQ_SHIFT)) - 1 {
        let sa = out_sa(next_k);
        weaks.push(Arc::downgrade(&sa));
        freed_at.lock().unwrap().push(None);
        next_k += 1;
        let publisher = gw.publisher();
        let mut next = Tables { out_sa: vec![Some(sa)], ..publisher.current().clone() };
        if swaps.is_multiple_of(16) {
            next.spd = Arc::new(spd());
            next.spd_gen += 1;
            spd_bumps += 1;
        }
        publisher.publish(next);
        swaps += 1;
        publisher.reclaim();
        max_pending = max_pending.max(publisher.pending());
        // Note each retired object as it goes; everything it sealed was sent before its
        // worker's quiescent report, so it is counted in tx_packets by now.
        let tx_now = counters.counters.tx_packets.get();
        let mut fa = freed_at.lock().unwrap();
        for (k, w) in weaks.iter().enumerate() {
            if fa[k].is_none() && w.strong_count() == 0 {
                fa[k] = Some(tx_now);
            }
        }
        drop(fa);
        // Thousands a second, leaving the shared core to the traffic thread in between.
        std::thread::sleep(Duration::from_micros(100));
    }
    stop.store(true, Ordering::Relaxed);
    let (n_sent, n_recv, log) = traffic.join().expect("traffic thread");
    assert!(gw.publisher().synchronize(Duration::from_secs(2)), "every retired snapshot is reclaimed");
    let c = &counters.counters;
    eprintln!(
        "hitless: {swaps} swaps ({:.0}/s), {spd_bumps} SPD generations, {n_sent} sent, {n_recv} received, \
         encrypted {}, tx {}, drops {:?}, max pending snapshots {max_pending}, {} Sa objects used",
        swaps as f64 / started.elapsed().as_secs_f64(),
        c.encrypted.get(),
        c.tx_packets.get(),
        c.drops.nonzero(),
        log.per_object.iter().filter(|o| o.0 > 0).count(),
    );
    assert!(log.errors.is_empty(), "errors: {:#?}", log.errors);
    assert_eq!(n_recv, n_sent, "every packet sent came out");
    assert_eq!(c.drops.total(), 0, "drops: {:?}", c.drops.nonzero());
    assert_eq!(c.encrypted.get(), n_sent);
    assert!(swaps >= 1000, "only {swaps} swaps");
    assert!(n_sent >= 10_000, "only {n_sent} packets");
    // Every retired Sa object was freed; only the current one lives.
    let live: Vec<usize> = weaks.iter().enumerate().filter(|(_, w)| w.strong_count() > 0).map(|(k, _)| k).collect();
    assert_eq!(live, vec![weaks.len() - 1], "only the last SA object is alive");
    assert!(log.per_object.iter().filter(|o| o.0 > 0).count() > 10, "traffic spread over many SA objects");
    gw.stop();
}

/// Checks one output frame: decrypts under the SPI it carries, compares with the input,
/// and checks its Sa object's sequence numbers and lifetime.
fn check(
    m: &mut Mbuf,
    idx: u64,
    rx_a: &Sa,
    rx_b: &Sa,
    log: &mut SinkLog,
    freed_at: &Mutex<Vec<Option<u64>>>,
) -> Result<(), String> {
    let id = m.user();
    let d = m.data();
    if d.len() < 14 + 20 + 8 || d[12..14] != [0x08, 0x00] || d[14 + 9] != 50 {
        return Err(format!("packet {id}: not IPv4 ESP"));
    }
    if d[0..6] != [2, 0, 0, 0, 0, 0xcc] {
        return Err(format!("packet {id}: wrong next-hop MAC"));
    }
    let spi = u32::from_be_bytes(d[34..38].try_into().unwrap());
    let seq = u64::from(u32::from_be_bytes(d[38..42].try_into().unwrap()));
    let k = seq >> SEQ_SHIFT;
    let expect_spi = if k.is_multiple_of(2) { SPI_A } else { SPI_B };
    if spi != expect_spi {
        return Err(format!("packet {id}: seq {seq} is SA object {k}'s but SPI is {spi:#x}"));
    }
    let rx = match spi {
        SPI_A => rx_a,
        SPI_B => rx_b,
        _ => return Err(format!("packet {id}: unknown SPI {spi:#x}")),
    };
    if !m.adj(14) {
        return Err(format!("packet {id}: short"));
    }
    rx.decap(m).map_err(|e| format!("packet {id} (SPI {spi:#x}, seq {seq}): decap: {e}"))?;
    let mut want = frame(id);
    want[14 + 8] -= 1; // the gateway forwarded it: TTL - 1
    want[24..26].copy_from_slice(&[0, 0]);
    let c = ipv4_checksum(&want[14..34]);
    want[24..26].copy_from_slice(&c.to_be_bytes());
    if m.data() != &want[14..] {
        return Err(format!("packet {id}: inner packet differs from the input"));
    }
    let k = k as usize;
    if log.per_object.len() <= k {
        log.per_object.resize(k + 1, (0, 0, 0));
    }
    let o = &mut log.per_object[k];
    let expect_seq = if o.0 == 0 { ((k as u64) << SEQ_SHIFT) + 1 } else { o.1 + 1 };
    if seq != expect_seq {
        return Err(format!("SA object {k}: seq {seq} after {} (expected {expect_seq})", o.1));
    }
    *o = (o.0 + 1, seq, idx);
    if let Some(Some(tx_at_free)) = freed_at.lock().unwrap().get(k) {
        if idx >= *tx_at_free {
            return Err(format!("SA object {k} sealed packet #{idx} after it was freed (tx count then {tx_at_free})"));
        }
    }
    Ok(())
}
