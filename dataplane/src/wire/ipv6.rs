//! IPv6 fixed headers (RFC 8200). Extension headers are not chased: `next_header` is the
//! first one, and callers that need the upper layer treat an extension header as opaque.

use super::{be16, be32, put16, put32, Result, WireError};
use std::net::Ipv6Addr;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet; the buffer may run past `40 + payload_len`.
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
        let p = Packet { buffer };
        if p.version() != 6 {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < p.total_len() {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    fn word0(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    /// The traffic class octet: DSCP (6 bits) and ECN (2 bits).
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0b11
    }

    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The fixed header plus the payload length it announces.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        let b: [u8; 16] = self.buffer.as_ref()[field::SRC]
            .try_into()
            .unwrap_or_default();
        Ipv6Addr::from(b)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        let b: [u8; 16] = self.buffer.as_ref()[field::DST]
            .try_into()
            .unwrap_or_default();
        Ipv6Addr::from(b)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes version 6, the traffic class and the flow label.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | ((traffic_class as u32) << 20) | (flow_label & 0x000f_ffff);
        put32(self.buffer.as_mut(), field::VER_TC_FLOW, w);
    }

    pub fn set_traffic_class(&mut self, tc: u8) {
        let fl = self.flow_label();
        self.set_version_tc_flow(tc, fl);
    }

    pub fn set_ecn(&mut self, ecn: u8) {
        let tc = self.traffic_class();
        self.set_traffic_class((tc & !0b11) | (ecn & 0b11));
    }

    pub fn set_payload_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = nh;
    }

    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let tl = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..tl]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_roundtrip_and_length_checks() {
        let mut b = [0u8; 48];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_tc_flow(0xb9, 0x12345);
        p.set_payload_len(8);
        p.set_next_header(17);
        p.set_hop_limit(64);
        p.set_src_addr("2001:db8::1".parse().unwrap());
        p.set_ecn(crate::wire::ecn::ECT0);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.dscp(), p.ecn(), p.flow_label()),
            (0xb9 >> 2, 0b10, 0x12345)
        );
        assert_eq!(
            (p.payload_len(), p.next_header(), p.hop_limit()),
            (8, 17, 64)
        );
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 8);
        assert_eq!(
            Packet::new_checked(&b[..47]).err(),
            Some(WireError::Truncated)
        );
        b[0] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).err(),
            Some(WireError::Malformed)
        );
    }
}
