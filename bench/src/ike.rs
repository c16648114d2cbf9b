//! `bench --ike`: IKEv2 setup rate and memory per IKE_SA of the rampart-control engine.
//!
//! One responder `Engine` in its own thread, pinned to one core, on a real UDP socket on
//! loopback (127.0.0.1). The initiators are child processes of this binary (re-executed
//! with `--ike --role initiator`), pinned to the other cores, each with one `Engine` that starts
//! IKE_SAs (IKE_SA_INIT + IKE_AUTH, one CHILD_SA, PSK) from its own 127.0.0.x address.
//! Separate processes keep the initiators' SAs out of the responder's heap and RSS, as
//! in strongSwan's load-tester setup with two charons (shared/anchors-ike).
//!
//! Measured at the responder, like the anchors:
//! - IKE_SA/s: growth of the established count from 10 % to 90 % of N over the time it took;
//! - responder CPU (thread CPU time of the responder thread) in that window, µs per IKE_SA,
//!   and 1e6 / µs-per-SA = the rate one full core would sustain (extrapolated);
//! - memory: heap bytes live (a counting global allocator) and VmRSS, before the first SA
//!   and after N established, divided by N. Measured twice: right after the N-th SA (the
//!   IKE_AUTH responses are still cached for retransmissions) and in steady state, after
//!   advancing the engine's clock past `response_cache_time` so the caches are dropped.
//!
//! Usage: bench --ike [-n N] [--group x25519|ecp256|modp2048] [--rate SA/s] [--duration S]
//!                 [--window W] [--initiators K] [--responder-cpu C] [--port P] [--json]

use rampart_control::ike::*;
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ counting allocator

struct Counting;
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BLOCKS: AtomicI64 = AtomicI64::new(0);
static ALLOC_CALLS: AtomicU64 = AtomicU64::new(0);

/// Counts a new block of `l` at `p` (if the allocation succeeded) and returns `p`.
fn counted(p: *mut u8, l: Layout) -> *mut u8 {
    if !p.is_null() {
        LIVE_BYTES.fetch_add(l.size() as i64, Relaxed);
        LIVE_BLOCKS.fetch_add(1, Relaxed);
        ALLOC_CALLS.fetch_add(1, Relaxed);
    }
    p
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        counted(System.alloc(l), l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        counted(System.alloc_zeroed(l), l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE_BYTES.fetch_sub(l.size() as i64, Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            LIVE_BYTES.fetch_add(new as i64 - l.size() as i64, Relaxed);
            ALLOC_CALLS.fetch_add(1, Relaxed);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ------------------------------------------------------------------ small OS helpers

fn cpu_time(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
fn thread_cpu() -> Duration {
    cpu_time(libc::CLOCK_THREAD_CPUTIME_ID)
}
fn process_cpu() -> Duration {
    cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn vm_rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |k| k * 1024)
}

/// Udp RcvbufErrors of this network namespace.
fn udp_rcvbuf_errors() -> u64 {
    let s = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("Udp:")).collect();
    if lines.len() < 2 {
        return 0;
    }
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let vals: Vec<&str> = lines[1].split_whitespace().collect();
    names.iter().position(|n| *n == "RcvbufErrors").and_then(|i| vals.get(i)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn set_bufs(s: &UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    for (force, opt) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
        let v = bytes;
        let p = &v as *const i32 as *const libc::c_void;
        let n = std::mem::size_of::<i32>() as libc::socklen_t;
        // FORCE needs CAP_NET_ADMIN; otherwise the plain option, capped at rmem_max/wmem_max.
        if unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, force, p, n) } != 0 {
            unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, p, n) };
        }
    }
}

