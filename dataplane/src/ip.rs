//! One view over an IPv4 or IPv6 packet, for the fields the worker needs whatever the family.

use crate::wire::{ipv4, ipv6, WireError};
use std::net::IpAddr;

pub enum IpView<'a> {
    V4(ipv4::Packet<&'a [u8]>),
    V6(ipv6::Packet<&'a [u8]>),
}

impl<'a> IpView<'a> {
    /// A packet that starts at its IP header; lengths are checked once here.
    #[inline]
    pub fn parse(b: &'a [u8]) -> Result<Self, WireError> {
        match b.first().map(|v| v >> 4) {
            Some(4) => Ok(IpView::V4(ipv4::Packet::new_checked(b)?)),
            Some(6) => Ok(IpView::V6(ipv6::Packet::new_checked(b)?)),
            Some(_) => Err(WireError::Malformed),
            None => Err(WireError::Truncated),
        }
    }
    #[inline]
    pub fn src(&self) -> IpAddr {
        match self {
            IpView::V4(p) => p.src_addr().into(),
            IpView::V6(p) => p.src_addr().into(),
        }
    }
    #[inline]
    pub fn dst(&self) -> IpAddr {
        match self {
            IpView::V4(p) => p.dst_addr().into(),
            IpView::V6(p) => p.dst_addr().into(),
        }
    }
    /// The length the header claims, header included.
    #[inline]
    pub fn total_len(&self) -> usize {
        match self {
            IpView::V4(p) => p.total_len() as usize,
            IpView::V6(p) => p.total_len(),
        }
    }
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        match self {
            IpView::V4(p) => p.ttl(),
            IpView::V6(p) => p.hop_limit(),
        }
    }
    /// The protocol after the fixed header (for IPv6, the first next header).
    #[inline]
    pub fn proto(&self) -> u8 {
        match self {
            IpView::V4(p) => p.protocol(),
            IpView::V6(p) => p.next_header(),
        }
    }
    /// What follows the fixed header (IPv4 options excluded), up to the IP length.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        match self {
            IpView::V4(p) => {
                let b: &'a [u8] = p.clone().into_inner();
                &b[p.header_len()..p.total_len() as usize]
            }
            IpView::V6(p) => {
                let b: &'a [u8] = p.clone().into_inner();
                &b[ipv6::HEADER_LEN..p.total_len()]
            }
        }
    }
}

/// The TTL or hop limit of a packet whose header was checked (0 if it is not IP).
#[inline]
pub fn hop_limit(b: &[u8]) -> u8 {
    let at = match b.first().map(|v| v >> 4) {
        Some(4) => 8,
        Some(6) => 7,
        _ => return 0,
    };
    b.get(at).copied().unwrap_or(0)
}

/// Decrements the TTL or hop limit of a packet being forwarded (the IPv4 checksum follows).
/// The caller has parsed the header and checked that the TTL is above 1; this only touches
/// the TTL and checksum bytes (a buffer too short for them is left alone).
#[inline]
pub fn decrement_ttl(b: &mut [u8]) {
    match b.first().map(|v| v >> 4) {
        Some(4) => {
            if let Some(h) = b.get_mut(..12) {
                // RFC 1624: the TTL is the high byte of its 16-bit word, so the header sum
                // drops by 0x0100 and the checksum rises by as much, end-around carry kept.
                let sum = u16::from_be_bytes([h[10], h[11]]) as u32 + 0x0100;
                h[8] = h[8].saturating_sub(1);
                h[10..12].copy_from_slice(&((sum + (sum >> 16)) as u16).to_be_bytes());
            }
        }
        Some(6) => {
            if let Some(h) = b.get_mut(7) {
                *h = h.saturating_sub(1);
            }
        }
        _ => {}
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_limit_reads_either_family() {
        let mut v4 = [0u8; 20];
        (v4[0], v4[8]) = (0x45, 17);
        let mut v6 = [0u8; 40];
        (v6[0], v6[7]) = (0x60, 3);
        assert_eq!((hop_limit(&v4), hop_limit(&v6)), (17, 3));
        assert_eq!((hop_limit(&[]), hop_limit(&[0x45, 0, 0]), hop_limit(&[0x20; 20])), (0, 0, 0));
        decrement_ttl(&mut v6);
        assert_eq!(hop_limit(&v6), 2);
    }

    #[test]
    fn ttl_decrement_keeps_the_checksum_valid() {
        for seed in 0u32..2000 {
            let mut h = [0u8; 20];
            for (i, b) in h.iter_mut().enumerate() {
                *b = (seed.wrapping_mul(2654435761).rotate_left(i as u32 * 3) >> 7) as u8;
            }
            h[0] = 0x45;
            h[2..4].copy_from_slice(&20u16.to_be_bytes());
            h[8] = 2 + (seed % 250) as u8;
            let mut p = ipv4::Packet::new_checked(&mut h[..]).unwrap();
            p.fill_checksum();
            let ttl = p.ttl();
            decrement_ttl(&mut h);
            let p = ipv4::Packet::new_checked(&h[..]).unwrap();
            assert_eq!(p.ttl(), ttl - 1);
            assert!(p.verify_checksum(), "seed {seed}");
        }
    }
}
