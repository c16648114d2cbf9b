//! `bench --pps`: throughput and latency of the Rampart dataplane through the same Gateway,
//! Worker and tables as `rampart run`, on ring ports fed by a generator and drained by a sink
//! (or on the devices given with `--ports`). ESP output is checked against Python's
//! `cryptography` before any figure is reported. `bench --ike` is the IKE load mode (ike.rs).

#![recursion_limit = "512"]

mod args;
mod frames;
mod ike;
mod scenario;
mod traffic;
mod verify;

use args::{Args, Direction};
use dpdk_sys::{ArrayVec, Mbuf, Port, Ring};
use rampart_dataplane::gateway::Gateway;
use rampart_dataplane::worker::WorkerShared;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use traffic::{Traffic, TrafficStats};

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--ike") {
        return ike::run(&argv[1..]);
    }
    let a = match args::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench: {e}");
            }
            eprint!("{}", args::USAGE);
            std::process::exit(2);
        }
    };
    if let Err(e) = run(a) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// Resident set size in bytes.
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

/// The rings of one ring port: `rx[q]` is what queue q receives, `tx[q]` what it sends.
struct RingPort {
    rx: Vec<Ring>,
    tx: Vec<Ring>,
}

fn ring_port(gw: &mut Gateway, name: &str, rx: Vec<Ring>, tx: Vec<Ring>) -> Result<RingPort, String> {
    let port = Port::from_rings(name, &rx.iter().collect::<Vec<_>>(), &tx.iter().collect::<Vec<_>>())
        .map_err(|e| format!("ring port {name}: {e}"))?;
    gw.attach(port).map_err(|e| format!("ring port {name}: {e}"))?;
    Ok(RingPort { rx, tx })
}

fn new_ring(name: String) -> Result<Ring, String> {
    Ring::new(&name, 8192).map_err(|e| format!("ring {name}: {e}"))
}