fn pin(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

// ------------------------------------------------------------------ configuration

const PSK: &[u8] = b"ike-load-psk-0123456789abcdef0123456789";

fn parse_group(s: &str) -> DhGroup {
    match s {
        "x25519" | "curve25519" => DhGroup::Curve25519,
        "ecp256" => DhGroup::Ecp256,
        "ecp384" => DhGroup::Ecp384,
        "modp2048" => DhGroup::Modp2048,
        "modp3072" => DhGroup::Modp3072,
        _ => die(&format!("unknown group {s}")),
    }
}

fn group_name(g: DhGroup) -> &'static str {
    match g {
        DhGroup::Curve25519 => "x25519",
        DhGroup::Ecp256 => "ecp256",
        DhGroup::Ecp384 => "ecp384",
        DhGroup::Modp2048 => "modp2048",
        DhGroup::Modp3072 => "modp3072",
    }
}

fn die(msg: &str) -> ! {
    eprintln!("bench --ike: {msg}");
    std::process::exit(2)
}

fn ts(s: &str) -> TrafficSelector {
    TrafficSelector::from_prefix(s.parse().unwrap(), 24)
}

/// aes128gcm16-prfsha256-<group>, ESP aes128gcm16, TS 10.1.0.0/24 <=> 10.2.0.0/24, PSK,
/// no DPD, default lifetimes (no rekey during a run): the anchors' configuration.
fn peer(initiator: bool, local: IpAddr, remote: Option<IpAddr>, group: DhGroup) -> PeerConfig {
    let (me, other) = (Identity::Fqdn("client.load.test".into()), Identity::Fqdn("srv.load.test".into()));
    let (local_id, remote_id) = if initiator { (me, other) } else { (other, me) };
    let (lnet, rnet) = if initiator { ("10.1.0.0", "10.2.0.0") } else { ("10.2.0.0", "10.1.0.0") };
    PeerConfig {
        name: if initiator { "srv".into() } else { "clients".into() },
        local_addrs: vec![local],
        remote_addr: remote,
        local_id,
        remote_id,
        auth: Auth::Psk(PSK.to_vec()),
        ike_proposals: vec![IkeProposal { encr: vec![EncrAlg::AesGcm16_128], prf: vec![PrfAlg::HmacSha256], integ: vec![], dh: vec![group] }],
        esp_proposals: vec![EspProposal { algs: vec![EspAlg::AesGcm128], esn: false, dh: vec![] }],
        children: vec![ChildConfig {
            name: "net".into(),
            local_ts: vec![ts(lnet)],
            remote_ts: vec![ts(rnet)],
            mode: ChildMode::Tunnel,
            esp_proposals: vec![],
            pfs: false,
            lifetime: Lifetime::CHILD_DEFAULT,
        }],
        ike_lifetime: Lifetime::IKE_DEFAULT,
        dpd_interval: None,
        start_action: StartAction::None,
        dpd_action: DpdAction::Clear,
    }
}

fn engine_cfg(port: u16, n: u64) -> EngineConfig {
    EngineConfig {
        ike_port: port,
        natt_port: port + 1,
        // Like the anchors' `dos_protection = no`: all load comes from a few addresses.
        cookie_threshold: usize::MAX,
        max_half_open: (n as usize).max(20000),
        ..EngineConfig::default()
    }
}

#[derive(Clone)]
struct Opts {
    n: u64,
    group: DhGroup,
    rate: f64,
    duration: Option<f64>,
    window: u64,
    initiators: usize,
    responder_cpu: Option<usize>,
    initiator_cpus: Vec<usize>,
    port: u16,
    json: bool,
    timeout: f64,
    // initiator role
    role_initiator: bool,
    src: Ipv4Addr,
    cpu: Option<usize>,
}

