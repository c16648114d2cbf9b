//! Property tests: ESP parsing and decapsulation of arbitrary, mutated and authentic-but-
//! arbitrary packets always return Ok or Err and never panic.

use proptest::prelude::*;
use rampart_dataplane::buf::{PktBuf, VecBuf};
use rampart_dataplane::crypto::{Aead, AeadAlg, EspAad};
use rampart_dataplane::esp::{esp_spi, Lifetime, Mode, Sa, SaParams, UdpEncap};
use rampart_dataplane::wire::{ipv4, ipv6};

const SPI: u32 = 0x0000_1001;
const KEY: [u8; 20] = [7; 20];

fn sa(mode: Mode, v6: bool, udp: bool) -> Sa {
    let tunnel = (mode == Mode::Tunnel).then(|| {
        if v6 {
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        } else {
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
        }
    });
    Sa::new(SaParams {
        spi: SPI,
        alg: AeadAlg::AesGcm128,
        key: KEY.to_vec(),
        mode,
        tunnel,
        encap: udp.then_some(UdpEncap {
            sport: 4500,
            dport: 4500,
        }),
        esn: true,
        replay_window: 64,
        lifetime: Lifetime::default(),
    })
    .unwrap()
}

fn all_sas() -> Vec<Sa> {
    let mut v = vec![];
    for mode in [Mode::Tunnel, Mode::Transport] {
        for v6 in [false, true] {
            for udp in [false, true] {
                v.push(sa(mode, v6, udp));
            }
        }
    }
    v
}

/// An outer header (v4 or v6, optional UDP) around ESP whose body is `pt` sealed for real.
fn authentic(v6: bool, udp: bool, seq: u64, pt: &[u8]) -> Vec<u8> {
    let hl = if v6 { 40 } else { 20 };
    let ul = if udp { 8 } else { 0 };
    let total = hl + ul + 16 + pt.len() + 16;
    let mut d = vec![0u8; total];
    let proto = if udp { 17 } else { 50 };
    if v6 {
        let mut h = ipv6::Packet::new_unchecked(&mut d[..]);
        h.set_version_tc_flow(3, 0);
        h.set_payload_len((total - 40) as u16);
        h.set_next_header(proto);
    } else {
        let mut h = ipv4::Packet::new_unchecked(&mut d[..]);
        h.set_version_header_len(20);
        h.set_tos(3);
        h.set_total_len(total as u16);
        h.set_protocol(proto);
        h.fill_checksum();
    }
    if udp {
        d[hl..hl + 2].copy_from_slice(&4500u16.to_be_bytes());
        d[hl + 2..hl + 4].copy_from_slice(&4500u16.to_be_bytes());
        d[hl + 4..hl + 6].copy_from_slice(&((total - hl) as u16).to_be_bytes());
    }
    let e = hl + ul;
    d[e..e + 4].copy_from_slice(&SPI.to_be_bytes());
    d[e + 4..e + 8].copy_from_slice(&(seq as u32).to_be_bytes());
    d[e + 8..e + 16].copy_from_slice(&seq.to_be_bytes());
    d[e + 16..e + 16 + pt.len()].copy_from_slice(pt);
    let a = Aead::new(AeadAlg::AesGcm128, &KEY).unwrap();
    let tag = a
        .seal_in_place(
            seq.to_be_bytes(),
            EspAad::new(SPI, seq, true).as_slice(),
            &mut d[e + 16..e + 16 + pt.len()],
        )
        .unwrap();
    d[e + 16 + pt.len()..].copy_from_slice(&tag);
    d
}

proptest! {
    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = esp_spi(&bytes, false);
        let _ = esp_spi(&bytes, true);
        for sa in all_sas() {
            let mut b = VecBuf::new(&bytes);
            let _ = sa.decap(&mut b);
            let mut b = VecBuf::new(&bytes);
            let _ = sa.encap(&mut b);
        }
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_ip_header(v6: bool, udp: bool, body in proptest::collection::vec(any::<u8>(), 0..120)) {
        // Valid outer lengths so parsing reaches the ESP and UDP checks.
        let mut p = authentic(v6, udp, 1, &[0, 4]);
        let keep = if v6 { 40 } else { 20 };
        p.truncate(keep);
        p.extend(&body);
        let total = p.len();
        if v6 {
            ipv6::Packet::new_unchecked(&mut p[..]).set_payload_len((total - 40) as u16);
        } else {
            let mut h = ipv4::Packet::new_unchecked(&mut p[..]);
            h.set_total_len(total as u16);
            h.fill_checksum();
        }
        let _ = esp_spi(&p, udp);
        for sa in all_sas() {
            let _ = sa.decap(&mut VecBuf::new(&p));
        }
    }

    #[test]
    fn mutated_valid_packets(v6: bool, udp: bool, n in 0usize..64, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), cut in any::<usize>()) {
        let tx = sa(Mode::Tunnel, v6, udp);
        let mut inner = authentic(false, false, 1, &vec![0u8; n + 2]);
        inner.truncate(20); // a valid IPv4 header to carry
        let mut h = ipv4::Packet::new_unchecked(&mut inner[..]);
        h.set_total_len(20);
        h.fill_checksum();
        let mut b = VecBuf::new(&inner);
        tx.encap(&mut b).unwrap();
        let mut p = b.data().to_vec();
        for (at, x) in flips {
            let len = p.len();
            p[at % len] ^= x;
        }
        p.truncate(p.len() - cut % 8);
        for sa in all_sas() {
            let _ = sa.decap(&mut VecBuf::new(&p));
        }
    }

    #[test]
    fn authentic_arbitrary_plaintext(v6: bool, udp: bool, pt in proptest::collection::vec(any::<u8>(), 2..120), seq in 1u64..1000) {
        // The ICV verifies, so every post-decryption check sees attacker-chosen plaintext.
        for mode in [Mode::Tunnel, Mode::Transport] {
            let rx = sa(mode, v6, udp);
            let mut b = VecBuf::new(&authentic(v6, udp, seq, &pt));
            if rx.decap(&mut b).is_ok() {
                let d = b.data();
                prop_assert!(ipv4::Packet::new_checked(d).is_ok() || ipv6::Packet::new_checked(d).is_ok());
            }
        }
    }

    #[test]
    fn authentic_well_padded_plaintext(v6: bool, udp: bool, body in proptest::collection::vec(any::<u8>(), 0..120),
                                       pad in 0u8..8, nh in prop_oneof![Just(4u8), Just(41), Just(59), Just(17), any::<u8>()]) {
        let mut pt = body;
        pt.extend(1..=pad);
        pt.extend([pad, nh]);
        for mode in [Mode::Tunnel, Mode::Transport] {
            let rx = sa(mode, v6, udp);
            let mut b = VecBuf::new(&authentic(v6, udp, 9, &pt));
            if rx.decap(&mut b).is_ok() {
                let d = b.data();
                prop_assert!(ipv4::Packet::new_checked(d).is_ok() || ipv6::Packet::new_checked(d).is_ok());
            }
        }
    }
}
