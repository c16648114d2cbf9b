//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers that UDP and ICMPv6
//! fold into theirs.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The one's complement sum of `data` as big-endian 16-bit words (odd tail padded), folded
/// to 16 bits. The sum is taken over native-endian 32-bit words and swapped once at the end,
/// which gives the same result (RFC 1071 2(B)) in a quarter of the additions.
pub fn sum(data: &[u8]) -> u32 {
    let word = |c: &[u8]| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64;
    // An IPv4 header without options, the sum every packet takes: five words, no loop.
    if let Ok(h) = <&[u8; 20]>::try_from(data) {
        let acc = word(&h[0..4]) + word(&h[4..8]) + word(&h[8..12]) + word(&h[12..16]) + word(&h[16..20]);
        return u16::from_be(fold(fold64(acc))) as u32;
    }
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += word(c);
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

/// Two end-around carries bring any 64-bit sum to 32 bits: the first leaves at most
/// 2^33 - 2, whose high part is then at most 1 and its low part at most 2^32 - 2.
fn fold64(acc: u64) -> u32 {
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    ((acc & 0xffff_ffff) + (acc >> 32)) as u32
}

/// Folds a running sum to 16 bits: two end-around carries always suffice, as in `fold64`.
pub fn fold(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    ((acc & 0xffff) + (acc >> 16)) as u16
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
        // The most carries: every word all ones, in the 20-byte path and the loop.
        assert_eq!(fold(sum(&[0xff; 20])), naive(&[0xff; 20]));
        assert_eq!(fold(sum(&[0xff; 24])), naive(&[0xff; 24]));
        assert_eq!(fold(u32::MAX), 0xffff);
        assert_eq!(fold64(u64::MAX), u32::MAX);
        assert_eq!(fold(fold64(u64::MAX)), 0xffff);
    }
}