fn parse_args(a: &[String]) -> Opts {
    let mut o = Opts {
        n: 20000,
        group: DhGroup::Curve25519,
        rate: 0.0,
        duration: None,
        window: 100,
        initiators: 1,
        responder_cpu: None,
        initiator_cpus: vec![],
        port: 5500,
        json: false,
        timeout: 300.0,
        role_initiator: false,
        src: Ipv4Addr::new(127, 0, 0, 2),
        cpu: None,
    };
    let mut i = 0;
    let val = |i: &mut usize| -> String {
        *i += 1;
        a.get(*i).cloned().unwrap_or_else(|| die(&format!("{} needs a value", a[*i - 1])))
    };
    while i < a.len() {
        match a[i].as_str() {
            "-n" => o.n = val(&mut i).parse().unwrap_or_else(|_| die("bad -n")),
            "--group" | "-g" => o.group = parse_group(&val(&mut i)),
            "--rate" => o.rate = val(&mut i).parse().unwrap_or_else(|_| die("bad --rate")),
            "--duration" => o.duration = Some(val(&mut i).parse().unwrap_or_else(|_| die("bad --duration"))),
            "--window" => o.window = val(&mut i).parse().unwrap_or_else(|_| die("bad --window")),
            "--initiators" => o.initiators = val(&mut i).parse().unwrap_or_else(|_| die("bad --initiators")),
            "--responder-cpu" => o.responder_cpu = Some(val(&mut i).parse().unwrap_or_else(|_| die("bad --responder-cpu"))),
            "--initiator-cpus" => {
                o.initiator_cpus = val(&mut i).split(',').map(|c| c.parse().unwrap_or_else(|_| die("bad --initiator-cpus"))).collect()
            }
            "--port" => o.port = val(&mut i).parse().unwrap_or_else(|_| die("bad --port")),
            "--timeout" => o.timeout = val(&mut i).parse().unwrap_or_else(|_| die("bad --timeout")),
            "--json" => o.json = true,
            "--role" => o.role_initiator = val(&mut i) == "initiator",
            "--src" => o.src = val(&mut i).parse().unwrap_or_else(|_| die("bad --src")),
            "--cpu" => o.cpu = Some(val(&mut i).parse().unwrap_or_else(|_| die("bad --cpu"))),
            "-h" | "--help" => {
                println!(
                    "bench --ike [-n N (20000)] [--group x25519|ecp256|modp2048] [--rate SA/s (0 = unpaced)]\n\
                     \x20            [--duration S (initiate for S seconds instead of N SAs)] [--window W (100 half-open per initiator)]\n\
                     \x20            [--initiators K (1)] [--responder-cpu C (last)] [--initiator-cpus a,b (the others)]\n\
                     \x20            [--port P (5500)] [--timeout S (300)] [--json]"
                );
                std::process::exit(0);
            }
            x => die(&format!("unknown argument {x}")),
        }
        i += 1;
    }
    o
}

// ------------------------------------------------------------------ initiator role

/// One initiator process: one Engine, one socket on `src:port`, up to `window` half-open
/// IKE_SAs, optional pacing. Prints one JSON line when done.
fn run_initiator(o: &Opts) {
    if let Some(c) = o.cpu {
        pin(c);
    }
    let src = IpAddr::V4(o.src);
    let dst = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let sock = UdpSocket::bind(SocketAddr::new(src, o.port)).unwrap_or_else(|e| die(&format!("bind {src}:{}: {e}", o.port)));
    set_bufs(&sock, 8 << 20);
    sock.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let local = sock.local_addr().unwrap();
    let mut eng = Engine::new(engine_cfg(o.port, o.n), vec![peer(true, src, Some(dst), o.group)]);
    let target = if o.duration.is_some() { u64::MAX } else { o.n };
    let t0 = Instant::now();
    let cpu0 = process_cpu();
    let deadline = o.duration.map(|d| t0 + Duration::from_secs_f64(d));
    let hard_deadline = t0 + Duration::from_secs_f64(o.timeout);
    let (mut initiated, mut up, mut failed) = (0u64, 0u64, 0u64);
    let mut buf = vec![0u8; 65536];
    let mut t_last = t0;
    let flush = |eng: &mut Engine| {
        while let Some(t) = eng.poll_transmit() {
            let _ = sock.send_to(&t.bytes, t.remote);
        }
    };
    loop {
        let now = Instant::now();
        let stop_initiating = deadline.is_some_and(|d| now >= d);
        while initiated < target && !stop_initiating && initiated - up - failed < o.window {
            if o.rate > 0.0 && (initiated as f64) >= now.duration_since(t0).as_secs_f64() * o.rate {
                break;
            }
            eng.initiate(now, "srv");
            initiated += 1;
            flush(&mut eng);
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                eng.handle_datagram(Instant::now(), local, from, &buf[..n]);
                flush(&mut eng);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => die(&format!("recv: {e}")),
        }
        let now = Instant::now();
        if eng.poll_timeout().is_some_and(|t| t <= now) {
            eng.handle_timeout(now);
            flush(&mut eng);
        }
        while let Some(ev) = eng.poll_event() {
            match ev {
                Event::IkeSaUp { .. } => {
                    up += 1;
                    t_last = Instant::now();
                }
                Event::IkeSaDown { .. } => failed += 1,
                _ => {}
            }
        }
        let all_done = up + failed >= initiated && (initiated >= target || stop_initiating);
        if all_done || now >= hard_deadline {
            break;
        }
    }
    let cpu = process_cpu() - cpu0;
    let st = eng.stats();
    let out = json!({
        "src": o.src.to_string(), "initiated": initiated, "established": up, "failed": failed,
        "wall_s": t_last.duration_since(t0).as_secs_f64(), "cpu_s": cpu.as_secs_f64(),
        "cpu_us_per_sa": if up > 0 { cpu.as_secs_f64() * 1e6 / up as f64 } else { 0.0 },
        "retransmitted_requests": st.retransmitted_requests, "rx": st.rx_datagrams, "tx": st.tx_datagrams,
        "heap_bytes_live": LIVE_BYTES.load(Relaxed), "vm_rss": vm_rss_bytes(),
    });
    println!("{out}");
}

