//! ARP (RFC 826) for Ethernet and IPv4 only: the one pairing the appliance answers.

use super::ethernet::EthernetAddress;
use super::{be16, put16, Result, WireError};
use std::net::Ipv4Addr;

pub mod op {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

pub const PACKET_LEN: usize = 28;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks the length and that the hardware/protocol types are Ethernet/IPv4.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if be16(b, field::HTYPE) != 1
            || be16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(WireError::Malformed);
        }
        Ok(Packet { buffer })
    }

    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }

    pub fn sender_hw_addr(&self) -> EthernetAddress {
        self.buffer.as_ref()[field::SHA]
            .try_into()
            .unwrap_or_default()
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[field::SPA])
    }

    pub fn target_hw_addr(&self) -> EthernetAddress {
        self.buffer.as_ref()[field::THA]
            .try_into()
            .unwrap_or_default()
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[field::TPA])
    }
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the fixed Ethernet/IPv4 preamble (types and lengths).
    pub fn set_eth_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        put16(b, field::HTYPE, 1);
        put16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    pub fn set_operation(&mut self, op: u16) {
        put16(self.buffer.as_mut(), field::OPER, op);
    }

    pub fn set_sender(&mut self, hw: EthernetAddress, ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[field::SHA].copy_from_slice(&hw);
        b[field::SPA].copy_from_slice(&ip.octets());
    }

    pub fn set_target(&mut self, hw: EthernetAddress, ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[field::THA].copy_from_slice(&hw);
        b[field::TPA].copy_from_slice(&ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_roundtrip_and_reject_other_types() {
        let mut b = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_eth_ipv4();
        p.set_operation(op::REQUEST);
        p.set_sender([2, 0, 0, 0, 0, 1], Ipv4Addr::new(192, 0, 2, 1));
        p.set_target([0; 6], Ipv4Addr::new(192, 0, 2, 2));
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), op::REQUEST);
        assert_eq!(p.sender_hw_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.target_ip(), Ipv4Addr::new(192, 0, 2, 2));
        let mut bad = b;
        bad[1] = 6; // IEEE 802 hardware type
        assert_eq!(
            Packet::new_checked(&bad[..]).err(),
            Some(WireError::Malformed)
        );
        assert_eq!(
            Packet::new_checked(&b[..27]).err(),
            Some(WireError::Truncated)
        );
    }
}
