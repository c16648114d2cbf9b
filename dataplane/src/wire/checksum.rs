//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers that UDP and ICMPv6
//! fold into theirs.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The 32-bit one's complement sum of `data` as big-endian 16-bit words (odd tail padded).
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u64) << 8;
    }
    fold64(acc)
}

fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a running sum to 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Adds partial sums.
pub fn combine(parts: &[u32]) -> u32 {
    fold64(parts.iter().map(|&p| p as u64).sum())
}

/// The checksum field value for `data` alone: the complement of its folded sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// The IPv4 pseudo-header sum (RFC 768).
pub fn pseudo_v4(src: &Ipv4Addr, dst: &Ipv4Addr, proto: u8, len: u32) -> u32 {
    combine(&[sum(&src.octets()), sum(&dst.octets()), proto as u32, len])
}

/// The IPv6 pseudo-header sum (RFC 8200 8.1).
pub fn pseudo_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u32 {
    combine(&[
        sum(&src.octets()),
        sum(&dst.octets()),
        next_header as u32,
        len >> 16,
        len & 0xffff,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 1.2: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        assert_eq!(
            fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
        assert_eq!(fold(sum(&[0xff])), 0xff00);
    }
}