fn run(mut a: Args) -> Result<(), String> {
    // Before any SA is built: the tables, the peer's SAs that seal the decrypt frames, rekeys.
    let engine = rampart_dataplane::crypto::select_engine(a.engine).map_err(|e| format!("--engine {}: {e}", a.engine))?;
    if a.direction == Direction::Both {
        a.workers = 2; // one encrypts, the other decrypts what the first sent
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Workers on the last cores; the main lcore (control, generator, sink) on core 0.
    let first_core = ncpu.saturating_sub(a.workers).max(if ncpu > 1 { 1 } else { 0 });
    let ring_mode = a.ports.is_empty();
    let (lan_dev, wan_dev) = if ring_mode {
        ("net_ring_lan".to_string(), "net_ring_wan".to_string())
    } else {
        (a.ports[0].clone(), a.ports[1].clone())
    };
    let mut cfg = scenario::config(&a, &lan_dev, &wan_dev, first_core)?;
    // EAL memory: the mbuf pool and 512 MiB for the rest. An mbuf takes 2.3 KiB with the
    // mempool's header; on 4 KiB pages the mempool puts one on each page, as none may cross one.
    let per_mbuf = if a.hugepages { 2432 } else { 4096 };
    let mem_mb = ((a.mbufs as usize * per_mbuf) >> 20) + 512;
    let mem = vec!["-m".to_string(), mem_mb.max(1024).to_string()];
    cfg.eal.extend(if a.hugepages { mem } else { [vec!["--no-huge".to_string()], mem].concat() });
    cfg.eal.push("--no-pci".into());
    let mut spec = rampart_control::daemon::spec(&cfg);
    spec.idle_sleep = Duration::ZERO;
    spec.mbufs = a.mbufs;
    spec.flow_cache = a.flow_cache.unwrap_or((2 * a.flows).next_power_of_two().clamp(spec.flow_cache, 1 << 24));
    if ring_mode {
        spec.ports.clear();
    }
    let mut gw = Gateway::open(spec).map_err(|e| match e.to_string() {
        e if e.contains("rx_queue_setup") && !ring_mode => format!("{e} (net_pcap with infinite_rx=1 holds every frame of its file in an mbuf: raise --mbufs, now {})", a.mbufs),
        e => e,
    })?;

    let nq = a.workers;
    let mut rp = Vec::new();
    if ring_mode {
        let lan_rx: Vec<Ring> = (0..nq).map(|q| new_ring(format!("lan_rx{q}"))).collect::<Result<_, _>>()?;
        let lan_tx: Vec<Ring> = (0..nq).map(|q| new_ring(format!("lan_tx{q}"))).collect::<Result<_, _>>()?;
        let mut wan_rx: Vec<Ring> = (0..nq).map(|q| new_ring(format!("wan_rx{q}"))).collect::<Result<_, _>>()?;
        let wan_tx: Vec<Ring> = (0..nq).map(|q| new_ring(format!("wan_tx{q}"))).collect::<Result<_, _>>()?;
        if a.direction == Direction::Both {
            // Worker 0's ESP to the peer comes straight back in on worker 1's WAN queue.
            wan_rx[1] = wan_tx[0];
        }
        rp.push(ring_port(&mut gw, "lan", lan_rx, lan_tx)?);
        rp.push(ring_port(&mut gw, "wan", wan_rx, wan_tx)?);
    }

    let rss0 = rss();
    let built = Instant::now();
    let mut tables = rampart_control::build::tables(&cfg, gw.macs(), a.workers).map_err(|(f, m)| format!("tables: {f}: {m}"))?;
    tables.neighbors = Arc::new(scenario::neighbors());
    let table_secs = built.elapsed().as_secs_f64();
    let mem_per_sa = rss().saturating_sub(rss0) as f64 / a.sas as f64;

    // The frames: one per flow (at most 2^20 templates), plaintext or sealed by the peer.
    let lan_mac = gw.macs()[0];
    let wan_mac = gw.macs()[1];
    let ntemplates = a.flows.min(1 << 20).max(match a.size {
        args::Size::Imix => 12,
        _ => 1,
    });
    let mut plain = Vec::with_capacity(ntemplates);
    let mut tunnel_of = Vec::with_capacity(ntemplates);
    for t in 0..ntemplates {
        // Templates cover the flows evenly when there are more flows than templates.
        let f = t * a.flows / ntemplates;
        let (src, dst, sp, dp, tun) = scenario::flow(&a, f);
        plain.push(frames::plaintext(a.size.of(t), src, dst, sp, dp, lan_mac));
        tunnel_of.push(tun);
    }
    let peers: Vec<rampart_dataplane::esp::Sa> = {
        let used: usize = tunnel_of.iter().copied().max().unwrap_or(0) + 1;
        if a.direction == Direction::Decrypt {
            (0..used).map(|i| scenario::peer_sa(&cfg, i)).collect::<Result<_, _>>()?
        } else {
            vec![]
        }
    };
    let mut esp_frames = Vec::new();
    if a.direction == Direction::Decrypt {
        for (t, f) in plain.iter().enumerate() {
            let mut b = rampart_dataplane::buf::VecBuf::new(&f[14..]);
            peers[tunnel_of[t]].encap(&mut b).map_err(|e| format!("sealing template {t}: {e}"))?;
            let mut e = vec![0u8; 14];
            e[0..6].copy_from_slice(&wan_mac);
            e[6..12].copy_from_slice(&scenario::PEER_MAC);
            e[12..14].copy_from_slice(&[0x08, 0x00]);
            e.extend_from_slice(rampart_dataplane::buf::PktBuf::data(&b));
            esp_frames.push(e);
        }
    }

    if let Some(path) = &a.write_pcap {
        let frames = if a.direction == Direction::Decrypt { &esp_frames } else { &plain };
        frames::write_pcap(path, frames).map_err(|e| format!("{path}: {e}"))?;
        println!("wrote {} frames to {path}", frames.len());
        return Ok(());
    }
    gw.start(tables).map_err(|e| e.to_string())?;

    // Where frames go in and come out.
    let (inject, drain, frames_in): (Vec<Ring>, Vec<Ring>, &Vec<Vec<u8>>) = if ring_mode {
        match a.direction {
            Direction::Encrypt => (rp[0].rx.clone(), rp[1].tx.clone(), &plain),
            Direction::Decrypt => (rp[1].rx.clone(), rp[0].tx.clone(), &esp_frames),
            Direction::Both => (vec![rp[0].rx[0]], vec![rp[0].tx[1]], &plain),
        }
    } else {
        (vec![], vec![], &plain)
    };

    // Correctness first.
    let verified = if ring_mode {
        verify_ring(&a, &gw, &inject, &drain, frames_in, &plain, &tunnel_of)?
    } else {
        verify_sealing(&cfg, &plain, &tunnel_of)?
    };
    if !a.json {
        if a.direction == Direction::Both {
            // The ESP leg is not visible here (ring to ring); `--direction encrypt` checks it.
            println!("verified: {verified} frames came back equal to their input after encrypt and decrypt (round trip; no python check of the ESP leg in this mode)");
        } else {
            println!("verified: {verified} ESP frames decrypt to their input (python cryptography)");
        }
    }

    // Measure.
    let stats = Arc::new(TrafficStats::default());
    let gen = if ring_mode {
        let t = Traffic { pool: gw.pool, frames: frames_in.clone(), inject, drain, stats: stats.clone(), core: (ncpu > 1).then_some(0) };
        Some(std::thread::Builder::new().name("traffic".into()).spawn(move || t.run()).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let out_port = match a.direction {
        Direction::Encrypt => gw.ports[1],
        _ => gw.ports[0],
    };
    let snap = |gw: &Gateway, stats: &TrafficStats| Snapshot {
        at: Instant::now(),
        out: if ring_mode { stats.received.load(Relaxed) } else { out_port.stats().opackets },
        per_worker: gw.shared.iter().map(|w| w.counters.tx_packets.get()).collect(),
        drops: drops_of(&gw.shared),
        flows: gw.shared.iter().map(|w| {
            let c = &w.counters;
            [c.flow_hits.get(), c.flow_misses.get(), c.flow_evictions.get()]
        }).fold([0; 3], |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2]]),
    };
    // Latency below saturation: find the saturated rate first, then pace at half of it.
    let mut paced_mpps = None;
    if let Some(rate) = a.rate {
        let pps = match rate {
            args::Rate::Pps(p) => p,
            args::Rate::Half => {
                std::thread::sleep(a.warmup);
                let s0 = snap(&gw, &stats);
                std::thread::sleep(Duration::from_millis(1500));
                let s1 = snap(&gw, &stats);
                let max = (s1.out - s0.out) as f64 / s1.at.duration_since(s0.at).as_secs_f64();
                if !a.json {
                    println!("saturated at {:.3} Mpps; pacing at half of it", max / 1e6);
                }
                max / 2.0
            }
        };
        stats.rate_pps.store(pps as u64, Relaxed);
        paced_mpps = Some(pps / 1e6);
    }
    // Gbit/s as the summary counts it: plaintext frame bytes per packet out.
    let avg_plain = plain.iter().map(Vec::len).sum::<usize>() as f64 / plain.len() as f64;
    let mut rekey = Rekeyer::new(&a, &cfg);
    let started = Instant::now();
    let mut last = snap(&gw, &stats);
    let mut begin: Option<Snapshot> = None;
    let total = a.warmup + a.duration;
    let tick = if a.rekeys > 0 { Duration::from_millis(1) } else { Duration::from_millis(200) };
    while started.elapsed() < total {
        std::thread::sleep(tick);
        if begin.is_some() {
            rekey.catch_up(&mut gw)?;
        }
        gw.publisher().reclaim();
        if begin.is_none() && started.elapsed() >= a.warmup {
            stats.measuring.store(true, Relaxed);
            begin = Some(snap(&gw, &stats));
        }
        let now = snap(&gw, &stats);
        if now.at.duration_since(last.at) >= Duration::from_secs(1) {
            if !a.json {
                let dt = now.at.duration_since(last.at).as_secs_f64();
                let d: u64 = now.drops.iter().map(|x| x.1).sum::<u64>() - last.drops.iter().map(|x| x.1).sum::<u64>();
                println!(
                    "[{:5.1}s] {:7.3} Mpps  {:7.2} Gbit/s  drops {d}{}",
                    started.elapsed().as_secs_f64(),
                    (now.out - last.out) as f64 / dt / 1e6,
                    (now.out - last.out) as f64 * avg_plain * 8.0 / dt / 1e9,
                    if begin.is_some() { "" } else { "  (warm-up)" }
                );
            }
            last = now;
        }
    }
    let end = snap(&gw, &stats);
    stats.measuring.store(false, Relaxed);
    // Stop sending, let what is in flight come out, then count what went missing.
    stats.stop_sending.store(true, Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    let (sent, received) = (stats.sent.load(Relaxed), stats.received.load(Relaxed));
    stats.stop.store(true, Relaxed);
    let hist = gen.map(|h| h.join().expect("traffic thread"));
    let lost = ring_mode.then(|| sent.saturating_sub(received));
    let begin = begin.unwrap_or(last);
    gw.stop();

    let dt = end.at.duration_since(begin.at).as_secs_f64();
    let pkts = end.out - begin.out;
    let mpps = pkts as f64 / dt / 1e6;
    // Plaintext frame bytes per output packet (the anchors' Gbit/s), and ESP payload bytes.
    let avg_payload = plain.iter().map(|f| esp_payload_len(f.len() - 14)).sum::<usize>() as f64 / plain.len() as f64;
    let gbps_frames = mpps * 1e6 * avg_plain * 8.0 / 1e9;
    let gbps_payload = mpps * 1e6 * avg_payload * 8.0 / 1e9;
    let per_worker: Vec<f64> = end.per_worker.iter().zip(&begin.per_worker).map(|(e, b)| (e - b) as f64 / dt / 1e6).collect();
    let drops: Vec<(&str, u64)> = end
        .drops
        .iter()
        .map(|(n, c)| (*n, c - begin.drops.iter().find(|x| x.0 == *n).map_or(0, |x| x.1)))
        .filter(|x| x.1 > 0)
        .collect();
    let [flow_hits, flow_misses, flow_evictions] = [0, 1, 2].map(|i| end.flows[i] - begin.flows[i]);
    // With latency measured (ring mode), how much of the window the generator lost its core.
    let stalls = ring_mode.then(|| {
        let ns = stats.stalled_ns.load(Relaxed) as f64;
        serde_json::json!({"count": stats.stalls.load(Relaxed), "percent": (100.0 * ns / 1e9 / dt * 100.0).round() / 100.0})
    });
    let lat = hist.as_ref().filter(|h| !h.is_empty()).map(|h| {
        (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.value_at_quantile(0.999), h.max())
    });
    if a.json {
        let j = serde_json::json!({
            "direction": a.direction.name(), "size": a.size.label(), "workers": a.workers, "sas": a.sas,
            "policies": a.policies, "flows": a.flows, "duration_s": dt, "engine": engine,
            "ports": if ring_mode { vec!["net_ring".to_string(), "net_ring".into()] } else { a.ports.clone() },
            "hugepages": a.hugepages, "verified_frames": verified,
            "packets": pkts, "mpps": mpps, "gbps_frames": gbps_frames, "gbps_esp_payload": gbps_payload,
            "per_worker_mpps": per_worker,
            "drops": drops.iter().map(|(n, c)| (n.to_string(), serde_json::json!(c))).collect::<serde_json::Map<_, _>>(),
            "latency_ns": lat.map(|(p50, p99, p999, max)| serde_json::json!({"p50": p50, "p99": p99, "p99_9": p999, "max": max})),
            "memory_per_sa_bytes": mem_per_sa, "table_build_s": table_secs,
            "flow_cache": {"hits": flow_hits, "misses": flow_misses, "evictions": flow_evictions},
            "paced_mpps": paced_mpps, "generator_stalls": stalls, "sa_replacements": rekey.done, "sent": ring_mode.then_some(sent), "lost": lost,
        });
        println!("{j}");
    } else {
        println!();
        println!("{:<24} {}", "direction", a.direction.name());
        println!("{:<24} {} B", "frame size", a.size.label());
        println!("{:<24} {} ({} policies, {} flows)", "tunnels", a.sas, a.policies, a.flows);
        println!("{:<24} {}", "crypto engine", engine);
        println!("{:<24} {}", "ports", if ring_mode { "net_ring (generator/sink thread)".to_string() } else { a.ports.join(" ") });
        println!("{:<24} {:.3} Mpps over {:.1} s", "throughput", mpps, dt);
        println!("{:<24} {:.2} Gbit/s frames, {:.2} Gbit/s ESP payload", "", gbps_frames, gbps_payload);
        for (i, w) in per_worker.iter().enumerate() {
            println!("{:<24} {:.3} Mpps", format!("worker {i}"), w);
        }
        println!("{:<24} {}", "drops", if drops.is_empty() { "none".into() } else { drops.iter().map(|(n, c)| format!("{n}={c}")).collect::<Vec<_>>().join(" ") });
        if flow_hits + flow_misses > 0 {
            let rate = 100.0 * flow_hits as f64 / (flow_hits + flow_misses) as f64;
            println!("{:<24} {rate:.1} % hits ({flow_hits} hits, {flow_misses} misses, {flow_evictions} evictions)", "flow cache");
        }
        if let Some(lost) = lost {
            println!("{:<24} {lost} of {sent} sent (whole run, warm-up included)", "lost");
        }
        if let Some(p) = paced_mpps {
            println!("{:<24} {p:.3} Mpps offered", "paced");
        }
        if let Some(s) = &stalls {
            println!(
                "{:<24} {} loop turns over 20 us, {:.2} % of the window (latency includes what they held up)",
                "generator stalls", s["count"], s["percent"]
            );
        }
        if rekey.done > 0 {
            println!("{:<24} {} ({:.0}/s while measuring)", "SA replacements", rekey.done, rekey.done as f64 / dt);
        }
        match lat {
            Some((p50, p99, p999, max)) => println!("{:<24} p50 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  max {:.1} us", "latency", p50 as f64 / 1e3, p99 as f64 / 1e3, p999 as f64 / 1e3, max as f64 / 1e3),
            None => println!("{:<24} n/a (device ports)", "latency"),
        }
        println!("{:<24} {:.0} B (RSS growth {:.1} MB / {} SAs; tables built in {:.2} s)", "memory per SA", mem_per_sa, mem_per_sa * a.sas as f64 / 1e6, a.sas, table_secs);
    }
    Ok(())
}

/// Replaces SAs at `--rekeys` a second while the bench runs, through the same publisher as
/// the control thread: encrypt replaces a tunnel's outbound SA with a new one (a new SPI, as
/// a rekey does), decrypt replaces its inbound SA with a fresh entry for the same SPI and key
/// (the generator keeps sending that SPI). Nothing may be lost meanwhile.
struct Rekeyer {
    per_sec: u64,
    direction: Direction,
    params: Vec<rampart_dataplane::esp::SaParams>,
    workers: usize,
    started: Option<Instant>,
    done: u64,
}

impl Rekeyer {
    fn new(a: &Args, cfg: &rampart_control::config::Config) -> Rekeyer {
        let want = if a.direction == Direction::Decrypt { "i" } else { "o" };
        let params = cfg
            .sas
            .iter()
            .filter(|s| s.name.starts_with(want))
            .take(a.sas.min(1024))
            .filter_map(|s| rampart_control::build::sa_params(s).ok())
            .collect();
        Rekeyer { per_sec: a.rekeys, direction: a.direction, params, workers: a.workers, started: None, done: 0 }
    }

    /// Does the replacements due by now.
    fn catch_up(&mut self, gw: &mut Gateway) -> Result<(), String> {
        if self.per_sec == 0 || self.params.is_empty() {
            return Ok(());
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = (started.elapsed().as_secs_f64() * self.per_sec as f64) as u64;
        while self.done < due {
            let i = self.done as usize % self.params.len();
            let mut p = self.params[i].clone();
            let mut t = gw.publisher().current().clone();
            match self.direction {
                Direction::Decrypt => {
                    let old = t.sad_in.get(&p.spi).ok_or("rekey: inbound SA missing")?;
                    let e = self.entry(&old.name, p.clone(), old.selectors.clone())?;
                    t.sad_in.insert(p.spi, e);
                }
                _ => {
                    let name = format!("o{i}");
                    let j = t.out_sa.iter().position(|s| s.as_ref().is_some_and(|s| s.name == name));
                    let j = j.ok_or("rekey: outbound SA missing")?;
                    p.spi = scenario::SPI_BASE + 0x1000_0000 + self.done as u32;
                    t.out_sa[j] = Some(self.entry(&name, p, Default::default())?);
                }
            }
            gw.publisher().publish(t);
            self.done += 1;
        }
        Ok(())
    }

    fn entry(&self, name: &str, p: rampart_dataplane::esp::SaParams, selectors: rampart_dataplane::spd::Selectors) -> Result<Arc<rampart_dataplane::tables::SaEntry>, String> {
        let sa = rampart_dataplane::esp::Sa::new(p).map_err(|e| e.to_string())?;
        Ok(Arc::new(rampart_dataplane::tables::SaEntry { name: name.to_string(), sa, selectors, drops: rampart_dataplane::counters::SaDrops::new(self.workers) }))
    }
}

/// ESP payload bytes for an inner IP packet of `ip_len` bytes: what AES-GCM encrypts
/// (inner packet, padding to 4, pad length, next header).
fn esp_payload_len(ip_len: usize) -> usize {
    (ip_len + 2).div_ceil(4) * 4
}

struct Snapshot {
    at: Instant,
    out: u64,
    /// Flow cache hits, misses and evictions, all workers.
    flows: [u64; 3],
    per_worker: Vec<u64>,
    drops: Vec<(&'static str, u64)>,
}

fn drops_of(shared: &[Arc<WorkerShared>]) -> Vec<(&'static str, u64)> {
    let mut all: Vec<(&'static str, u64)> = Vec::new();
    for w in shared {
        for (n, c) in w.counters.drops.nonzero() {
            match all.iter_mut().find(|x| x.0 == n) {
                Some(x) => x.1 += c,
                None => all.push((n, c)),
            }
        }
    }
    all
}

/// Sends each template once through the running worker and checks what comes out with
/// Python: ESP output must decrypt to the input (encrypt), the output must be what Python
/// decrypts from the ESP input (decrypt), or the round trip must give the input back (both,
/// whose ESP leg is the encrypt path).
fn verify_ring(
    a: &Args,
    gw: &Gateway,
    inject: &[Ring],
    drain: &[Ring],
    frames_in: &[Vec<u8>],
    plain: &[Vec<u8>],
    tunnel_of: &[usize],
) -> Result<usize, String> {
    let n = frames_in.len().min(256);
    let mut outs: Vec<Option<Vec<u8>>> = vec![None; n];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent = 0;
    let mut got = 0;
    let mut burst = ArrayVec::<Mbuf, 32>::new();
    while got < n && Instant::now() < deadline {
        if sent < n {
            let mut m = frames::to_mbuf(&gw.pool, &frames_in[sent]).ok_or("mbuf pool empty")?;
            m.set_user(sent as u64);
            let mut one = ArrayVec::<Mbuf, 1>::new();
            one.push(m);
            if inject[sent % inject.len()].enqueue_burst(&mut one) == 1 {
                sent += 1;
            }
        }
        for r in drain {
            r.dequeue_burst(&mut burst);
            for m in burst.drain(..) {
                let i = m.user() as usize;
                if i < n && outs[i].is_none() {
                    outs[i] = Some(m.data().to_vec());
                    got += 1;
                }
            }
        }
    }
    if got < n {
        let d = drops_of(&gw.shared);
        return Err(format!("verification: {got} of {n} frames came out (drops {d:?}); refusing to report figures"));
    }
    let mut cases = Vec::new();
    for (i, out) in outs.into_iter().enumerate() {
        let out = out.unwrap();
        let key = scenario::key(tunnel_of[i]);
        match a.direction {
            Direction::Encrypt => cases.push(verify::Case { esp: out[14..].to_vec(), key, expect: frames::forwarded_ip(&plain[i], 1), ttl_delta: 0 }),
            Direction::Decrypt => cases.push(verify::Case { esp: frames_in[i][14..].to_vec(), key, expect: out[14..].to_vec(), ttl_delta: 1 }),
            Direction::Both => {
                if out[14..] != frames::forwarded_ip(&plain[i], 2)[..] {
                    return Err(format!("verification: round trip of frame {i} differs from its input"));
                }
            }
        }
    }
    if a.direction == Direction::Both {
        return Ok(n);
    }
    verify::run(&cases).map_err(|e| format!("verification failed: {e}; refusing to report figures"))
}

/// With device ports the output cannot be captured here: seal the templates with the SAs
/// built from the same config (the code the worker runs) and check them in Python.
fn verify_sealing(cfg: &rampart_control::config::Config, plain: &[Vec<u8>], tunnel_of: &[usize]) -> Result<usize, String> {
    let mut cases = Vec::new();
    for (i, f) in plain.iter().enumerate().take(256) {
        let sa = scenario::peer_sa(cfg, tunnel_of[i])?;
        let mut b = rampart_dataplane::buf::VecBuf::new(&f[14..]);
        sa.encap(&mut b).map_err(|e| e.to_string())?;
        cases.push(verify::Case { esp: rampart_dataplane::buf::PktBuf::data(&b).to_vec(), key: scenario::key(tunnel_of[i]), expect: f[14..].to_vec(), ttl_delta: 0 });
    }
    verify::run(&cases).map_err(|e| format!("verification failed: {e}; refusing to report figures"))
}
