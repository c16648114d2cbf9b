//! The 5-tuple a packet is classified by (RFC 4301 4.4.1.1 selectors).

use super::{ip_proto, ipv4, ipv6, Result, WireError};

/// The key itself is the compact one the SPD and the flow cache use: addresses, protocol and
/// ports. Ports are 0 when the protocol has none, for non-first fragments, and when IPv6
/// extension headers hide the upper layer. For ICMP and ICMPv6, `sport` is the message type
/// and `dport` the code, as RFC 4301 4.4.1.1 allows.
pub use crate::spd::FlowKey;

impl FlowKey {
    /// Extracts the key from a packet that starts at its IPv4 or IPv6 header.
    #[inline]
    pub fn extract(l3: &[u8]) -> Result<FlowKey> {
        let mut k = FlowKey::ZERO;
        FlowKey::extract_into(l3, &mut k)?;
        Ok(k)
    }

    /// `extract` into a key in place (the packet path: the words are stored where they are
    /// read, not built elsewhere and copied). On error `key` is unspecified.
    #[inline]
    pub fn extract_into(l3: &[u8], key: &mut FlowKey) -> Result<()> {
        match l3.first().map(|b| b >> 4) {
            Some(4) => {
                let p = ipv4::Packet::new_checked(l3)?;
                let l4 = if p.frag_offset() != 0 {
                    &[][..]
                } else {
                    p.payload()
                };
                let (sport, dport) = ports(p.protocol(), l4)?;
                key.set_v4(p.src_addr().octets(), p.dst_addr().octets(), p.protocol(), sport, dport);
                Ok(())
            }
            Some(6) => {
                let p = ipv6::Packet::new_checked(l3)?;
                let nh = p.next_header();
                let (sport, dport) = if ip_proto::is_ipv6_ext(nh) {
                    (0, 0)
                } else {
                    ports(nh, p.payload())?
                };
                *key = FlowKey::v6(p.src_addr().octets(), p.dst_addr().octets(), nh, sport, dport);
                Ok(())
            }
            Some(_) => Err(WireError::Malformed),
            None => Err(WireError::Truncated),
        }
    }
}

fn ports(proto: u8, l4: &[u8]) -> Result<(u16, u16)> {
    match proto {
        ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP => {
            // Only a non-first fragment has no L4 header; a first one too short is bad input.
            if l4.is_empty() {
                return Ok((0, 0));
            }
            let b = l4.get(..4).ok_or(WireError::Truncated)?;
            Ok((
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            ))
        }
        ip_proto::ICMP | ip_proto::ICMPV6 => match l4 {
            [] => Ok((0, 0)),
            [t] => Ok((*t as u16, 0)),
            [t, c, ..] => Ok((*t as u16, *c as u16)),
        },
        _ => Ok((0, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn udp_v4_icmp_v4_and_v6_ext() {
        // draft-mcgrew-gcm-test-01: a DNS query (UDP 2715 -> 61782) and a ping.
        let udp = hex::decode(
            "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000\
            00000000045f736970045f756470037369700963796265726369747902646b000021000101020201",
        )
        .unwrap();
        let k = FlowKey::extract(&udp).unwrap();
        assert_eq!((k.proto(), k.sport(), k.dport()), (17, 0x0a9b, 0xf156));
        assert_eq!(k.src(), "192.168.1.2".parse::<IpAddr>().unwrap());
        let ping = hex::decode(
            "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364\
            65666768696a6b6c6d6e6f7071727374",
        )
        .unwrap();
        let k = FlowKey::extract(&ping).unwrap();
        assert_eq!((k.proto(), k.sport(), k.dport()), (1, 8, 0));
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[5] = 8;
        v6[6] = ip_proto::IPV6_FRAG;
        let k = FlowKey::extract(&v6).unwrap();
        assert_eq!((k.proto(), k.sport(), k.dport()), (44, 0, 0));
        assert!(FlowKey::extract(&[]).is_err());
        assert!(FlowKey::extract(&[0x50; 40]).is_err());
    }
}