// ------------------------------------------------------------------ responder

struct Mark {
    at: Instant,
    count: u64,
    cpu: Duration,
}

struct ResponderResult {
    marks: Vec<Mark>,
    last: Option<Instant>,
    count: u64,
    child_up: u64,
    heap0: i64,
    blocks0: i64,
    allocs0: u64,
    rss0: u64,
    heap1: i64,
    blocks1: i64,
    allocs1: u64,
    rss1: u64,
    heap2: i64,
    blocks2: i64,
    rss2: u64,
    stats: Stats,
    busy_cpu: Duration,
}

fn run_responder(o: &Opts, sock: UdpSocket, stop: Arc<AtomicBool>, ready: std::sync::mpsc::Sender<()>, established: Arc<AtomicU64>) -> ResponderResult {
    if let Some(c) = o.responder_cpu {
        if !pin(c) {
            eprintln!("bench --ike: could not pin the responder to CPU {c}");
        }
    }
    let local = sock.local_addr().unwrap();
    set_bufs(&sock, 8 << 20);
    sock.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let mut eng = Engine::new(engine_cfg(o.port, o.n), vec![peer(false, local.ip(), None, o.group)]);
    let mut buf = vec![0u8; 65536];
    // Warm-up of lazily allocated things (thread_rng, HashMap growth aside) is not counted.
    let (heap0, blocks0, allocs0, rss0) = (LIVE_BYTES.load(Relaxed), LIVE_BLOCKS.load(Relaxed), ALLOC_CALLS.load(Relaxed), vm_rss_bytes());
    ready.send(()).unwrap();
    let mut marks: Vec<Mark> = Vec::new();
    let (mut count, mut child_up) = (0u64, 0u64);
    let mut last = None;
    let mut next_mark = Instant::now();
    let cpu_start = thread_cpu();
    // Exact marks at 10 % and 90 % of N; with --duration, a mark every 50 ms.
    let n10 = (o.n as f64 * 0.1).round() as u64;
    let n90 = (o.n as f64 * 0.9).round() as u64;
    loop {
        if stop.load(Relaxed) {
            break;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let now = Instant::now();
                eng.handle_datagram(now, local, from, &buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => die(&format!("recv: {e}")),
        }
        let now = Instant::now();
        if eng.poll_timeout().is_some_and(|t| t <= now) {
            eng.handle_timeout(now);
        }
        while let Some(t) = eng.poll_transmit() {
            let _ = sock.send_to(&t.bytes, t.remote);
        }
        while let Some(ev) = eng.poll_event() {
            match ev {
                Event::IkeSaUp { .. } => {
                    count += 1;
                    let t = Instant::now();
                    last = Some(t);
                    if o.duration.is_none() && (count == n10 || count == n90) {
                        marks.push(Mark { at: t, count, cpu: thread_cpu() });
                    }
                }
                Event::ChildSaUp(_) => child_up += 1,
                _ => {}
            }
        }
        established.store(count, Relaxed);
        if o.duration.is_some() && count > 0 && now >= next_mark {
            marks.push(Mark { at: now, count, cpu: thread_cpu() });
            next_mark = now + Duration::from_millis(50);
        }
    }
    let busy_cpu = thread_cpu() - cpu_start;
    let (heap1, blocks1, allocs1, rss1) = (LIVE_BYTES.load(Relaxed), LIVE_BLOCKS.load(Relaxed), ALLOC_CALLS.load(Relaxed), vm_rss_bytes());
    // Steady state: move the engine's clock past the response cache lifetime (and the
    // half-open timeout) so that what is only kept for retransmissions is released.
    let later = Instant::now() + EngineConfig::default().response_cache_time.max(EngineConfig::default().half_open_timeout) + Duration::from_secs(1);
    eng.handle_timeout(later);
    while eng.poll_transmit().is_some() {}
    while eng.poll_event().is_some() {}
    let (heap2, blocks2, rss2) = (LIVE_BYTES.load(Relaxed), LIVE_BLOCKS.load(Relaxed), vm_rss_bytes());
    let stats = eng.stats().clone();
    // Dropping 20k SAs is not part of the measurement; leave it to process exit.
    std::mem::forget(eng);
    ResponderResult {
        marks,
        last,
        count,
        child_up,
        heap0,
        blocks0,
        allocs0,
        rss0,
        heap1,
        blocks1,
        allocs1,
        rss1,
        heap2,
        blocks2,
        rss2,
        stats,
        busy_cpu,
    }
}

/// `bench --ike ARGS`: the responder here, initiators in child processes.
pub fn run(args: &[String]) {
    let o = parse_args(args);
    if o.role_initiator {
        run_initiator(&o);
        return;
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut o = o;
    if o.responder_cpu.is_none() && ncpu > 1 {
        o.responder_cpu = Some(ncpu - 1);
    }
    if o.initiator_cpus.is_empty() {
        o.initiator_cpus = (0..ncpu).filter(|c| Some(*c) != o.responder_cpu).collect();
        if o.initiator_cpus.is_empty() {
            o.initiator_cpus = vec![0];
        }
    }
    let sock = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), o.port)).unwrap_or_else(|e| die(&format!("bind 127.0.0.1:{}: {e}", o.port)));
    let stop = Arc::new(AtomicBool::new(false));
    let established = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let ro = o.clone();
    let (rs, re) = (stop.clone(), established.clone());
    let responder = std::thread::Builder::new().name("responder".into()).spawn(move || run_responder(&ro, sock, rs, tx, re)).unwrap();
    rx.recv().unwrap();
    let drops0 = udp_rcvbuf_errors();
    let exe = std::env::current_exe().unwrap();
    let k = o.initiators.max(1);
    let mut children = Vec::new();
    let t_start = Instant::now();
    for i in 0..k {
        let n_i = o.n / k as u64 + u64::from((i as u64) < o.n % k as u64);
        let mut c = Command::new(&exe);
        c.args(["--ike", "--role", "initiator", "-n", &n_i.to_string(), "--group", group_name(o.group)])
            .args(["--src", &format!("127.0.0.{}", 2 + i), "--port", &o.port.to_string(), "--window", &o.window.to_string()])
            .args(["--cpu", &o.initiator_cpus[i % o.initiator_cpus.len()].to_string(), "--timeout", &o.timeout.to_string()]);
        if o.rate > 0.0 {
            c.args(["--rate", &(o.rate / k as f64).to_string()]);
        }
        if let Some(d) = o.duration {
            c.args(["--duration", &d.to_string()]);
        }
        children.push(c.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| die(&format!("spawn initiator: {e}"))));
    }
    let mut ini = Vec::new();
    for mut c in children {
        let out = c.stdout.take().unwrap();
        let line = std::io::BufReader::new(out).lines().next().and_then(|l| l.ok()).unwrap_or_default();
        let _ = c.wait();
        ini.push(serde_json::from_str::<serde_json::Value>(&line).unwrap_or(json!({})));
    }
    let total_up: u64 = ini.iter().map(|v| v["established"].as_u64().unwrap_or(0)).sum();
    // Let the responder see every IKE_AUTH it answered (it counts when it answers).
    let wait_until = Instant::now() + Duration::from_secs(2);
    while established.load(Relaxed) < total_up && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    let drops = udp_rcvbuf_errors() - drops0;
    stop.store(true, Relaxed);
    let r = responder.join().unwrap();
    report(&o, &r, &ini, drops, t_start);
}

