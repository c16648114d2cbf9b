//! Typed views over packet bytes (smoltcp style): each header is a `Packet<T: AsRef<[u8]>>`
//! whose `new_checked` validates lengths once, so no accessor can panic afterwards.

pub mod arp;
pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod flow;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

pub use flow::FlowKey;

/// Why a buffer is not a valid header of the kind asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The buffer is shorter than the header or a length field says.
    Truncated,
    /// A field holds a value the header cannot have (version, lengths, option layout).
    Malformed,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated packet",
            WireError::Malformed => "malformed packet",
        })
    }
}

impl std::error::Error for WireError {}

pub type Result<T> = core::result::Result<T, WireError>;

/// IP protocol numbers (IANA) the dataplane looks at.
pub mod ip_proto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
    pub const SCTP: u8 = 132;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;

    /// True for the IPv6 extension headers (RFC 8200 4, IANA registry) that sit between
    /// the fixed header and the upper-layer header.
    pub fn is_ipv6_ext(nh: u8) -> bool {
        matches!(
            nh,
            HOPOPT
                | IPV6_ROUTE
                | IPV6_FRAG
                | ESP
                | AH
                | IPV6_OPTS
                | MOBILITY
                | HIP
                | SHIM6
                | 253
                | 254
        )
    }
}

/// ECN codepoints (RFC 3168), the low two bits of the TOS / traffic class octet.
pub mod ecn {
    pub const NOT_ECT: u8 = 0b00;
    pub const ECT1: u8 = 0b01;
    pub const ECT0: u8 = 0b10;
    pub const CE: u8 = 0b11;
}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Every parser over arbitrary bytes returns Ok or Err and never panics, and every
        // getter on an Ok view stays in bounds.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let b = &bytes[..];
            if let Ok(p) = ethernet::Frame::new_checked(b) {
                let _ = (p.dst_addr(), p.src_addr(), p.ethertype(), p.payload().len());
            }
            if let Ok(p) = arp::Packet::new_checked(b) {
                let _ = (p.operation(), p.sender_hw_addr(), p.sender_ip(), p.target_hw_addr(), p.target_ip());
            }
            if let Ok(p) = ipv4::Packet::new_checked(b) {
                let _ = (p.header_len(), p.total_len(), p.dscp(), p.ecn(), p.ident(), p.dont_frag(),
                    p.more_frags(), p.frag_offset(), p.ttl(), p.protocol(), p.src_addr(), p.dst_addr(),
                    p.verify_checksum(), p.payload().len(), p.options().len());
            }
            if let Ok(p) = ipv6::Packet::new_checked(b) {
                let _ = (p.traffic_class(), p.dscp(), p.ecn(), p.flow_label(), p.payload_len(),
                    p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr(), p.payload().len());
            }
            if let Ok(p) = udp::Packet::new_checked(b) {
                let _ = (p.src_port(), p.dst_port(), p.len(), p.checksum(), p.payload().len());
            }
            if let Ok(p) = icmpv4::Packet::new_checked(b) {
                let _ = (p.msg_type(), p.code(), p.echo_ident(), p.echo_seq_no(), p.verify_checksum(), p.data().len());
            }
            let a = std::net::Ipv6Addr::LOCALHOST;
            if let Ok(p) = icmpv6::Packet::new_checked(b) {
                let _ = (p.msg_type(), p.code(), p.verify_checksum(&a, &a), p.echo_ident(), p.echo_seq_no(),
                    p.target_addr(), p.na_flags(), p.lladdr_option(icmpv6::opt::SOURCE_LLADDR),
                    p.lladdr_option(icmpv6::opt::TARGET_LLADDR));
            }
            if let Ok(p) = esp::Packet::new_checked(b) {
                let _ = (p.spi(), p.seq_no(), p.payload().len());
            }
            let _ = FlowKey::extract(b);
        }
    }
}
