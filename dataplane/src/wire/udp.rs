//! UDP headers (RFC 768) and their checksum over the IPv4 or IPv6 pseudo-header.

use super::checksum;
use super::{be16, put16, Result, WireError};
use std::net::IpAddr;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram; `payload()` stops at the UDP length field.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = be16(b, field::LENGTH) as usize;
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload.
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn is_empty(&self) -> bool {
        self.len() as usize == HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }

    /// True if the checksum verifies. A zero checksum means "none" (IPv4 only, RFC 768).
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        let dgram = &self.buffer.as_ref()[..self.len() as usize];
        checksum::fold(checksum::combine(&[
            pseudo(src, dst, dgram.len()),
            checksum::sum(dgram),
        ])) == 0xffff
    }
}

fn pseudo(src: &IpAddr, dst: &IpAddr, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            checksum::pseudo_v4(s, d, super::ip_proto::UDP, len as u32)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            checksum::pseudo_v6(s, d, super::ip_proto::UDP, len as u32)
        }
        // Mixed families cannot carry one datagram; the sum is then simply wrong.
        _ => 0,
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, p);
    }

    pub fn set_dst_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, p);
    }

    pub fn set_len(&mut self, l: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, l);
    }

    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Computes the checksum over the pseudo-header, header and payload (up to the length
    /// field). A computed 0 goes on the wire as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let len = self.len() as usize;
        let dgram = &self.buffer.as_ref()[..len];
        let c = !checksum::fold(checksum::combine(&[
            pseudo(src, dst, len),
            checksum::sum(dgram),
        ]));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_v4_and_v6() {
        let mut b = [0u8; 13];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(4500);
        p.set_dst_port(4500);
        p.set_len(13);
        p.payload_mut().copy_from_slice(b"hello");
        for (s, d) in [
            (
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "198.51.100.2".parse::<IpAddr>().unwrap(),
            ),
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            ),
        ] {
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            p.fill_checksum(&s, &d);
            assert!(p.verify_checksum(&s, &d));
            p.payload_mut()[0] ^= 1;
            assert!(!p.verify_checksum(&s, &d));
            p.payload_mut()[0] ^= 1;
        }
        assert_eq!(
            Packet::new_checked(&b[..12]).err(),
            Some(WireError::Truncated)
        );
    }
}
