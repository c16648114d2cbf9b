//! Packets for the gateway itself: ESP to decrypt (raw or in UDP 4500), NAT keepalives,
//! pings to answer, ARP and IPv6 neighbour discovery; the rest goes to the control plane.
//! Answers are built in place in the packet that asked.

use crate::buf::PktBuf;
use crate::ip::IpView;
use crate::l3::Mac;
use crate::wire::{arp, ethernet, icmpv4, icmpv6, ip_proto, ipv4, ipv6, udp};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The NAT-T port (RFC 3948); IKE shares it, told apart by the non-ESP marker.
pub const NAT_T_PORT: u16 = 4500;
pub const IKE_PORT: u16 = 500;

#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// ESP, raw or UDP-encapsulated, with its SPI (`decap` checks the encapsulation
    /// against the SA's).
    Esp { spi: u32 },
    NatKeepalive,
    EchoRequest,
    NeighborSolicit { target: IpAddr, src_mac: Option<Mac> },
    NeighborAdvert { target: IpAddr, mac: Mac },
    /// For the control plane: IKE, and anything else addressed to us.
    Other,
    Malformed,
}

/// Sorts a packet for us (starting at its IP header).
pub fn classify(l3: &[u8]) -> Kind {
    let Ok(ip) = IpView::parse(l3) else { return Kind::Malformed };
    let payload = ip.payload();
    match ip.proto() {
        ip_proto::ESP => match payload.get(..4) {
            Some(s) => Kind::Esp { spi: u32::from_be_bytes([s[0], s[1], s[2], s[3]]) },
            None => Kind::Malformed,
        },
        ip_proto::UDP => {
            let Ok(u) = udp::Packet::new_checked(payload) else { return Kind::Malformed };
            if u.dst_port() != NAT_T_PORT {
                return Kind::Other;
            }
            match u.payload() {
                [0xff] => Kind::NatKeepalive,
                // A zero where the SPI would be is the non-ESP marker: IKE.
                [0, 0, 0, 0, ..] => Kind::Other,
                [a, b, c, d, ..] => Kind::Esp { spi: u32::from_be_bytes([*a, *b, *c, *d]) },
                _ => Kind::Malformed,
            }
        }
        ip_proto::ICMP => match icmpv4::Packet::new_checked(payload) {
            Ok(p) if p.msg_type() == icmpv4::msg_type::ECHO_REQUEST => Kind::EchoRequest,
            Ok(_) => Kind::Other,
            Err(_) => Kind::Malformed,
        },
        ip_proto::ICMPV6 => {
            let Ok(p) = icmpv6::Packet::new_checked(payload) else { return Kind::Malformed };
            match (p.msg_type(), p.target_addr()) {
                (icmpv6::msg_type::ECHO_REQUEST, _) => Kind::EchoRequest,
                (icmpv6::msg_type::NEIGHBOR_SOLICIT, Some(t)) => {
                    Kind::NeighborSolicit { target: t.into(), src_mac: p.lladdr_option(icmpv6::opt::SOURCE_LLADDR) }
                }
                (icmpv6::msg_type::NEIGHBOR_ADVERT, Some(t)) => match p.lladdr_option(icmpv6::opt::TARGET_LLADDR) {
                    Some(mac) => Kind::NeighborAdvert { target: t.into(), mac },
                    None => Kind::Other,
                },
                _ => Kind::Other,
            }
        }
        _ => Kind::Other,
    }
}

/// Turns an echo request into its reply: addresses swapped, fresh TTL, checksums redone.
pub fn echo_reply(l3: &mut [u8]) -> bool {
    match l3.first().map(|v| v >> 4) {
        Some(4) => {
            let Ok(mut p) = ipv4::Packet::new_checked(&mut *l3) else { return false };
            let (s, d) = (p.src_addr(), p.dst_addr());
            p.set_src_addr(d);
            p.set_dst_addr(s);
            p.set_ttl(64);
            p.fill_checksum();
            let hl = p.header_len();
            let total = p.total_len() as usize;
            let Ok(mut icmp) = icmpv4::Packet::new_checked(&mut l3[hl..total]) else { return false };
            icmp.set_msg_type(icmpv4::msg_type::ECHO_REPLY);
            icmp.fill_checksum();
            true
        }
        Some(6) => {
            let Ok(mut p) = ipv6::Packet::new_checked(&mut *l3) else { return false };
            let (s, d) = (p.src_addr(), p.dst_addr());
            p.set_src_addr(d);
            p.set_dst_addr(s);
            p.set_hop_limit(64);
            let total = p.total_len();
            let Ok(mut icmp) = icmpv6::Packet::new_checked(&mut l3[ipv6::HEADER_LEN..total]) else { return false };
            icmp.set_msg_type(icmpv6::msg_type::ECHO_REPLY);
            icmp.fill_checksum(&d, &s);
            true
        }
        _ => false,
    }
}

