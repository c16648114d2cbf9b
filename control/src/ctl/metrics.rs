//! Counters as one plain snapshot (the `counters` reply and the source of everything else),
//! rendered in the Prometheus text exposition format and served by a minimal, non-blocking
//! HTTP listener on the control thread's mio loop (`GET /metrics`).

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use rampart_dataplane::gateway::Gateway;
use rampart_dataplane::tables::SaEntry;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt::{Display, Write as _};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Everything the daemon counts, read once.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MetricsSnapshot {
    pub uptime_seconds: f64,
    pub ports: Vec<PortMetrics>,
    pub workers: Vec<WorkerMetrics>,
    pub sas: Vec<SaMetrics>,
}

/// A port's device counters (DPDK's `rte_eth_stats`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PortMetrics {
    pub port: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nombuf: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerMetrics {
    pub worker: usize,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub encrypted: u64,
    pub decrypted: u64,
    pub bypassed: u64,
    pub local: u64,
    pub exceptions: u64,
    pub flow_hits: u64,
    pub flow_misses: u64,
    pub flow_evictions: u64,
    /// Non-zero drop counts by reason.
    pub drops: BTreeMap<String, u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SaDir {
    In,
    Out,
}

impl SaDir {
    pub fn as_str(self) -> &'static str {
        match self {
            SaDir::In => "in",
            SaDir::Out => "out",
        }
    }
}

/// One direction of a Child SA.
#[derive(Clone, Debug, Serialize)]
pub struct SaMetrics {
    pub sa: String,
    #[serde(serialize_with = "hex_spi")]
    pub spi: u32,
    pub dir: SaDir,
    pub packets: u64,
    /// Bytes of inner (plaintext) packets.
    pub bytes: u64,
    /// Non-zero drop counts by reason.
    pub drops: BTreeMap<String, u64>,
}

fn hex_spi<S: serde::Serializer>(spi: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&spi_str(*spi))
}

fn spi_str(spi: u32) -> String {
    format!("{spi:#010x}")
}

fn drop_map(list: Vec<(&'static str, u64)>) -> BTreeMap<String, u64> {
    list.into_iter().map(|(r, n)| (r.to_owned(), n)).collect()
}

/// Reads the gateway's counters. `port_names` are the config's names by port index; a port
/// without one is named by its DPDK device.
pub fn snapshot(gw: &Gateway, port_names: &[String], started: Instant) -> MetricsSnapshot {
    let ports = gw
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let st = p.stats();
            PortMetrics {
                port: port_names.get(i).cloned().unwrap_or_else(|| p.name()),
                rx_packets: st.ipackets,
                rx_bytes: st.ibytes,
                tx_packets: st.opackets,
                tx_bytes: st.obytes,
                rx_missed: st.imissed,
                rx_errors: st.ierrors,
                tx_errors: st.oerrors,
                rx_nombuf: st.rx_nombuf,
            }
        })
        .collect();
    let workers = gw
        .shared
        .iter()
        .enumerate()
        .map(|(worker, w)| {
            let c = &w.counters;
            WorkerMetrics {
                worker,
                rx_packets: c.rx_packets.get(),
                tx_packets: c.tx_packets.get(),
                encrypted: c.encrypted.get(),
                decrypted: c.decrypted.get(),
                bypassed: c.bypassed.get(),
                local: c.local.get(),
                exceptions: c.exceptions.get(),
                flow_hits: c.flow_hits.get(),
                flow_misses: c.flow_misses.get(),
                flow_evictions: c.flow_evictions.get(),
                drops: drop_map(c.drops.nonzero()),
            }
        })
        .collect();
    let mut sas = Vec::new();
    if let Some(p) = gw.publisher.as_ref() {
        let t = p.current();
        let sa = |e: &SaEntry, dir| {
            let st = e.sa.stats();
            SaMetrics { sa: e.name.clone(), spi: e.sa.spi(), dir, packets: st.packets, bytes: st.bytes, drops: drop_map(e.drops.nonzero()) }
        };
        // Several policies may share one outbound SA.
        let mut seen = HashSet::new();
        for e in t.out_sa.iter().flatten() {
            if seen.insert(&**e as *const SaEntry) {
                sas.push(sa(e, SaDir::Out));
            }
        }
        sas.extend(t.sad_in.values().map(|e| sa(e, SaDir::In)));
    }
    sas.sort_by(|a, b| (&a.sa, a.dir, a.spi).cmp(&(&b.sa, b.dir, b.spi)));
    MetricsSnapshot { uptime_seconds: started.elapsed().as_secs_f64(), ports, workers, sas }
}

