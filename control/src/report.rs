//! Counters as text: per port (the device's own and ours), per worker, per SA, with drops by reason.

use rampart_dataplane::gateway::Gateway;
use rampart_dataplane::tables::SaEntry;
use std::fmt::Write;
use std::time::Instant;

pub fn mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn drops(list: Vec<(&'static str, u64)>) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter().map(|(n, c)| format!("{n}={c}")).collect::<Vec<_>>().join(" ")
}

pub fn text(gw: &Gateway, started: Instant) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "== rampart counters (up {:.1} s)", started.elapsed().as_secs_f64());
    for (i, p) in gw.ports.iter().enumerate() {
        let st = p.stats();
        let _ = writeln!(
            s,
            "port {i} {}: rx {} pkts {} bytes, tx {} pkts {} bytes, missed {}, rx errors {}, tx errors {}, no mbuf {}",
            p.name(), st.ipackets, st.ibytes, st.opackets, st.obytes, st.imissed, st.ierrors, st.oerrors, st.rx_nombuf
        );
    }
    for (i, w) in gw.shared.iter().enumerate() {
        let c = &w.counters;
        let _ = writeln!(
            s,
            "worker {i}: rx {} tx {} encrypted {} decrypted {} bypassed {} local {} exceptions {} flow hits {} misses {}; drops: {}",
            c.rx_packets.get(), c.tx_packets.get(), c.encrypted.get(), c.decrypted.get(), c.bypassed.get(),
            c.local.get(), c.exceptions.get(), c.flow_hits.get(), c.flow_misses.get(), drops(c.drops.nonzero())
        );
    }
    if let Some(p) = gw.publisher.as_ref() {
        let t = p.current();
        let mut sas: Vec<&SaEntry> = t.out_sa.iter().flatten().map(|a| &**a).collect();
        sas.sort_by_key(|e| e as *const _ as usize);
        sas.dedup_by_key(|e| *e as *const _ as usize);
        for e in sas {
            sa_line(&mut s, e, "out");
        }
        let mut ins: Vec<&SaEntry> = t.sad_in.values().map(|a| &**a).collect();
        ins.sort_by_key(|e| e.sa.spi());
        for e in ins {
            sa_line(&mut s, e, "in");
        }
    }
    s
}

fn sa_line(s: &mut String, e: &SaEntry, dir: &str) {
    let st = e.sa.stats();
    let _ = writeln!(s, "sa {} {dir} spi {:#010x}: {} pkts {} bytes; drops: {}", e.name, e.sa.spi(), st.packets, st.bytes, drops(e.drops.nonzero()));
}