fn report(o: &Opts, r: &ResponderResult, ini: &[serde_json::Value], drops: u64, t_start: Instant) {
    // Window: exact 10 %/90 % marks with -n; the marks nearest 10 %/90 % of the time with --duration.
    let (a, b) = if o.duration.is_some() && r.marks.len() >= 2 {
        let (t0, t1) = (r.marks[0].at, r.marks[r.marks.len() - 1].at);
        let span = t1.duration_since(t0);
        let pick = |f: f64| r.marks.iter().min_by_key(|m| (m.at.duration_since(t0).as_secs_f64() - span.as_secs_f64() * f).abs().to_bits()).unwrap();
        (pick(0.1), pick(0.9))
    } else if r.marks.len() >= 2 {
        (&r.marks[0], &r.marks[1])
    } else {
        die(&format!("only {} IKE_SAs established at the responder; no 10-90 % window", r.count));
    };
    let sas = (b.count - a.count) as f64;
    let wall = b.at.duration_since(a.at).as_secs_f64();
    let cpu = (b.cpu - a.cpu).as_secs_f64();
    let rate = sas / wall;
    let us_per_sa = cpu * 1e6 / sas;
    let per_core = 1e6 / us_per_sa;
    let util = cpu / wall;
    let from_start = match (r.last, r.count) {
        (Some(l), c) if c > 0 => c as f64 / l.duration_since(t_start).as_secs_f64(),
        _ => 0.0,
    };
    let n = r.count.max(1) as f64;
    let heap_at_n = (r.heap1 - r.heap0) as f64 / n;
    let heap_steady = (r.heap2 - r.heap0) as f64 / n;
    let blocks_steady = (r.blocks2 - r.blocks0) as f64 / n;
    let blocks_at_n = (r.blocks1 - r.blocks0) as f64 / n;
    let rss_at_n = (r.rss1 as f64 - r.rss0 as f64) / n;
    let rss_steady = (r.rss2 as f64 - r.rss0 as f64) / n;
    let allocs_per_sa = (r.allocs1 - r.allocs0) as f64 / n;
    let ini_cpu: f64 = ini.iter().map(|v| v["cpu_s"].as_f64().unwrap_or(0.0)).sum();
    let ini_up: u64 = ini.iter().map(|v| v["established"].as_u64().unwrap_or(0)).sum();
    let ini_failed: u64 = ini.iter().map(|v| v["failed"].as_u64().unwrap_or(0)).sum();
    let ini_retx: u64 = ini.iter().map(|v| v["retransmitted_requests"].as_u64().unwrap_or(0)).sum();
    let ini_us = if ini_up > 0 { ini_cpu * 1e6 / ini_up as f64 } else { 0.0 };
    let ini_wall: f64 = ini.iter().map(|v| v["wall_s"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max);
    let ini_util = if ini_wall > 0.0 { ini_cpu / ini_wall / ini.len().max(1) as f64 } else { 0.0 };
    let s = &r.stats;
    if o.json {
        let v = json!({
            "engine": "rampart-control", "group": group_name(o.group), "n": o.n, "established": r.count,
            "child_sas": r.child_up, "initiators": ini.len(), "window": o.window, "rate_limit": o.rate,
            "responder_cpu": o.responder_cpu, "initiator_cpus": o.initiator_cpus,
            "window_sas": sas, "window_s": wall, "ike_sa_per_s": rate, "ike_sa_per_s_from_start": from_start,
            "responder_cpu_share": util, "responder_us_per_sa": us_per_sa, "responder_sa_per_s_per_core": per_core,
            "initiator_cpu_share": ini_util, "initiator_us_per_sa": ini_us,
            "responder_busy_cpu_s": r.busy_cpu.as_secs_f64(),
            "heap_bytes_per_sa_at_n": heap_at_n, "heap_bytes_per_sa_steady": heap_steady,
            "heap_blocks_per_sa_at_n": blocks_at_n, "heap_blocks_per_sa_steady": blocks_steady,
            "rss_bytes_per_sa_at_n": rss_at_n, "rss_bytes_per_sa_steady": rss_steady,
            "rss0": r.rss0, "rss_at_n": r.rss1, "heap0": r.heap0, "heap_at_n": r.heap1, "heap_steady": r.heap2,
            "responder_alloc_calls_per_sa": allocs_per_sa,
            "udp_rcvbuf_errors": drops, "initiator_retransmits": ini_retx, "initiator_failed": ini_failed,
            "responder_stats": {
                "rx": s.rx_datagrams, "tx": s.tx_datagrams, "retransmitted_responses": s.retransmitted_responses,
                "dropped_unknown_spi": s.dropped_unknown_spi, "dropped_malformed": s.dropped_malformed,
                "auth_failures": s.auth_failures, "half_open_expired": s.half_open_expired,
                "dropped_half_open_limit": s.dropped_half_open_limit, "cookies_sent": s.cookies_sent,
            },
            "initiators_raw": ini,
        });
        println!("{v}");
        return;
    }
    println!("bench --ike: rampart-control IKEv2 engine, aes128gcm16-prfsha256-{}, PSK, 1 CHILD_SA (aes128gcm16) per IKE_SA", group_name(o.group));
    println!(
        "  responder: 1 thread on CPU {:?}; initiators: {} process(es) on CPUs {:?}, window {} half-open each{}",
        o.responder_cpu,
        ini.len(),
        o.initiator_cpus,
        o.window,
        if o.rate > 0.0 { format!(", paced at {} SA/s", o.rate) } else { String::new() }
    );
    println!("  established at the responder: {} IKE_SAs, {} CHILD_SAs; initiator failures {ini_failed}, retransmits {ini_retx}, UDP rcvbuf drops {drops}", r.count, r.child_up);
    println!();
    println!("  setup rate (responder; window {:.0} .. {:.0} SAs)", a.count, b.count);
    println!("  {:<44} {:>12.0}", "IKE_SA/s (10 % -> 90 %)", rate);
    println!("  {:<44} {:>12.0}", "IKE_SA/s (start -> last SA)", from_start);
    println!("  {:<44} {:>11.0}%", "responder CPU (share of its core)", util * 100.0);
    println!("  {:<44} {:>12.1}", "responder CPU us per IKE_SA", us_per_sa);
    println!("  {:<44} {:>12.0}", "responder IKE_SA/s per full core", per_core);
    println!("  {:<44} {:>11.0}%", "initiator CPU (share of its core)", ini_util * 100.0);
    println!("  {:<44} {:>12.1}", "initiator CPU us per IKE_SA", ini_us);
    println!("  {:<44} {:>12.1}", "responder allocations per IKE_SA", allocs_per_sa);
    println!();
    println!("  memory per established IKE_SA with one CHILD_SA (responder process, N = {})", r.count);
    println!("  {:<44} {:>12} {:>12}", "", "at N", "steady");
    println!("  {:<44} {:>12.0} {:>12.0}", "heap bytes (live, requested sizes)", heap_at_n, heap_steady);
    println!("  {:<44} {:>12.1} {:>12.1}", "heap blocks", blocks_at_n, blocks_steady);
    println!("  {:<44} {:>12.0} {:>12.0}", "VmRSS bytes", rss_at_n, rss_steady);
    println!("  (at N: right after the N-th SA, IKE_AUTH responses still cached for retransmissions;");
    println!("   steady: after advancing the engine clock past response_cache_time, caches released)");
}
