//! Pre-built frames: Eth/IPv4/UDP plaintext of an exact size, as the anchors' gen_pcap.py
//! writes them, and their ESP form sealed with the peer's SA.

use dpdk_sys::Mbuf;
use std::net::Ipv4Addr;

pub fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An Ethernet frame of `len` bytes (no FCS) carrying IPv4/UDP.
pub fn plaintext(len: usize, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, dst_mac: [u8; 6]) -> Vec<u8> {
    let len = len.max(14 + 20 + 8);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0x10, 0x02]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

/// The IP packet of `frame` as the gateway forwards it: TTL one less, checksum redone.
pub fn forwarded_ip(frame: &[u8], hops: u8) -> Vec<u8> {
    let mut ip = frame[14..].to_vec();
    ip[8] -= hops;
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = ipv4_checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip
}

/// Copies `bytes` into a fresh mbuf.
pub fn to_mbuf(pool: &dpdk_sys::Mempool, bytes: &[u8]) -> Option<Mbuf> {
    let mut m = pool.alloc()?;
    m.append(bytes.len() as u16)?.copy_from_slice(bytes);
    Some(m)
}

/// Writes Ethernet frames as a classic pcap file (microsecond stamps, all zero).
pub fn write_pcap(path: &str, frames: &[Vec<u8>]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(24 + frames.iter().map(|f| 16 + f.len()).sum::<usize>());
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for w in [0u32, 0, 65535, 1] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for f in frames {
        for w in [0u32, 0, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    std::fs::write(path, out)
}
