//! Counters as text, for SIGUSR1 and exit: the same snapshot that the control socket and the
//! metrics listener serve, one line per port, worker and SA, with drops by reason.

use crate::ctl::metrics::MetricsSnapshot;
use std::collections::BTreeMap;
use std::fmt::Write;

pub fn mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn drops(d: &BTreeMap<String, u64>) -> String {
    if d.is_empty() {
        return "none".into();
    }
    d.iter().map(|(n, c)| format!("{n}={c}")).collect::<Vec<_>>().join(" ")
}

pub fn text(m: &MetricsSnapshot) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "== rampart counters (up {:.1} s)", m.uptime_seconds);
    for (i, p) in m.ports.iter().enumerate() {
        let _ = writeln!(
            s,
            "port {i} {}: rx {} pkts {} bytes, tx {} pkts {} bytes, missed {}, rx errors {}, tx errors {}, no mbuf {}",
            p.port, p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes, p.rx_missed, p.rx_errors, p.tx_errors, p.rx_nombuf
        );
    }
    for w in &m.workers {
        let _ = writeln!(
            s,
            "worker {}: rx {} tx {} encrypted {} decrypted {} bypassed {} local {} exceptions {} flow hits {} misses {} evictions {}; drops: {}",
            w.worker, w.rx_packets, w.tx_packets, w.encrypted, w.decrypted, w.bypassed, w.local, w.exceptions,
            w.flow_hits, w.flow_misses, w.flow_evictions, drops(&w.drops)
        );
    }
    for e in &m.sas {
        let _ = writeln!(s, "sa {} {} spi {:#010x}: {} pkts {} bytes; drops: {}", e.sa, e.dir.as_str(), e.spi, e.packets, e.bytes, drops(&e.drops));
    }
    s
}