/// Turns a neighbour solicitation for one of our addresses into the solicited advertisement
/// (RFC 4861 7.2.4). Only solicitations that carry a source link-layer option have the room
/// for our target link-layer option; the others (DAD probes) get no answer.
pub fn neighbor_advert(l3: &mut [u8], mac: Mac) -> bool {
    let Ok(mut ip) = ipv6::Packet::new_checked(&mut *l3) else { return false };
    let (src, target_len) = (ip.src_addr(), ip.total_len() - ipv6::HEADER_LEN);
    if src.is_unspecified() || target_len != icmpv6::ND_LEN + 8 {
        return false;
    }
    let Ok(target) = icmpv6::Packet::new_checked(ip.payload()).map(|p| p.target_addr()) else { return false };
    let Some(target) = target else { return false };
    ip.set_src_addr(target);
    ip.set_dst_addr(src);
    ip.set_hop_limit(255);
    let Ok(mut nd) = icmpv6::Packet::new_checked(&mut l3[ipv6::HEADER_LEN..]) else { return false };
    nd.set_msg_type(icmpv6::msg_type::NEIGHBOR_ADVERT);
    let ok = nd.set_na_flags(icmpv6::na_flag::SOLICITED | icmpv6::na_flag::OVERRIDE).is_ok()
        && nd.write_lladdr_option(icmpv6::ND_LEN, icmpv6::opt::TARGET_LLADDR, mac).is_ok();
    nd.fill_checksum(&target, &src);
    ok
}

/// The facts of an ARP packet (Ethernet, IPv4).
pub struct ArpInfo {
    pub is_request: bool,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

/// Reads an ARP packet from a whole Ethernet frame.
pub fn arp(frame: &[u8]) -> Option<ArpInfo> {
    let p = arp::Packet::new_checked(frame.get(ethernet::HEADER_LEN..)?).ok()?;
    Some(ArpInfo {
        is_request: p.operation() == arp::op::REQUEST,
        sender_mac: p.sender_hw_addr(),
        sender_ip: p.sender_ip(),
        target_ip: p.target_ip(),
    })
}

/// Turns an ARP request (a whole frame) into our reply.
pub fn arp_reply(frame: &mut [u8], mac: Mac) {
    let Some(info) = arp(frame) else { return };
    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.set_dst_addr(info.sender_mac);
    eth.set_src_addr(mac);
    if let Ok(mut p) = arp::Packet::new_checked(&mut frame[ethernet::HEADER_LEN..]) {
        p.set_operation(arp::op::REPLY);
        p.set_sender(mac, info.target_ip);
        p.set_target(info.sender_mac, info.sender_ip);
    }
}

/// Writes an Ethernet header.
#[inline]
pub fn write_eth(h: &mut [u8], dst: Mac, src: Mac, ethertype: u16) {
    let mut eth = ethernet::Frame::new_unchecked(h);
    eth.set_dst_addr(dst);
    eth.set_src_addr(src);
    eth.set_ethertype(ethertype);
}

/// Builds, in an empty buffer, the frame that asks who has `target`: an ARP request, or an
/// IPv6 neighbour solicitation to the solicited-node multicast address.
pub fn solicitation<P: PktBuf>(m: &mut P, mac: Mac, src: IpAddr, target: IpAddr) -> bool {
    match (src, target) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            let Some(b) = m.append(ethernet::HEADER_LEN + arp::PACKET_LEN) else { return false };
            write_eth(b, [0xff; 6], mac, ethernet::ethertype::ARP);
            let mut p = arp::Packet::new_unchecked(&mut b[ethernet::HEADER_LEN..]);
            p.set_eth_ipv4();
            p.set_operation(arp::op::REQUEST);
            p.set_sender(mac, s);
            p.set_target([0; 6], t);
            true
        }
        (IpAddr::V6(s), IpAddr::V6(t)) => {
            let nd_len = icmpv6::ND_LEN + 8;
            let Some(b) = m.append(ethernet::HEADER_LEN + ipv6::HEADER_LEN + nd_len) else { return false };
            let o = t.octets();
            let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | o[13] as u16, u16::from_be_bytes([o[14], o[15]]));
            write_eth(b, [0x33, 0x33, 0xff, o[13], o[14], o[15]], mac, ethernet::ethertype::IPV6);
            b[ethernet::HEADER_LEN..].fill(0);
            let l3 = &mut b[ethernet::HEADER_LEN..];
            let mut ip = ipv6::Packet::new_unchecked(&mut *l3);
            ip.set_version_tc_flow(0, 0);
            ip.set_payload_len(nd_len as u16);
            ip.set_next_header(ip_proto::ICMPV6);
            ip.set_hop_limit(255);
            ip.set_src_addr(s);
            ip.set_dst_addr(group);
            let mut nd = icmpv6::Packet::new_unchecked(&mut l3[ipv6::HEADER_LEN..]);
            nd.set_msg_type(icmpv6::msg_type::NEIGHBOR_SOLICIT);
            let ok = nd.set_target_addr(t).is_ok() && nd.write_lladdr_option(icmpv6::ND_LEN, icmpv6::opt::SOURCE_LLADDR, mac).is_ok();
            nd.fill_checksum(&s, &group);
            ok
        }
        _ => false,
    }
}
