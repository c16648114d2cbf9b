//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers that UDP and ICMPv6
//! fold into theirs.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The one's complement sum of `data` as big-endian 16-bit words (odd tail padded), folded
/// to 16 bits. The sum is taken over native-endian 32-bit words and swapped once at the end,
/// which gives the same result (RFC 1071 2(B)) in a quarter of the additions.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for c in &mut pairs {
        acc += u16::from_ne_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = pairs.remainder() {
        acc += u16::from_ne_bytes([*last, 0]) as u64;
    }
    let native = fold(fold64(acc));
    u16::from_be(native) as u32
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

    #[test]
    fn word_sum_equals_rfc1071_definition() {
        // The definition: big-endian 16-bit words, odd byte padded, end-around carry.
        let naive = |d: &[u8]| {
            let mut acc: u32 = 0;
            for c in d.chunks(2) {
                acc += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
                acc = (acc & 0xffff) + (acc >> 16);
            }
            acc as u16
        };
        let mut x: u32 = 0x1234_5678;
        let data: Vec<u8> = (0..2000)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        for len in 0..300 {
            for off in 0..4 {
                let d = &data[off..off + len];
                assert_eq!(fold(sum(d)), naive(d), "len {len} off {off}");
            }
        }
        assert_eq!(fold(sum(&[0xff; 1999])), naive(&[0xff; 1999]));
    }
}
