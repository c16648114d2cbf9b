//! IKE over the dataplane's ports: UDP datagrams to and from the gateway's addresses, cut out
//! of the packets the workers hand up, and built into packets the workers route and send.

use rampart_dataplane::buf::PktBuf;
use rampart_dataplane::ip::IpView;
use rampart_dataplane::wire::{ip_proto, ipv4, ipv6, udp};
use std::net::{IpAddr, SocketAddr};

/// A UDP datagram for us: (our address, the sender's, the payload).
pub fn datagram(l3: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let ip = IpView::parse(l3).ok()?;
    if ip.proto() != ip_proto::UDP {
        return None;
    }
    // The UDP checksum is not checked: IKE protects its own messages, and a kernel peer on
    // a veth leaves it to an offload that never runs before a packet socket reads the frame.
    let u = udp::Packet::new_checked(ip.payload()).ok()?;
    let payload = &ip.payload()[udp::HEADER_LEN..u.len() as usize];
    Some((SocketAddr::new(ip.dst(), u.dst_port()), SocketAddr::new(ip.src(), u.src_port()), payload))
}

/// Writes IP + UDP + payload into an empty buffer.
pub fn build<P: PktBuf>(m: &mut P, from: SocketAddr, to: SocketAddr, payload: &[u8]) -> bool {
    let udp_len = udp::HEADER_LEN + payload.len();
    let ip_len = if from.is_ipv4() { ipv4::MIN_HEADER_LEN } else { ipv6::HEADER_LEN };
    let Ok(udp_len16) = u16::try_from(udp_len) else { return false };
    let Some(b) = m.append(ip_len + udp_len) else { return false };
    b.fill(0);
    let (hdr, rest) = b.split_at_mut(ip_len);
    rest[udp::HEADER_LEN..].copy_from_slice(payload);
    let mut u = udp::Packet::new_unchecked(&mut *rest);
    u.set_src_port(from.port());
    u.set_dst_port(to.port());
    u.set_len(udp_len16);
    u.fill_checksum(&from.ip(), &to.ip());
    match (from.ip(), to.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = ipv4::Packet::new_unchecked(hdr);
            p.set_version_header_len(ipv4::MIN_HEADER_LEN);
            p.set_total_len((ip_len + udp_len) as u16);
            p.set_frag(true, false, 0);
            p.set_ttl(64);
            p.set_protocol(ip_proto::UDP);
            p.set_src_addr(s);
            p.set_dst_addr(d);
            p.fill_checksum();
            true
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = ipv6::Packet::new_unchecked(hdr);
            p.set_version_tc_flow(0, 0);
            p.set_payload_len(udp_len16);
            p.set_next_header(ip_proto::UDP);
            p.set_hop_limit(64);
            p.set_src_addr(s);
            p.set_dst_addr(d);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_dataplane::buf::VecBuf;

    #[test]
    fn built_datagrams_parse_back() {
        for (a, b) in [("192.0.2.2:4500", "192.0.2.1:4500"), ("[2001:db8::2]:500", "[2001:db8::1]:500")] {
            let (from, to): (SocketAddr, SocketAddr) = (a.parse().unwrap(), b.parse().unwrap());
            let mut m = VecBuf::with_room(&[], 0, 2000);
            assert!(build(&mut m, from, to, b"\0\0\0\0ike message"));
            let (l, r, p) = datagram(m.data()).expect("parses");
            assert_eq!((l, r, p), (to, from, &b"\0\0\0\0ike message"[..]));
        }
    }
}
