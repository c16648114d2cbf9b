//! ICMPv6 (RFC 4443) echo and Neighbor Discovery (RFC 4861) solicitations and
//! advertisements with link-layer address options; the checksum covers the pseudo-header.

use super::checksum;
use super::ethernet::EthernetAddress;
use super::{be16, put16, Result, WireError};
use std::net::Ipv6Addr;

pub mod msg_type {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Neighbor Discovery option types (RFC 4861 4.6).
pub mod opt {
    pub const SOURCE_LLADDR: u8 = 1;
    pub const TARGET_LLADDR: u8 = 2;
}

/// Neighbor Advertisement flags (RFC 4861 4.4), in the top bits of byte 4.
pub mod na_flag {
    pub const ROUTER: u8 = 0x80;
    pub const SOLICITED: u8 = 0x40;
    pub const OVERRIDE: u8 = 0x20;
}

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const NA_FLAGS: usize = 4;
    pub const TARGET: Range<usize> = 8..24;
    pub const ND_OPTIONS: usize = 24;
}

pub const HEADER_LEN: usize = 8;
pub const ND_LEN: usize = field::ND_OPTIONS;

/// A view of an ICMPv6 message (the whole buffer is the message).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks the 8-byte header, and for NS/NA the target address and the option layout,
    /// so that the ND accessors cannot run off the end.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Packet { buffer };
        if p.is_nd() {
            if p.buffer.as_ref().len() < ND_LEN {
                return Err(WireError::Truncated);
            }
            let mut opts = &p.buffer.as_ref()[field::ND_OPTIONS..];
            while !opts.is_empty() {
                // Each option is type, length in 8-byte units (never 0), data.
                let len = *opts.get(1).ok_or(WireError::Truncated)? as usize * 8;
                if len == 0 {
                    return Err(WireError::Malformed);
                }
                opts = opts.get(len..).ok_or(WireError::Truncated)?;
            }
        }
        Ok(p)
    }

    fn is_nd(&self) -> bool {
        matches!(
            self.msg_type(),
            msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT
        )
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Echo data (the bytes after the 8-byte header).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// The NS/NA target address; `None` for other messages.
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        if !self.is_nd() {
            return None;
        }
        let b: [u8; 16] = self.buffer.as_ref()[field::TARGET].try_into().ok()?;
        Some(Ipv6Addr::from(b))
    }

    /// The NA flags byte (`na_flag`); `None` unless this is an advertisement.
    pub fn na_flags(&self) -> Option<u8> {
        (self.msg_type() == msg_type::NEIGHBOR_ADVERT)
            .then(|| self.buffer.as_ref()[field::NA_FLAGS] & 0xe0)
    }

    /// The first Ethernet link-layer address option of `opt_type` (`opt::*`) in an NS/NA.
    pub fn lladdr_option(&self, opt_type: u8) -> Option<EthernetAddress> {
        if !self.is_nd() {
            return None;
        }
        let mut opts = self.buffer.as_ref().get(field::ND_OPTIONS..)?;
        while opts.len() >= 2 {
            let len = opts[1] as usize * 8;
            if len == 0 || len > opts.len() {
                return None;
            }
            if opts[0] == opt_type && len == 8 {
                return opts[2..8].try_into().ok();
            }
            opts = &opts[len..];
        }
        None
    }

    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_v6(src, dst, super::ip_proto::ICMPV6, b.len() as u32);
        checksum::fold(checksum::combine(&[ph, checksum::sum(b)])) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[field::TYPE] = t;
    }

    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }

    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }

    pub fn set_echo_seq_no(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_SEQNO, v);
    }

    /// Writes the NA flags and zeroes the reserved bits after them (needs `ND_LEN` bytes).
    pub fn set_na_flags(&mut self, flags: u8) -> Result<()> {
        let b = self
            .buffer
            .as_mut()
            .get_mut(field::NA_FLAGS..field::NA_FLAGS + 4)
            .ok_or(WireError::Truncated)?;
        b.copy_from_slice(&[flags & 0xe0, 0, 0, 0]);
        Ok(())
    }

    /// Writes the NS/NA target address (needs `ND_LEN` bytes).
    pub fn set_target_addr(&mut self, a: Ipv6Addr) -> Result<()> {
        let b = self
            .buffer
            .as_mut()
            .get_mut(field::TARGET)
            .ok_or(WireError::Truncated)?;
        b.copy_from_slice(&a.octets());
        Ok(())
    }

    /// Writes one 8-byte link-layer address option at `offset` from the message start.
    pub fn write_lladdr_option(
        &mut self,
        offset: usize,
        opt_type: u8,
        addr: EthernetAddress,
    ) -> Result<()> {
        let b = self
            .buffer
            .as_mut()
            .get_mut(offset..offset + 8)
            .ok_or(WireError::Truncated)?;
        b[0] = opt_type;
        b[1] = 1;
        b[2..].copy_from_slice(&addr);
        Ok(())
    }

    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_v6(src, dst, super::ip_proto::ICMPV6, b.len() as u32);
        let c = !checksum::fold(checksum::combine(&[ph, checksum::sum(b)]));
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbor_advert_with_target_lladdr() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::2".parse().unwrap();
        let mut b = [0u8; 32];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(msg_type::NEIGHBOR_ADVERT);
        p.set_na_flags(na_flag::SOLICITED | na_flag::OVERRIDE)
            .unwrap();
        p.set_target_addr(src).unwrap();
        p.write_lladdr_option(24, opt::TARGET_LLADDR, [2, 0, 0, 0, 0, 9])
            .unwrap();
        p.fill_checksum(&src, &dst);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(&src, &dst));
        assert!(!p.verify_checksum(&dst, &dst));
        assert_eq!(p.target_addr(), Some(src));
        assert_eq!(p.na_flags(), Some(0x60));
        assert_eq!(
            p.lladdr_option(opt::TARGET_LLADDR),
            Some([2, 0, 0, 0, 0, 9])
        );
        assert_eq!(p.lladdr_option(opt::SOURCE_LLADDR), None);
        let mut bad = b;
        bad[25] = 0; // an option length of 0 is forbidden (RFC 4861 4.6)
        assert_eq!(
            Packet::new_checked(&bad[..]).err(),
            Some(WireError::Malformed)
        );
        assert_eq!(
            Packet::new_checked(&b[..30]).err(),
            Some(WireError::Truncated)
        );
    }

    #[test]
    fn echo_request() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut b = [0u8; 12];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(msg_type::ECHO_REQUEST);
        p.set_echo_ident(7);
        p.set_echo_seq_no(9);
        p.fill_checksum(&src, &src);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.echo_ident(), p.echo_seq_no(), p.target_addr()),
            (7, 9, None)
        );
        assert!(p.verify_checksum(&src, &src));
    }
}
