//! The control socket and the metrics listener end to end: a real mio loop on a thread with a
//! mock handler, real unix-socket and TCP clients, including misbehaving ones.

use mio::{Events, Poll, Token};
use rampart_control::ctl::metrics::{self, HttpServer, MetricsSnapshot, PortMetrics, SaDir, SaMetrics, WorkerMetrics};
use rampart_control::ctl::{client, proto, Request, Server};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

fn temp_socket(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir()
        .join(format!("rampart-ctl-{}-{}-{tag}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
        .join("ctl.sock")
}

fn mock(req: Request) -> Result<Value, String> {
    match req {
        Request::Version => Ok(proto::version()),
        Request::ListSas => Ok(json!([{"sa": "net1", "spi": "0x00000101", "dir": "out", "packets": 5}])),
        Request::Counters => Ok(serde_json::to_value(sample_snapshot()).map_err(|e| e.to_string())?),
        Request::Initiate { peer } if peer == "nobody" => Err(format!("no peer `{peer}`")),
        Request::Initiate { peer } => Ok(json!({ "initiated": peer })),
        other => Err(format!("not implemented: {other:?}")),
    }
}

fn sample_snapshot() -> MetricsSnapshot {
    MetricsSnapshot {
        uptime_seconds: 12.5,
        ports: vec![
            PortMetrics { port: "lan".into(), rx_packets: 10, ..Default::default() },
            PortMetrics { port: "w\"a\\n\nx".into(), tx_packets: 3, ..Default::default() },
        ],
        workers: vec![WorkerMetrics { worker: 0, rx_packets: 7, flow_evictions: 3, drops: [("replay".to_string(), 2)].into(), ..Default::default() }],
        sas: vec![
            SaMetrics { sa: "net1".into(), spi: 0x101, dir: SaDir::Out, packets: 5, bytes: 500, drops: Default::default() },
            SaMetrics { sa: "net1".into(), spi: 0xc0000001, dir: SaDir::In, packets: 4, bytes: 400, drops: [("auth_failed".to_string(), 1)].into() },
        ],
    }
}

/// A control loop like the daemon's, on its own thread, until the flag is set.
struct Daemon {
    path: PathBuf,
    http: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Daemon {
    fn start(tag: &str) -> Daemon {
        let path = temp_socket(tag);
        let mut poll = Poll::new().unwrap();
        let mut server = Server::bind(&path).unwrap();
        server.register(poll.registry(), Token(100)).unwrap();
        let mut http = HttpServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        http.register(poll.registry(), Token(100 + Server::TOKENS)).unwrap();
        let addr = http.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut events = Events::with_capacity(64);
            let mut handler = mock;
            while !flag.load(Ordering::Relaxed) {
                poll.poll(&mut events, Some(Duration::from_millis(5))).unwrap();
                for ev in events.iter() {
                    if server.owns(ev.token()) {
                        server.handle_event(ev, &mut handler);
                    } else if http.owns(ev.token()) {
                        http.handle_event(ev, &mut || metrics::render(&sample_snapshot()));
                    }
                }
                server.poll_idle(&mut handler);
                http.poll_idle(std::time::Instant::now());
            }
        });
        Daemon { path, http: addr, stop, thread: Some(thread) }
    }

    fn connect(&self) -> (UnixStream, BufReader<UnixStream>) {
        let s = UnixStream::connect(&self.path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        (s, r)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A panic on the loop thread fails the test here.
            t.join().unwrap();
        }
    }
}

fn ask(w: &mut UnixStream, r: &mut BufReader<UnixStream>, line: &[u8]) -> Value {
    w.write_all(line).unwrap();
    w.write_all(b"\n").unwrap();
    let mut reply = String::new();
    r.read_line(&mut reply).unwrap();
    assert!(reply.ends_with('\n'), "{reply:?}");
    serde_json::from_str(&reply).unwrap()
}

#[test]
fn answers_requests_and_errors_keep_the_connection() {
    let d = Daemon::start("basic");
    let mode = std::fs::metadata(&d.path).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);
    let (mut w, mut r) = d.connect();
    let v = ask(&mut w, &mut r, br#"{"cmd":"version"}"#);
    assert_eq!(v["ok"], true);
    assert_eq!(v["data"]["name"], "rampart");
    let v = ask(&mut w, &mut r, br#"{"cmd": "list-sas"}"#);
    assert_eq!(v["data"][0]["sa"], "net1");
    let v = ask(&mut w, &mut r, br#"{"cmd":"frobnicate"}"#);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("frobnicate"), "{v}");
    let v = ask(&mut w, &mut r, br#"{"cmd":"initiate"}"#);
    assert_eq!(v["ok"], false);
    let v = ask(&mut w, &mut r, b"\x00\xff{{{ not json");
    assert_eq!(v["ok"], false);
    let v = ask(&mut w, &mut r, br#"{"cmd":"initiate","peer":"nobody"}"#);
    assert_eq!(v, json!({"ok": false, "error": "no peer `nobody`"}));
    // Two requests in one write, CRLF, blank lines between.
    w.write_all(b"{\"cmd\":\"version\"}\r\n\n  \n{\"cmd\":\"initiate\",\"peer\":\"a\"}\n").unwrap();
    let mut a = String::new();
    r.read_line(&mut a).unwrap();
    r.read_line(&mut a).unwrap();
    assert!(a.contains("\"version\"") && a.contains("\"initiated\":\"a\""), "{a}");
    let v = ask(&mut w, &mut r, br#"{"cmd":"version"}"#);
    assert_eq!(v["ok"], true);
}

#[test]
fn a_last_request_without_newline_is_answered_at_eof() {
    let d = Daemon::start("eof");
    let (mut w, mut r) = d.connect();
    w.write_all(br#"{"cmd":"version"}"#).unwrap();
    w.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    r.read_to_string(&mut all).unwrap();
    assert!(all.starts_with(r#"{"data":"#) && all.ends_with("}\n"), "{all}");
}

#[test]
fn garbage_and_huge_lines() {
    let d = Daemon::start("huge");
    // Binary garbage, 20 lines of it: one error reply each, and the connection stays usable.
    let (mut w, mut r) = d.connect();
    let mut x = 0x2545_f491u32;
    for _ in 0..20 {
        let mut line = b"x".to_vec();
        line.extend((0..300).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }).filter(|&b| b != b'\n'));
        line.push(b'\n');
        w.write_all(&line).unwrap();
    }
    for _ in 0..20 {
        let mut reply = String::new();
        r.read_line(&mut reply).unwrap();
        let v: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["ok"], false, "{v}");
    }
    assert_eq!(ask(&mut w, &mut r, br#"{"cmd":"version"}"#)["ok"], true);

    // A line over 64 KiB: an error reply, then the connection is closed.
    let (mut w, mut r) = d.connect();
    let huge = vec![b'a'; proto::MAX_LINE + 10];
    let _ = w.write_all(&huge); // the server may close before it has read it all
    let mut reply = String::new();
    r.read_line(&mut reply).unwrap();
    let v: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("longer than"), "{v}");
    let mut rest = Vec::new();
    match r.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty()),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
    }
    // Others are still served.
    let (mut w, mut r) = d.connect();
    assert_eq!(ask(&mut w, &mut r, br#"{"cmd":"version"}"#)["ok"], true);
}

#[test]
fn a_client_that_never_reads_is_dropped_and_others_are_served() {
    let d = Daemon::start("flood");
    let path = d.path.clone();
    let flooder = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        let batch = b"{\"cmd\":\"counters\"}\n".repeat(500);
        // Each counters reply is ~700 bytes: the backlog bound is passed within ~2000 requests.
        for i in 0..100_000 {
            if let Err(e) = s.write_all(&batch) {
                return Ok((i, e.kind()));
            }
        }
        Err("the server never dropped the flooding client")
    });
    // Meanwhile another client is served promptly, many times.
    let (mut w, mut r) = d.connect();
    for _ in 0..200 {
        assert_eq!(ask(&mut w, &mut r, br#"{"cmd":"version"}"#)["ok"], true);
    }
    let (_, kind) = flooder.join().unwrap().unwrap();
    assert!(matches!(kind, ErrorKind::BrokenPipe | ErrorKind::ConnectionReset), "{kind:?}");
    assert_eq!(ask(&mut w, &mut r, br#"{"cmd":"version"}"#)["ok"], true);
}

#[test]
fn many_clients_at_once() {
    let d = Daemon::start("many");
    let mut conns: Vec<_> = (0..50).map(|_| d.connect()).collect();
    // Every client sends before any reads.
    for (i, (w, _)) in conns.iter_mut().enumerate() {
        writeln!(w, r#"{{"cmd":"initiate","peer":"p{i}"}}"#).unwrap();
    }
    for (i, (_, r)) in conns.iter_mut().enumerate() {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["data"]["initiated"], format!("p{i}"));
    }
    // Past the limit, a client is told and closed; after others leave, there is room again.
    let extra: Vec<_> = (0..20).map(|_| d.connect()).collect();
    let mut refused = 0;
    for (mut w, mut r) in extra {
        let _ = w.write_all(b"{\"cmd\":\"version\"}\n"); // a refused client may find the socket closed
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        refused += line.contains("too many clients") as usize;
    }
    assert_eq!(refused, 50 + 20 - rampart_control::ctl::server::MAX_CLIENTS);
    conns.clear();
    std::thread::sleep(Duration::from_millis(100));
    let (mut w, mut r) = d.connect();
    assert_eq!(ask(&mut w, &mut r, br#"{"cmd":"version"}"#)["ok"], true);
}

#[test]
fn the_cli_client() {
    let d = Daemon::start("cli");
    let sock = ["--socket".to_string(), d.path.display().to_string()];
    let args = |s: &str| sock.iter().cloned().chain(s.split_whitespace().map(String::from)).collect::<Vec<_>>();
    assert_eq!(client::run(&d.path, &args("list-sas")), Ok(()));
    assert_eq!(client::run(&d.path, &args("--json counters")), Ok(()));
    assert_eq!(client::run(&d.path, &args("initiate nobody")), Err("no peer `nobody`".into()));
    let v = client::call(&d.path, &Request::Counters).unwrap();
    assert_eq!(v["sas"][1]["spi"], "0xc0000001");
    let table = client::render(&v);
    assert!(table.contains("net1  0xc0000001  in     400  auth_failed=1        4"), "{table}");
    let missing = PathBuf::from("/nonexistent/rampart.sock");
    assert!(client::run(&missing, &args("version")[2..]).unwrap_err().contains("is rampart running"));
}

#[test]
fn bind_refuses_a_live_socket_and_replaces_a_stale_one() {
    let d = Daemon::start("bind");
    let e = Server::bind(&d.path).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    let stale = temp_socket("stale");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap()); // leaves the file behind
    assert!(stale.exists());
    let s = Server::bind(&stale).unwrap();
    drop(s);
    assert!(!stale.exists());
    let file = temp_socket("file");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"not a socket").unwrap();
    assert!(Server::bind(&file).is_err());
    assert!(file.exists());
}

/// Checks the text exposition format: HELP and TYPE before a family's samples, every
/// sample `name{labels} value` with a known family, and no family twice.
fn check_exposition(text: &str) -> Result<usize, String> {
    let mut typed: Vec<String> = Vec::new();
    let mut helped: Vec<String> = Vec::new();
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().ok_or("empty HELP")?;
            if helped.iter().any(|n| n == name) {
                return Err(format!("HELP twice: {line}"));
            }
            helped.push(name.into());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("bad TYPE")?;
            if !["counter", "gauge"].contains(&kind) || typed.iter().any(|n| n == name) || helped.last().map(String::as_str) != Some(name) {
                return Err(format!("bad TYPE: {line}"));
            }
            typed.push(name.into());
        } else {
            let name_end = line.find(['{', ' ']).ok_or(format!("no value: {line}"))?;
            let name = &line[..name_end];
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                return Err(format!("bad name: {line}"));
            }
            if typed.last().map(String::as_str) != Some(name) {
                return Err(format!("sample outside its family: {line}"));
            }
            let mut rest = &line[name_end..];
            if let Some(r) = rest.strip_prefix('{') {
                // label="value" pairs with \\, \" and \n escapes
                let mut chars = r.char_indices();
                let end;
                loop {
                    let (i, c) = chars.next().ok_or(format!("unterminated labels: {line}"))?;
                    if c == '}' {
                        end = i;
                        break;
                    }
                    if c == '=' {
                        if chars.next().map(|(_, c)| c) != Some('"') {
                            return Err(format!("unquoted label: {line}"));
                        }
                        loop {
                            match chars.next().ok_or(format!("unterminated value: {line}"))?.1 {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('\\' | '"' | 'n') => {}
                                    _ => return Err(format!("bad escape: {line}")),
                                },
                                '"' => break,
                                '\n' => return Err(format!("raw newline: {line}")),
                                _ => {}
                            }
                        }
                    } else if !(c.is_ascii_alphanumeric() || c == '_' || c == ',') {
                        return Err(format!("bad label name: {line}"));
                    }
                }
                rest = &r[end + 1..];
            }
            let value = rest.strip_prefix(' ').ok_or(format!("no space before value: {line}"))?;
            value.parse::<f64>().map_err(|_| format!("bad value: {line}"))?;
            samples += 1;
        }
    }
    Ok(samples)
}

#[test]
fn metrics_text_is_well_formed() {
    let text = metrics::render(&sample_snapshot());
    let n = check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // 1 uptime + 8 per port x2 + 10 per worker + 1 worker drop + 2 per SA x2 + 1 SA drop
    assert_eq!(n, 1 + 16 + 10 + 1 + 4 + 1, "{text}");
    for want in [
        "rampart_up_seconds 12.5",
        r#"rampart_port_rx_packets_total{port="lan"} 10"#,
        r#"rampart_port_tx_packets_total{port="w\"a\\n\nx"} 3"#,
        r#"rampart_worker_drops_total{worker="0",reason="replay"} 2"#,
        r#"rampart_worker_flow_evictions_total{worker="0"} 3"#,
        r#"rampart_sa_packets_total{sa="net1",spi="0x00000101",dir="out"} 5"#,
        r#"rampart_sa_drops_total{sa="net1",spi="0xc0000001",dir="in",reason="auth_failed"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == want), "missing {want}\n{text}");
    }
    assert_eq!(check_exposition(&metrics::render(&MetricsSnapshot::default())), Ok(1));
    assert!(check_exposition("x 1\n").is_err());
    assert!(check_exposition("# HELP x h\n# TYPE x counter\nx{a=\"b} 1\n").is_err());
}

fn http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn metrics_over_http() {
    let d = Daemon::start("http");
    let r = http(d.http, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
    assert!(check_exposition(body).is_ok());
    assert!(http(d.http, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(d.http, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(http(d.http, b"\x16\x03\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(http(d.http, &vec![b'A'; 9000]).starts_with("HTTP/1.1 431"));
    // Half a request and a hang-up: nothing, and the server is fine.
    assert_eq!(http(d.http, b"GET /met"), "");
    assert!(http(d.http, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
}