/// Renders a snapshot in the Prometheus text exposition format (version 0.0.4).
pub fn render(s: &MetricsSnapshot) -> String {
    let mut out = String::new();
    family(&mut out, "rampart_up_seconds", "gauge", "Seconds since the daemon started.");
    sample(&mut out, "rampart_up_seconds", &[], s.uptime_seconds);

    type PortField = (&'static str, &'static str, fn(&PortMetrics) -> u64);
    let port_fields: [PortField; 8] = [
        ("rx_packets", "Packets received by the port.", |p| p.rx_packets),
        ("rx_bytes", "Bytes received by the port.", |p| p.rx_bytes),
        ("tx_packets", "Packets sent by the port.", |p| p.tx_packets),
        ("tx_bytes", "Bytes sent by the port.", |p| p.tx_bytes),
        ("rx_missed", "Packets the port dropped because its RX queues were full.", |p| p.rx_missed),
        ("rx_errors", "Erroneous packets received by the port.", |p| p.rx_errors),
        ("tx_errors", "Packets the port failed to send.", |p| p.tx_errors),
        ("rx_nombuf", "RX mbuf allocation failures.", |p| p.rx_nombuf),
    ];
    for (field, help, get) in port_fields {
        let name = format!("rampart_port_{field}_total");
        family(&mut out, &name, "counter", help);
        for p in &s.ports {
            sample(&mut out, &name, &[("port", &p.port)], get(p));
        }
    }

    type WorkerField = (&'static str, &'static str, fn(&WorkerMetrics) -> u64);
    let worker_fields: [WorkerField; 10] = [
        ("rx_packets", "Packets the worker received.", |w| w.rx_packets),
        ("tx_packets", "Packets the worker sent.", |w| w.tx_packets),
        ("encrypted", "Packets the worker ESP-encapsulated.", |w| w.encrypted),
        ("decrypted", "Packets the worker ESP-decapsulated.", |w| w.decrypted),
        ("bypassed", "Packets forwarded in clear by a BYPASS policy.", |w| w.bypassed),
        ("local", "Packets for the gateway itself.", |w| w.local),
        ("exceptions", "Packets handed up to the control thread.", |w| w.exceptions),
        ("flow_hits", "Flow cache hits.", |w| w.flow_hits),
        ("flow_misses", "Flow cache misses.", |w| w.flow_misses),
        ("flow_evictions", "Flows that pushed a live one out of the flow cache (too small for the flows).", |w| w.flow_evictions),
    ];
    for (field, help, get) in worker_fields {
        let name = format!("rampart_worker_{field}_total");
        family(&mut out, &name, "counter", help);
        for w in &s.workers {
            sample(&mut out, &name, &[("worker", &w.worker.to_string())], get(w));
        }
    }
    family(&mut out, "rampart_worker_drops_total", "counter", "Packets the worker dropped, by reason.");
    for w in &s.workers {
        let worker = w.worker.to_string();
        for (reason, n) in &w.drops {
            sample(&mut out, "rampart_worker_drops_total", &[("worker", &worker), ("reason", reason)], n);
        }
    }

    type SaField = (&'static str, &'static str, fn(&SaMetrics) -> u64);
    let sa_fields: [SaField; 2] = [
        ("packets", "Packets through the SA.", |sa| sa.packets),
        ("bytes", "Inner (plaintext) bytes through the SA.", |sa| sa.bytes),
    ];
    for (field, help, get) in sa_fields {
        let name = format!("rampart_sa_{field}_total");
        family(&mut out, &name, "counter", help);
        for sa in &s.sas {
            let spi = spi_str(sa.spi);
            sample(&mut out, &name, &[("sa", &sa.sa), ("spi", &spi), ("dir", sa.dir.as_str())], get(sa));
        }
    }
    family(&mut out, "rampart_sa_drops_total", "counter", "Packets dropped on the SA, by reason.");
    for sa in &s.sas {
        let spi = spi_str(sa.spi);
        for (reason, n) in &sa.drops {
            let labels = [("sa", sa.sa.as_str()), ("spi", &spi), ("dir", sa.dir.as_str()), ("reason", reason)];
            sample(&mut out, "rampart_sa_drops_total", &labels, n);
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"");
            for ch in v.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// HTTP clients served at once; one more is closed at once.
pub const MAX_HTTP_CLIENTS: usize = 16;
/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// A connection that has not been answered and closed by then is dropped (`poll_idle`).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A minimal HTTP/1.1 server for Prometheus: `GET /metrics` answers 200, any other path 404,
/// any other method 405, garbage 400; every connection is closed after one response.
/// Uses tokens `base .. base + HttpServer::TOKENS`.
pub struct HttpServer {
    listener: TcpListener,
    registry: Option<Registry>,
    base: usize,
    conns: Vec<Option<HttpConn>>,
}

struct HttpConn {
    stream: TcpStream,
    input: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    since: Instant,
}

impl HttpServer {
    pub const TOKENS: usize = 1 + MAX_HTTP_CLIENTS;

    pub fn bind(addr: SocketAddr) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("metrics {addr}: {e}")))?;
        Ok(HttpServer { listener, registry: None, base: 0, conns: (0..MAX_HTTP_CLIENTS).map(|_| None).collect() })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn register(&mut self, registry: &Registry, base: Token) -> io::Result<()> {
        registry.register(&mut self.listener, base, Interest::READABLE)?;
        self.registry = Some(registry.try_clone()?);
        self.base = base.0;
        Ok(())
    }

    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.base && token.0 < self.base + Self::TOKENS
    }

    /// Serves one event. `metrics` is called only for a `GET /metrics`.
    pub fn handle_event(&mut self, event: &Event, metrics: &mut dyn FnMut() -> String) {
        let token = event.token();
        if token.0 == self.base {
            self.accept();
        } else if self.owns(token) {
            let slot = token.0 - self.base - 1;
            let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else { return };
            if !c.serve(metrics) {
                self.close(slot);
            }
        }
    }

    /// Drops connections older than the timeout. Call now and then (once a second is plenty).
    pub fn poll_idle(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            if self.conns[slot].as_ref().is_some_and(|c| now.duration_since(c.since) > HTTP_TIMEOUT) {
                self.close(slot);
            }
        }
    }

    fn close(&mut self, slot: usize) {
        if let (Some(mut c), Some(registry)) = (self.conns[slot].take(), self.registry.as_ref()) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    fn accept(&mut self) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::ConnectionAborted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(target: "ctl", "metrics accept: {e}");
                    return;
                }
            };
            let (Some(slot), Some(registry)) = (self.conns.iter().position(Option::is_none), self.registry.as_ref()) else {
                continue;
            };
            if registry.register(&mut stream, Token(self.base + 1 + slot), Interest::READABLE | Interest::WRITABLE).is_ok() {
                self.conns[slot] = Some(HttpConn { stream, input: Vec::new(), out: Vec::new(), sent: 0, since: Instant::now() });
            }
        }
    }
}

impl HttpConn {
    /// Reads the request head, answers once, writes. False: close now.
    fn serve(&mut self, metrics: &mut dyn FnMut() -> String) -> bool {
        if self.out.is_empty() {
            let mut buf = [0u8; 4096];
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        self.input.extend_from_slice(&buf[..n]);
                        if let Some(end) = self.input.windows(4).position(|w| w == b"\r\n\r\n") {
                            self.out = respond(&self.input[..end], metrics);
                            break;
                        }
                        if self.input.len() > MAX_HEAD {
                            self.out = response("431 Request Header Fields Too Large", "request head too large\n");
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        }
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return false,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

fn respond(head: &[u8], metrics: &mut dyn FnMut() -> String) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or_default().trim_end();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return response("400 Bad Request", "bad request\n");
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return response("400 Bad Request", "bad request\n");
    }
    if method != "GET" {
        return response("405 Method Not Allowed", "only GET\n");
    }
    match target.split('?').next() {
        Some("/metrics") => {
            let body = metrics();
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body.as_bytes());
            r
        }
        _ => response("404 Not Found", "not found; try /metrics\n"),
    }
}

fn response(status: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        .into_bytes()
}
