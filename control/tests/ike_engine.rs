// Two IKEv2 engines in one process with a fake clock, shuttling datagrams: handshakes,
// loss, duplicates, rekeys, collisions, liveness, cookies, narrowing and hostile input.

use rampart_control::ike::*;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const A_IP: &str = "192.0.2.1";
const B_IP: &str = "192.0.2.2";
const PSK: &[u8] = b"interop-testbed-psk-0123456789abcdef";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ts(s: &str, len: u8) -> TrafficSelector {
    TrafficSelector::from_prefix(ip(s), len)
}

fn peer(me: &str, other: &str, my_net: &str, other_net: &str) -> PeerConfig {
    PeerConfig {
        name: format!("to-{other}"),
        local_addrs: vec![ip(if me == "left" { A_IP } else { B_IP })],
        remote_addr: Some(ip(if me == "left" { B_IP } else { A_IP })),
        local_id: Identity::Fqdn(format!("{me}.interop.test")),
        remote_id: Identity::Fqdn(format!("{other}.interop.test")),
        auth: Auth::Psk(PSK.to_vec()),
        ike_proposals: vec![IkeProposal::aes128gcm_sha256_x25519()],
        esp_proposals: vec![EspProposal { algs: vec![EspAlg::AesGcm128], esn: false, dh: vec![DhGroup::Curve25519] }],
        children: vec![ChildConfig {
            name: "net".into(),
            local_ts: vec![ts(my_net, 24)],
            remote_ts: vec![ts(other_net, 24)],
            mode: ChildMode::Tunnel,
            esp_proposals: vec![],
            pfs: true,
            lifetime: Lifetime::CHILD_DEFAULT,
        }],
        ike_lifetime: Lifetime::IKE_DEFAULT,
        dpd_interval: Some(Duration::from_secs(10)),
        start_action: StartAction::None,
        dpd_action: DpdAction::Clear,
    }
}

fn left() -> PeerConfig {
    peer("left", "right", "10.1.0.0", "10.2.0.0")
}
fn right() -> PeerConfig {
    peer("right", "left", "10.2.0.0", "10.1.0.0")
}

struct Net {
    a: Engine,
    b: Engine,
    now: Instant,
    ev_a: Vec<Event>,
    ev_b: Vec<Event>,
    /// Drop the next n datagrams from A (resp. B).
    drop_a: usize,
    drop_b: usize,
    /// Deliver every datagram from A twice.
    dup_a: bool,
    /// Black-hole everything B sends.
    cut_b: bool,
    /// Drop B's datagram with this sequence number (0-based).
    drop_b_at: Option<usize>,
    b_sent: usize,
}

impl Net {
    fn new(pa: PeerConfig, pb: PeerConfig) -> Net {
        Self::with_cfg(pa, pb, EngineConfig::default(), EngineConfig::default())
    }
    fn with_cfg(pa: PeerConfig, pb: PeerConfig, ca: EngineConfig, cb: EngineConfig) -> Net {
        Net {
            a: Engine::new(ca, vec![pa]),
            b: Engine::new(cb, vec![pb]),
            now: Instant::now(),
            ev_a: vec![],
            ev_b: vec![],
            drop_a: 0,
            drop_b: 0,
            dup_a: false,
            cut_b: false,
            drop_b_at: None,
            b_sent: 0,
        }
    }

    /// Move datagrams until both sides are quiet.
    fn shuttle(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                if self.drop_a > 0 {
                    self.drop_a -= 1;
                    continue;
                }
                self.b.handle_datagram(self.now, t.remote, t.local, &t.bytes);
                if self.dup_a {
                    self.b.handle_datagram(self.now, t.remote, t.local, &t.bytes);
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                self.b_sent += 1;
                if self.drop_b_at == Some(self.b_sent - 1) {
                    continue;
                }
                if self.drop_b > 0 || self.cut_b {
                    self.drop_b = self.drop_b.saturating_sub(1);
                    continue;
                }
                self.a.handle_datagram(self.now, t.remote, t.local, &t.bytes);
            }
            while let Some(e) = self.a.poll_event() {
                self.ev_a.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.ev_b.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.shuttle();
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.shuttle();
                }
                _ => break,
            }
        }
        self.now = end;
        self.shuttle();
    }

    fn up(&mut self) {
        assert!(self.a.initiate(self.now, "to-right"));
        self.shuttle();
    }
}

fn child_ups(ev: &[Event]) -> Vec<&ChildSaUp> {
    ev.iter().filter_map(|e| if let Event::ChildSaUp(c) = e { Some(&**c) } else { None }).collect()
}

fn count_ike_up(ev: &[Event]) -> usize {
    ev.iter().filter(|e| matches!(e, Event::IkeSaUp { .. })).count()
}

fn assert_pair(a: &ChildSaUp, b: &ChildSaUp) {
    assert_eq!(a.inbound, b.outbound);
    assert_eq!(a.outbound, b.inbound);
    assert_eq!(a.local_ts, b.remote_ts);
    assert_eq!(a.remote_ts, b.local_ts);
    assert_eq!(a.inbound.key.len(), a.inbound.alg.key_len());
    assert_ne!(a.inbound.key, a.outbound.key);
}

fn established(n: &mut Net) -> (ChildSaUp, ChildSaUp) {
    n.up();
    assert_eq!(count_ike_up(&n.ev_a), 1, "{:?}", n.ev_a);
    assert_eq!(count_ike_up(&n.ev_b), 1, "{:?}", n.ev_b);
    let (ca, cb) = (child_ups(&n.ev_a), child_ups(&n.ev_b));
    assert_eq!((ca.len(), cb.len()), (1, 1));
    assert_pair(ca[0], cb[0]);
    (ca[0].clone(), cb[0].clone())
}

#[test]
fn handshake_every_dh_group() {
    for g in [DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Modp2048, DhGroup::Modp3072] {
        let (mut l, mut r) = (left(), right());
        for p in [&mut l, &mut r] {
            p.ike_proposals[0].dh = vec![g];
        }
        let mut n = Net::new(l, r);
        let (a, _) = established(&mut n);
        assert_eq!(a.replaces, None);
        assert_eq!(a.encap, None);
        assert_eq!(a.local_ts, vec![ts("10.1.0.0", 24)]);
    }
}

#[test]
fn handshake_every_ike_cipher_and_esp_alg() {
    let ike = [
        (EncrAlg::AesGcm16_128, vec![], PrfAlg::HmacSha256),
        (EncrAlg::AesGcm16_256, vec![], PrfAlg::HmacSha384),
        (EncrAlg::AesCbc128, vec![IntegAlg::HmacSha256_128], PrfAlg::HmacSha256),
        (EncrAlg::AesCbc256, vec![IntegAlg::HmacSha384_192], PrfAlg::HmacSha384),
        (EncrAlg::AesCbc256, vec![IntegAlg::HmacSha512_256], PrfAlg::HmacSha512),
    ];
    for (i, (encr, integ, prf)) in ike.into_iter().enumerate() {
        let esp = [EspAlg::AesGcm128, EspAlg::AesGcm256, EspAlg::ChaCha20Poly1305][i % 3];
        let (mut l, mut r) = (left(), right());
        for p in [&mut l, &mut r] {
            p.ike_proposals = vec![IkeProposal { encr: vec![encr], prf: vec![prf], integ: integ.clone(), dh: vec![DhGroup::Curve25519] }];
            p.esp_proposals[0].algs = vec![esp];
        }
        let mut n = Net::new(l, r);
        let (a, _) = established(&mut n);
        assert_eq!(a.inbound.alg, esp);
        // The CHILD_SA rekey (with PFS) works on every suite too.
        assert!(n.a.rekey_child(n.now, a.inbound.spi));
        n.shuttle();
        assert_eq!(child_ups(&n.ev_a).len(), 2);
        assert_eq!(n.a.child_sas("to-right").len(), 1);
    }
    for esp in [EspAlg::AesGcm256, EspAlg::ChaCha20Poly1305] {
        let (mut l, mut r) = (left(), right());
        l.esp_proposals[0].algs = vec![EspAlg::AesGcm128, esp];
        r.esp_proposals[0].algs = vec![esp];
        let mut n = Net::new(l, r);
        let (a, _) = established(&mut n);
        assert_eq!(a.inbound.alg, esp);
        assert_eq!(a.inbound.key.len(), 36);
    }
}

fn ike_suite(encr: EncrAlg) -> IkeProposal {
    let integ = if matches!(encr, EncrAlg::AesCbc128 | EncrAlg::AesCbc256) { vec![IntegAlg::HmacSha256_128] } else { vec![] };
    IkeProposal { encr: vec![encr], prf: vec![PrfAlg::HmacSha256], integ, dh: vec![DhGroup::Curve25519] }
}

fn esp_any() -> EspProposal {
    EspProposal { algs: vec![], esn: false, dh: vec![DhGroup::Curve25519] }
}

#[test]
fn esp_any_as_initiator_follows_the_ike_cipher() {
    let cases = [
        (EncrAlg::AesGcm16_128, EspAlg::AesGcm128),
        (EncrAlg::AesGcm16_256, EspAlg::AesGcm256),
        (EncrAlg::AesCbc128, EspAlg::AesGcm128),
        (EncrAlg::AesCbc256, EspAlg::AesGcm256),
    ];
    for (encr, want) in cases {
        let (mut l, mut r) = (left(), right());
        for p in [&mut l, &mut r] {
            p.ike_proposals = vec![ike_suite(encr)];
        }
        // "any" on the child; the responder accepts both AES-GCM sizes, preferring 128.
        l.children[0].esp_proposals = vec![esp_any()];
        r.esp_proposals[0].algs = vec![EspAlg::AesGcm128, EspAlg::AesGcm256];
        let mut n = Net::new(l, r);
        let (a, b) = established(&mut n);
        assert_eq!((a.inbound.alg, b.inbound.alg), (want, want), "{encr:?}");
        // CREATE_CHILD_SA (rekey with PFS) proposes the same.
        assert!(n.a.rekey_child(n.now, a.inbound.spi));
        n.shuttle();
        let ca = child_ups(&n.ev_a);
        assert_eq!(ca.len(), 2);
        assert_eq!(ca[1].inbound.alg, want);
    }
    // The matching algorithm is all "any" proposes: a responder without it refuses.
    let (mut l, mut r) = (left(), right());
    l.esp_proposals = vec![esp_any()];
    r.esp_proposals[0].algs = vec![EspAlg::ChaCha20Poly1305];
    let mut n = Net::new(l, r);
    n.up();
    assert_eq!(count_ike_up(&n.ev_a), 1);
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::ChildSaFailed { notify: 14, .. })), "{:?}", n.ev_a);
}

#[test]
fn esp_any_as_responder_accepts_what_we_support() {
    let esp = |algs: Vec<EspAlg>| EspProposal { algs, esn: false, dh: vec![DhGroup::Curve25519] };
    // (IKE cipher, initiator's proposals, expected)
    let cases = [
        // The peer's first proposal we support wins, even if it is not the IKE cipher's match.
        (EncrAlg::AesGcm16_128, vec![esp(vec![EspAlg::ChaCha20Poly1305]), esp(vec![EspAlg::AesGcm128])], EspAlg::ChaCha20Poly1305),
        // Within one proposal, our preference: the IKE cipher's match first.
        (EncrAlg::AesGcm16_256, vec![esp(vec![EspAlg::AesGcm128, EspAlg::AesGcm256])], EspAlg::AesGcm256),
        (EncrAlg::AesGcm16_128, vec![esp(vec![EspAlg::ChaCha20Poly1305, EspAlg::AesGcm256, EspAlg::AesGcm128])], EspAlg::AesGcm128),
        // Then EspAlg::ALL's order.
        (EncrAlg::AesGcm16_128, vec![esp(vec![EspAlg::ChaCha20Poly1305, EspAlg::AesGcm256])], EspAlg::AesGcm256),
        // Both sides "any".
        (EncrAlg::AesCbc256, vec![esp_any()], EspAlg::AesGcm256),
    ];
    for (encr, props, want) in cases {
        let (mut l, mut r) = (left(), right());
        for p in [&mut l, &mut r] {
            p.ike_proposals = vec![ike_suite(encr)];
        }
        l.esp_proposals = props.clone();
        r.esp_proposals = vec![esp_any()];
        let mut n = Net::new(l, r);
        let (a, b) = established(&mut n);
        assert_eq!((a.inbound.alg, b.inbound.alg), (want, want), "{encr:?} {props:?}");
        // B chooses the same again as CREATE_CHILD_SA responder.
        assert!(n.a.rekey_child(n.now, a.inbound.spi));
        n.shuttle();
        let cb = child_ups(&n.ev_b);
        assert_eq!(cb.len(), 2);
        assert_eq!(cb[1].inbound.alg, want);
    }
}

#[test]
fn psk_mismatch_fails_on_both_sides() {
    let mut r = right();
    r.auth = Auth::Psk(b"wrong".to_vec());
    let mut n = Net::new(left(), r);
    n.up();
    n.advance(Duration::from_secs(60));
    assert!(child_ups(&n.ev_a).is_empty() && child_ups(&n.ev_b).is_empty());
    assert_eq!(count_ike_up(&n.ev_a) + count_ike_up(&n.ev_b), 0);
    assert!(n.ev_b.iter().any(|e| matches!(e, Event::AuthFailed { peer_id: Some(Identity::Fqdn(f)), .. } if f == "left.interop.test")), "{:?}", n.ev_b);
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::AuthFailed { .. })), "{:?}", n.ev_a);
    assert_eq!(n.b.stats().auth_failures, 1);
    assert_eq!(n.a.ike_sa_count() + n.b.ike_sa_count(), 0);
}

#[test]
fn unknown_identity_fails() {
    let mut l = left();
    l.local_id = Identity::Fqdn("mallory.interop.test".into());
    let mut n = Net::new(l, right());
    n.up();
    assert!(child_ups(&n.ev_b).is_empty());
    assert!(n.ev_b.iter().any(|e| matches!(e, Event::AuthFailed { peer_id: Some(Identity::Fqdn(f)), .. } if f == "mallory.interop.test")));
}

#[test]
fn lost_packets_are_retransmitted() {
    let mut n = Net::new(left(), right());
    n.drop_a = 1; // IKE_SA_INIT request
    n.up();
    assert_eq!(count_ike_up(&n.ev_a), 0);
    n.drop_b_at = Some(1); // IKE_AUTH response
    n.advance(Duration::from_secs(2));
    assert_eq!(count_ike_up(&n.ev_a), 1);
    assert_eq!(child_ups(&n.ev_a).len(), 1);
    assert_eq!(child_ups(&n.ev_b).len(), 1);
    assert!(n.a.stats().retransmitted_requests >= 2);
    assert!(n.b.stats().retransmitted_responses >= 1);
}

#[test]
fn duplicated_request_gets_cached_response() {
    let mut n = Net::new(left(), right());
    n.dup_a = true;
    let (a, b) = established(&mut n);
    assert_pair(&a, &b);
    assert_eq!(n.b.stats().retransmitted_responses, 2); // IKE_SA_INIT and IKE_AUTH
    assert_eq!(n.a.stats().duplicate_responses, 2);
    assert_eq!(n.b.ike_sa_count(), 1);
}

#[test]
fn rekey_child_make_before_break() {
    let mut n = Net::new(left(), right());
    let (a0, _) = established(&mut n);
    assert!(n.a.rekey_child(n.now, a0.inbound.spi));
    n.shuttle();
    let (ca, cb) = (child_ups(&n.ev_a), child_ups(&n.ev_b));
    assert_eq!((ca.len(), cb.len()), (2, 2));
    assert_pair(ca[1], cb[1]);
    assert_eq!(ca[1].replaces, Some(a0.inbound.spi));
    assert_eq!(cb[1].replaces, Some(a0.outbound.spi));
    // New SA announced before the old one is taken down, on both sides.
    let pos_up = n.ev_a.iter().position(|e| matches!(e, Event::ChildSaUp(c) if c.replaces.is_some())).unwrap();
    let pos_down = n.ev_a.iter().position(|e| matches!(e, Event::ChildSaDown { inbound_spi, reason: DownReason::Rekeyed, .. } if *inbound_spi == a0.inbound.spi)).unwrap();
    assert!(pos_up < pos_down);
    assert!(n.ev_b.iter().any(|e| matches!(e, Event::ChildSaDown { inbound_spi, reason: DownReason::Rekeyed, .. } if *inbound_spi == a0.outbound.spi)));
    assert_eq!(n.a.child_sas("to-right"), vec![(ca[1].inbound.spi, ca[1].outbound.spi)]);
    assert_eq!(n.b.child_sas("to-left").len(), 1);
    // The responder can rekey too.
    assert!(n.b.rekey_child(n.now, cb[1].inbound.spi));
    n.shuttle();
    assert_eq!(child_ups(&n.ev_a).len(), 3);
    assert_eq!(n.a.child_sas("to-right").len(), 1);
}

#[test]
fn rekey_ike_moves_children() {
    let mut n = Net::new(left(), right());
    let (a0, _) = established(&mut n);
    let old = n.a.ike_sas("to-right");
    assert!(n.a.rekey_ike(n.now, "to-right"));
    n.shuttle();
    let new = n.a.ike_sas("to-right");
    assert_eq!(new.len(), 1);
    assert_ne!(old, new);
    assert_eq!(n.b.ike_sas("to-left"), new);
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::IkeSaRekeyed { .. })));
    assert!(n.ev_b.iter().any(|e| matches!(e, Event::IkeSaRekeyed { .. })));
    assert!(!n.ev_a.iter().chain(&n.ev_b).any(|e| matches!(e, Event::ChildSaDown { .. } | Event::IkeSaDown { .. })));
    assert_eq!(n.a.ike_sa_count(), 1);
    assert_eq!(n.b.ike_sa_count(), 1);
    // The CHILD_SA lives on under the new IKE_SA and can be rekeyed there, by either side.
    assert!(n.b.rekey_child(n.now, a0.outbound.spi));
    n.shuttle();
    let ca = child_ups(&n.ev_a);
    assert_eq!(ca.len(), 2);
    assert_eq!((ca[1].ike_spi_i, ca[1].ike_spi_r), new[0]);
    // And the responder rekeys the IKE_SA again.
    assert!(n.b.rekey_ike(n.now, "to-left"));
    n.shuttle();
    assert_eq!(n.a.ike_sas("to-right"), n.b.ike_sas("to-left"));
    assert_eq!(n.a.ike_sa_count(), 1);
    n.advance(Duration::from_secs(60));
    assert_eq!(n.a.child_sas("to-right").len(), 1);
    assert_eq!(count_ike_up(&n.ev_a), 1);
}

#[test]
fn child_rekey_collision_keeps_one_pair() {
    let mut n = Net::new(left(), right());
    let (a0, b0) = established(&mut n);
    assert!(n.a.rekey_child(n.now, a0.inbound.spi));
    assert!(n.b.rekey_child(n.now, b0.inbound.spi));
    // Cross the two requests in flight.
    let ta: Vec<Transmit> = std::iter::from_fn(|| n.a.poll_transmit()).collect();
    let tb: Vec<Transmit> = std::iter::from_fn(|| n.b.poll_transmit()).collect();
    for t in ta {
        n.b.handle_datagram(n.now, t.remote, t.local, &t.bytes);
    }
    for t in tb {
        n.a.handle_datagram(n.now, t.remote, t.local, &t.bytes);
    }
    n.advance(Duration::from_secs(5));
    let sa = n.a.child_sas("to-right");
    let sb = n.b.child_sas("to-left");
    assert_eq!(sa.len(), 1, "{:?}", n.ev_a);
    assert_eq!(sb.len(), 1, "{:?}", n.ev_b);
    assert_eq!(sa[0], (sb[0].1, sb[0].0));
    assert_ne!(sa[0].0, a0.inbound.spi);
}

#[test]
fn simultaneous_ike_rekey_keeps_one_ike_sa() {
    // RFC 7296 2.8.2. The nonces are random, so run until each side has won at least once.
    let mut a_won = [false, false];
    for round in 0..40 {
        let mut n = Net::new(left(), right());
        let (a0, b0) = established(&mut n);
        let old = n.a.ike_sas("to-right");
        assert!(n.a.rekey_ike(n.now, "to-right"));
        assert!(n.b.rekey_ike(n.now, "to-left"));
        // A's request reaches B first, then B's request and its answer reach A: both sides
        // see the collision.
        n.shuttle();
        let (sa, sb) = (n.a.ike_sas("to-right"), n.b.ike_sas("to-left"));
        assert_eq!(sa.len(), 1, "round {round}: {:?}", n.ev_a);
        assert_eq!(sa, sb, "round {round}");
        assert_ne!(sa, old);
        // The CHILD_SA survived, on the same IKE_SA and with the same SPIs on both sides.
        assert_eq!(n.a.child_sas("to-right"), vec![(a0.inbound.spi, a0.outbound.spi)]);
        assert_eq!(n.b.child_sas("to-left"), vec![(b0.inbound.spi, b0.outbound.spi)]);
        assert!(!n.ev_a.iter().chain(&n.ev_b).any(|e| matches!(e, Event::ChildSaDown { .. } | Event::IkeSaDown { .. })));
        // The last IkeSaRekeyed on each side names the survivor.
        for ev in [&n.ev_a, &n.ev_b] {
            let last = ev.iter().rev().find_map(|e| if let Event::IkeSaRekeyed { new, .. } = e { Some(*new) } else { None });
            assert_eq!(last, Some(sa[0]));
        }
        let rekeyed_a = n.ev_a.iter().filter(|e| matches!(e, Event::IkeSaRekeyed { .. })).count();
        a_won[(rekeyed_a == 2) as usize] = true;
        // The redundant and old IKE_SAs are gone once the Deletes are through.
        n.advance(Duration::from_secs(40));
        assert_eq!((n.a.ike_sa_count(), n.b.ike_sa_count()), (1, 1), "round {round}");
        // Traffic on the survivor: a CHILD_SA rekey from either side.
        assert!(n.b.rekey_child(n.now, b0.inbound.spi));
        n.shuttle();
        let ca = child_ups(&n.ev_a);
        assert_eq!(ca.len(), 2);
        assert_eq!((ca[1].ike_spi_i, ca[1].ike_spi_r), sa[0]);
        assert_eq!(n.a.child_sas("to-right"), vec![(ca[1].inbound.spi, ca[1].outbound.spi)]);
        assert!(n.a.rekey_child(n.now, ca[1].inbound.spi));
        n.shuttle();
        assert_eq!(child_ups(&n.ev_b).len(), 3);
        assert_eq!(n.b.child_sas("to-left").len(), 1);
        n.advance(Duration::from_secs(60));
        assert!(!n.ev_a.iter().chain(&n.ev_b).any(|e| matches!(e, Event::IkeSaDown { .. })));
        if a_won == [true, true] && round >= 3 {
            return;
        }
    }
    panic!("one side always won: {a_won:?}");
}

#[test]
fn dead_peer_detected() {
    let mut n = Net::new(left(), right());
    established(&mut n);
    n.cut_b = true;
    n.advance(Duration::from_secs(120));
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::IkeSaDown { reason: DownReason::DeadPeer, .. })), "{:?}", n.ev_a);
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::ChildSaDown { reason: DownReason::DeadPeer, .. })));
    assert_eq!(n.a.ike_sa_count(), 0);
    assert_eq!(n.a.stats().dead_peers, 1);
}

#[test]
fn dead_peer_restart() {
    let mut l = left();
    l.dpd_action = DpdAction::Restart;
    let mut n = Net::new(l, right());
    established(&mut n);
    n.cut_b = true;
    n.advance(Duration::from_secs(25));
    n.cut_b = false;
    // The restart began while the link was cut; its IKE_SA_INIT is being retransmitted.
    n.advance(Duration::from_secs(20));
    assert_eq!(count_ike_up(&n.ev_a), 2, "{:?}", n.ev_a);
}

#[test]
fn liveness_answered_keeps_sa() {
    let mut n = Net::new(left(), right());
    established(&mut n);
    n.advance(Duration::from_secs(300));
    assert_eq!(n.a.ike_sa_count(), 1);
    assert!(n.ev_a.iter().all(|e| !matches!(e, Event::IkeSaDown { .. })));
    assert!(n.a.stats().tx_datagrams > 20);
}

#[test]
fn esp_silence_with_live_ike_rekeys_child() {
    let mut n = Net::new(left(), right());
    let (a0, _) = established(&mut n);
    n.a.note_child_traffic(n.now, a0.inbound.spi, 5);
    n.advance(Duration::from_secs(25));
    let ups = child_ups(&n.ev_a);
    assert!(ups.len() >= 2, "{:?}", n.ev_a);
    assert_eq!(ups[1].replaces, Some(a0.inbound.spi));
    assert_eq!(n.a.ike_sa_count(), 1);
}

#[test]
fn cookie_challenge() {
    let cb = EngineConfig { cookie_threshold: 0, ..EngineConfig::default() };
    let mut n = Net::with_cfg(left(), right(), EngineConfig::default(), cb);
    established(&mut n);
    assert_eq!(n.b.stats().cookies_sent, 1);
}

#[test]
fn invalid_ke_payload_retry() {
    let (mut l, mut r) = (left(), right());
    l.ike_proposals[0].dh = vec![DhGroup::Ecp256, DhGroup::Curve25519];
    r.ike_proposals[0].dh = vec![DhGroup::Curve25519];
    let mut n = Net::new(l, r);
    established(&mut n);
    assert_eq!(n.b.stats().invalid_ke_sent, 1);
}

#[test]
fn no_proposal_chosen() {
    let mut r = right();
    r.ike_proposals[0].encr = vec![EncrAlg::AesCbc256];
    r.ike_proposals[0].integ = vec![IntegAlg::HmacSha256_128];
    let mut n = Net::new(left(), r);
    n.up();
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::IkeSaDown { reason: DownReason::Failed, .. })));
    assert_eq!(n.b.stats().no_proposal_chosen, 1);
    assert_eq!(n.b.ike_sa_count(), 0);
}

#[test]
fn traffic_selector_narrowing() {
    let mut l = left();
    l.children[0].local_ts = vec![ts("10.0.0.0", 8)];
    l.children[0].remote_ts = vec![ts("10.2.0.0", 16)];
    let mut n = Net::new(l, right());
    let (a, _) = established(&mut n);
    assert_eq!(a.local_ts, vec![ts("10.1.0.0", 24)]);
    assert_eq!(a.remote_ts, vec![ts("10.2.0.0", 24)]);
}

#[test]
fn traffic_selector_unacceptable() {
    let mut l = left();
    l.children[0].remote_ts = vec![ts("172.16.0.0", 16)];
    let mut n = Net::new(l, right());
    n.up();
    assert_eq!(count_ike_up(&n.ev_a), 1);
    assert!(child_ups(&n.ev_a).is_empty());
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::ChildSaFailed { notify: 38, .. })), "{:?}", n.ev_a);
}

#[test]
fn esp_proposal_mismatch() {
    let mut r = right();
    r.esp_proposals[0].algs = vec![EspAlg::ChaCha20Poly1305];
    let mut n = Net::new(left(), r);
    n.up();
    assert_eq!(count_ike_up(&n.ev_a), 1);
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::ChildSaFailed { notify: 14, .. })));
}

#[test]
fn fragmented_ike_auth() {
    let c = EngineConfig { fragment_size: 200, ..EngineConfig::default() };
    let mut n = Net::with_cfg(left(), right(), c.clone(), c);
    established(&mut n);
    assert!(n.a.stats().fragments_tx >= 2);
    assert!(n.b.stats().fragments_rx >= 2);
}

#[test]
fn delete_both_ways() {
    let mut n = Net::new(left(), right());
    established(&mut n);
    n.b.terminate(n.now, "to-left");
    n.shuttle();
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::IkeSaDown { reason: DownReason::PeerDeleted, .. })));
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::ChildSaDown { reason: DownReason::PeerDeleted, .. })));
    assert!(n.ev_b.iter().any(|e| matches!(e, Event::IkeSaDown { reason: DownReason::Local, .. })));
    assert_eq!(n.a.ike_sa_count() + n.b.ike_sa_count(), 0);
    // And the other way round.
    let mut n = Net::new(left(), right());
    established(&mut n);
    n.a.terminate(n.now, "to-right");
    n.shuttle();
    assert!(n.ev_b.iter().any(|e| matches!(e, Event::IkeSaDown { reason: DownReason::PeerDeleted, .. })));
    assert_eq!(n.a.ike_sa_count() + n.b.ike_sa_count(), 0);
}

#[test]
fn lifetimes_rekey_and_expire() {
    let (mut l, mut r) = (left(), right());
    for p in [&mut l, &mut r] {
        p.ike_lifetime = Lifetime { soft: Duration::from_secs(100), hard: Duration::from_secs(150), jitter: Duration::from_secs(10) };
        p.children[0].lifetime = Lifetime { soft: Duration::from_secs(50), hard: Duration::from_secs(80), jitter: Duration::from_secs(5) };
    }
    // Only A rekeys by lifetime (B's soft lifetime is past its hard one: never).
    r.ike_lifetime.soft = Duration::from_secs(1000);
    r.children[0].lifetime.soft = Duration::from_secs(1000);
    r.children[0].lifetime.hard = Duration::from_secs(10000);
    r.ike_lifetime.hard = Duration::from_secs(10000);
    let mut n = Net::new(l, r);
    established(&mut n);
    n.advance(Duration::from_secs(400));
    assert!(child_ups(&n.ev_a).len() >= 6, "{}", child_ups(&n.ev_a).len());
    assert!(n.ev_a.iter().filter(|e| matches!(e, Event::IkeSaRekeyed { .. })).count() >= 3);
    assert_eq!(n.a.ike_sa_count(), 1);
    assert_eq!(n.b.ike_sa_count(), 1);
    assert_eq!(n.a.child_sas("to-right").len(), 1);
    assert_eq!(n.b.child_sas("to-left").len(), 1);
    assert!(!n.ev_a.iter().any(|e| matches!(e, Event::IkeSaDown { .. })));
}

#[test]
fn hostile_input_is_counted_not_fatal() {
    let mut n = Net::new(left(), right());
    established(&mut n);
    let (now, la, lb) = (n.now, SocketAddr::new(ip(B_IP), 500), SocketAddr::new(ip(A_IP), 500));
    let b = &mut n.b;
    // Truncated header, garbage, wrong length field.
    b.handle_datagram(now, la, lb, &[0x11; 10]);
    let mut hdr = vec![0u8; 28];
    hdr[0] = 1;
    hdr[17] = 0x20;
    hdr[18] = 34;
    hdr[19] = 0x08;
    hdr[27] = 200; // length larger than the datagram
    b.handle_datagram(now, la, lb, &hdr);
    // Unknown SPI (INFORMATIONAL for an SA that does not exist).
    let mut unk = hdr.clone();
    unk[8] = 9;
    unk[18] = 37;
    unk[27] = 28;
    b.handle_datagram(now, la, lb, &unk);
    // Unknown critical payload in IKE_SA_INIT.
    let mut crit = hdr.clone();
    crit[16] = 222;
    crit.extend_from_slice(&[0, 0x80, 0, 4]);
    crit[27] = 32;
    b.handle_datagram(now, la, lb, &crit);
    // Oversized.
    b.handle_datagram(now, la, lb, &vec![0u8; 70000]);
    // Non-IKE on 4500 (no zero marker).
    b.handle_datagram(now, SocketAddr::new(ip(B_IP), 4500), SocketAddr::new(ip(A_IP), 4500), &[1, 2, 3, 4, 5, 6]);
    let s = b.stats().clone();
    assert_eq!(s.dropped_malformed, 2);
    assert_eq!(s.dropped_unknown_spi, 1);
    assert_eq!(s.unsupported_critical, 1);
    assert_eq!(s.dropped_oversized, 1);
    assert_eq!(s.dropped_non_ike, 1);
    // The critical payload got an UNSUPPORTED_CRITICAL_PAYLOAD answer.
    let t = b.poll_transmit().unwrap();
    assert_eq!(&t.bytes[..8], &crit[..8]);
    // Random mutations of a real IKE_AUTH-era message never panic.
    let (c, _) = (child_ups(&n.ev_a)[0].clone(), ());
    n.a.rekey_child(n.now, c.inbound.spi);
    let real = n.a.poll_transmit().unwrap();
    for i in 0..real.bytes.len() {
        let mut m = real.bytes.clone();
        m[i] ^= 0x5a;
        n.b.handle_datagram(now, real.remote, real.local, &m);
        n.b.handle_datagram(now, real.remote, real.local, &m[..i]);
    }
    assert!(n.b.stats().dropped_integrity > 0);
    // The SA survived all of it.
    n.b.handle_datagram(now, real.remote, real.local, &real.bytes);
    n.shuttle();
    assert_eq!(n.a.child_sas("to-right").len(), 1);
    assert_eq!(child_ups(&n.ev_a).len(), 2);
}

#[test]
fn ike_sa_init_flood_is_bounded() {
    let cb = EngineConfig { cookie_threshold: 50, max_half_open: 100, ..EngineConfig::default() };
    let mut n = Net::with_cfg(left(), right(), EngineConfig::default(), cb);
    // Capture one real IKE_SA_INIT and replay it with fresh SPIs from many ports.
    n.a.initiate(n.now, "to-right");
    let t = n.a.poll_transmit().unwrap();
    n.a.terminate(n.now, "to-right");
    for i in 0..500u32 {
        let mut m = t.bytes.clone();
        m[..4].copy_from_slice(&i.to_be_bytes());
        let from = SocketAddr::new(t.local.ip(), 10000 + i as u16);
        n.b.handle_datagram(n.now, t.remote, from, &m);
    }
    assert_eq!(n.b.ike_sa_count(), 50);
    assert_eq!(n.b.stats().cookies_sent, 450);
    // Half-open SAs expire.
    n.advance(Duration::from_secs(31));
    assert_eq!(n.b.ike_sa_count(), 0);
    assert_eq!(n.b.stats().half_open_expired, 50);
    // A legitimate initiator still gets through (with a cookie).
    n.up();
    assert_eq!(count_ike_up(&n.ev_b), 1);
}

#[test]
fn keys_are_not_in_debug_output() {
    let mut n = Net::new(left(), right());
    let (a, _) = established(&mut n);
    let s = format!("{a:?}");
    assert!(s.contains("redacted"));
    assert!(!s.contains(&format!("{:?}", a.inbound.key)));
    assert!(format!("{:?}", left().auth).contains("redacted"));
}

#[test]
fn many_sas_setup_rate() {
    // Informative: setup cost per IKE_SA with x25519 + PSK in this (debug) build.
    let mut peers_b = Vec::new();
    let mut peers_a = Vec::new();
    for i in 0..200u32 {
        let mut l = left();
        l.name = format!("p{i}");
        l.local_id = Identity::Fqdn(format!("left{i}.interop.test"));
        let mut r = right();
        r.name = format!("p{i}");
        r.remote_id = l.local_id.clone();
        peers_a.push(l);
        peers_b.push(r);
    }
    let mut a = Engine::new(EngineConfig::default(), peers_a);
    let mut b = Engine::new(EngineConfig::default(), peers_b);
    let now = Instant::now();
    let t0 = Instant::now();
    for i in 0..200 {
        a.initiate(now, &format!("p{i}"));
    }
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            b.handle_datagram(now, t.remote, t.local, &t.bytes);
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            a.handle_datagram(now, t.remote, t.local, &t.bytes);
        }
        if !moved {
            break;
        }
    }
    let el = t0.elapsed();
    assert_eq!(b.stats().ike_sa_established, 200);
    assert_eq!(b.stats().child_sa_established, 200);
    eprintln!("200 IKE_SA+CHILD_SA setups (both sides in one thread): {el:?}");
}

#[test]
fn dead_peer_found_within_two_liveness_intervals() {
    let l = left();
    let iv = l.dpd_interval.expect("left() checks liveness");
    let mut n = Net::new(l, right());
    established(&mut n);
    n.cut_b = true;
    // Silence for one interval starts the check; the check gets one interval to be answered.
    n.advance(iv * 2 + Duration::from_secs(1));
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::IkeSaDown { reason: DownReason::DeadPeer, .. })), "{:?}", n.ev_a);
}

/// One responder (B) and several initiators behind one NAT: every client's datagrams leave
/// from `NAT_IP`, each (client, source port) on its own public port, as a NAPT makes them.
struct NatNet {
    b: Engine,
    clients: Vec<Engine>,
    now: Instant,
    ev_b: Vec<Event>,
    ev_c: Vec<Vec<Event>>,
    out: std::collections::HashMap<(usize, u16), u16>,
    back: std::collections::HashMap<u16, (usize, u16)>,
    next_port: u16,
    /// B's datagrams to a public port with no mapping (they would be lost).
    unmapped: usize,
}

const NAT_IP: &str = "203.0.113.7";

fn client_ip(i: usize) -> IpAddr {
    ip(&format!("192.168.1.{}", 10 + i))
}

impl NatNet {
    fn new(b: Engine, clients: Vec<Engine>) -> NatNet {
        let k = clients.len();
        NatNet { b, clients, now: Instant::now(), ev_b: vec![], ev_c: vec![vec![]; k], out: Default::default(), back: Default::default(), next_port: 40000, unmapped: 0 }
    }

    fn public_port(&mut self, i: usize, port: u16) -> u16 {
        if let Some(p) = self.out.get(&(i, port)) {
            return *p;
        }
        self.next_port += 1;
        self.out.insert((i, port), self.next_port);
        self.back.insert(self.next_port, (i, port));
        self.next_port
    }

    /// The NAT forgets client i's mappings: its next datagrams leave from new ports.
    fn rebind(&mut self, i: usize) {
        let gone: Vec<(usize, u16)> = self.out.keys().filter(|k| k.0 == i).copied().collect();
        for k in gone {
            let p = self.out.remove(&k).unwrap();
            self.back.remove(&p);
        }
    }

    fn shuttle(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for i in 0..self.clients.len() {
                while let Some(t) = self.clients[i].poll_transmit() {
                    moved = true;
                    assert_eq!(t.local.ip(), client_ip(i));
                    let p = self.public_port(i, t.local.port());
                    self.b.handle_datagram(self.now, t.remote, SocketAddr::new(ip(NAT_IP), p), &t.bytes);
                }
                while let Some(e) = self.clients[i].poll_event() {
                    self.ev_c[i].push(e);
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                assert_eq!(t.remote.ip(), ip(NAT_IP));
                match self.back.get(&t.remote.port()) {
                    Some(&(i, port)) => self.clients[i].handle_datagram(self.now, SocketAddr::new(client_ip(i), port), t.local, &t.bytes),
                    None => self.unmapped += 1,
                }
            }
            while let Some(e) = self.b.poll_event() {
                self.ev_b.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.shuttle();
        loop {
            let next = self.clients.iter().chain([&self.b]).filter_map(|e| e.poll_timeout()).min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for c in self.clients.iter_mut().chain([&mut self.b]) {
                        c.handle_timeout(self.now);
                    }
                    self.shuttle();
                }
                _ => break,
            }
        }
        self.now = end;
        self.shuttle();
    }
}

#[test]
fn many_clients_behind_one_nat_told_apart_by_port() {
    // Clients 0..3 have their own identity and PSK; clients 3 and 4 share one.
    const K: usize = 5;
    let id_of = |i: usize| if i >= 3 { ("shared".to_string(), b"shared-psk-0123456789".to_vec()) } else { (format!("client{i}"), format!("psk-of-client-{i}-0123456789").into_bytes()) };
    let mut clients = Vec::new();
    let mut b_peers: Vec<PeerConfig> = Vec::new();
    for i in 0..K {
        let (id, psk) = id_of(i);
        let mut c = peer("left", "right", &format!("10.100.{i}.0"), "10.2.0.0");
        c.local_addrs = vec![client_ip(i)];
        c.local_id = Identity::Fqdn(format!("{id}.interop.test"));
        c.auth = Auth::Psk(psk.clone());
        clients.push(Engine::new(EngineConfig::default(), vec![c]));
        if b_peers.iter().any(|p| p.name == id) {
            continue;
        }
        let mut r = peer("right", "left", "10.2.0.0", "10.100.0.0");
        r.name = id.clone();
        r.remote_addr = None;
        r.remote_id = Identity::Fqdn(format!("{id}.interop.test"));
        r.auth = Auth::Psk(psk);
        r.children[0].remote_ts = vec![ts("10.100.0.0", 16)];
        b_peers.push(r);
    }
    let mut n = NatNet::new(Engine::new(EngineConfig::default(), b_peers), clients);
    for c in n.clients.iter_mut() {
        assert!(c.initiate(n.now, "to-right"));
    }
    n.shuttle();
    // Every client is up, each ChildSaUp on B carries that client's own NAT port.
    let b_ups: Vec<ChildSaUp> = child_ups(&n.ev_b).into_iter().cloned().collect();
    assert_eq!(b_ups.len(), K, "{:?}", n.ev_b);
    let mut b_child_of = Vec::new();
    for i in 0..K {
        let cu = child_ups(&n.ev_c[i]);
        assert_eq!(cu.len(), 1, "client {i}: {:?}", n.ev_c[i]);
        assert_eq!(cu[0].encap, Some((4500, 4500)), "client {i} saw the NAT");
        let bu = b_ups.iter().find(|u| u.inbound.spi == cu[0].outbound.spi).unwrap();
        assert_pair(cu[0], bu);
        assert_eq!(bu.remote_addr, ip(NAT_IP));
        assert_eq!(bu.encap, Some((4500, n.out[&(i, 4500)])), "client {i}");
        assert_eq!(bu.peer, id_of(i).0);
        assert_eq!(bu.remote_ts, vec![ts(&format!("10.100.{i}.0"), 24)]);
        b_child_of.push(bu.inbound.spi);
    }
    let ports: std::collections::HashSet<_> = b_ups.iter().map(|u| u.encap).collect();
    assert_eq!(ports.len(), K);
    assert_eq!(n.b.ike_sa_count(), K);
    // Liveness checks and B's CHILD_SA rekeys reach the right client.
    n.advance(Duration::from_secs(35));
    for (i, spi) in b_child_of.iter().enumerate() {
        assert!(n.b.rekey_child(n.now, *spi));
        n.shuttle();
        let cu = child_ups(&n.ev_c[i]);
        assert_eq!(cu.len(), 2, "client {i}");
        assert_eq!(cu[1].replaces, Some(child_ups(&n.ev_c[i])[0].inbound.spi));
    }
    assert_eq!(n.unmapped, 0);
    assert!(!n.ev_b.iter().any(|e| matches!(e, Event::IkeSaDown { .. } | Event::PeerAddressChanged { .. })), "{:?}", n.ev_b);
    // NAT rebinding: client 2's next request arrives from a new port; B follows it.
    let old_port = n.out[&(2, 4500)];
    n.rebind(2);
    let c2 = child_ups(&n.ev_c[2])[1].inbound.spi;
    assert!(n.clients[2].rekey_child(n.now, c2));
    n.shuttle();
    let new_port = n.out[&(2, 4500)];
    assert_ne!(new_port, old_port);
    let moved: Vec<&Event> = n.ev_b.iter().filter(|e| matches!(e, Event::PeerAddressChanged { .. })).collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    let Event::PeerAddressChanged { peer, remote, local, children, .. } = moved[0] else { unreachable!() };
    assert_eq!((peer.as_str(), *remote), ("client2", SocketAddr::new(ip(NAT_IP), new_port)));
    assert_eq!(local.port(), 4500);
    assert!(children.iter().any(|(_, out)| *out == c2));
    assert_eq!(child_ups(&n.ev_c[2]).len(), 3, "client 2's rekey completed over the new port");
    // B's own requests now go to the new port: a rekey from B lands, with the new encap.
    let b_spi = child_ups(&n.ev_c[2])[2].outbound.spi;
    assert!(n.b.rekey_child(n.now, b_spi));
    n.shuttle();
    let last = child_ups(&n.ev_b).last().copied().unwrap().clone();
    assert_eq!(last.encap, Some((4500, new_port)));
    assert_eq!(child_ups(&n.ev_c[2]).len(), 4);
    n.advance(Duration::from_secs(60));
    assert_eq!(n.unmapped, 0);
    assert!(!n.ev_c.iter().flatten().chain(&n.ev_b).any(|e| matches!(e, Event::IkeSaDown { .. })));
    assert_eq!(n.b.ike_sa_count(), K);
    // The other clients never moved.
    for i in [0, 1, 3, 4] {
        assert!(!n.b.child_sas(&id_of(i).0).is_empty());
    }
}

#[test]
fn acquire_starts_what_is_missing_once() {
    let (mut l, mut r) = (left(), right());
    let mut c2 = l.children[0].clone();
    c2.name = "net2".into();
    c2.local_ts = vec![ts("10.1.1.0", 24)];
    c2.remote_ts = vec![ts("10.2.1.0", 24)];
    // Not rekeyed: it expires after 30 s, so that traffic has to bring it back.
    c2.lifetime = Lifetime { soft: Duration::from_secs(30), hard: Duration::from_secs(30), jitter: Duration::ZERO };
    l.children.push(c2);
    let mut d2 = r.children[0].clone();
    d2.name = "net2".into();
    d2.local_ts = vec![ts("10.2.1.0", 24)];
    d2.remote_ts = vec![ts("10.1.1.0", 24)];
    r.children.push(d2);
    l.start_action = StartAction::Trap;
    let mut n = Net::new(l, r);
    assert!(!n.a.acquire(n.now, "to-right", "nope"));
    assert!(!n.a.acquire(n.now, "nope", "net"));
    // No IKE_SA: the first acquire starts one, the next ones while it is in flight do not.
    for _ in 0..3 {
        assert!(n.a.acquire(n.now, "to-right", "net"));
        assert!(n.a.acquire(n.now, "to-right", "net2"));
    }
    assert_eq!(n.a.ike_sa_count(), 1);
    let tx: Vec<Transmit> = std::iter::from_fn(|| n.a.poll_transmit()).collect();
    assert_eq!(tx.len(), 1);
    for t in tx {
        n.b.handle_datagram(n.now, t.remote, t.local, &t.bytes);
    }
    n.shuttle();
    assert_eq!(count_ike_up(&n.ev_a), 1);
    assert_eq!(n.a.child_sas("to-right").len(), 2);
    // Up: nothing to do.
    let sent = n.a.stats().tx_datagrams;
    assert!(n.a.acquire(n.now, "to-right", "net2"));
    assert_eq!(n.a.stats().tx_datagrams, sent);
    // net2 expires; traffic for it brings it back with one CREATE_CHILD_SA.
    n.advance(Duration::from_secs(31));
    assert_eq!(n.a.child_sas("to-right").len(), 1);
    assert!(n.ev_a.iter().any(|e| matches!(e, Event::ChildSaDown { child, reason: DownReason::Expired, .. } if child == "net2")));
    let ups = child_ups(&n.ev_a).len();
    for _ in 0..3 {
        assert!(n.a.acquire(n.now, "to-right", "net2"));
    }
    assert_eq!(std::iter::from_fn(|| n.a.poll_transmit()).count(), 1);
    // That request was taken off the wire above; its retransmission completes it.
    n.a.handle_timeout(n.now + Duration::from_secs(1));
    n.advance(Duration::from_secs(2));
    let ca = child_ups(&n.ev_a);
    assert_eq!(ca.len(), ups + 1, "{:?}", n.ev_a);
    assert_eq!((ca[ups].child.as_str(), ca[ups].replaces), ("net2", None));
    assert_eq!(n.a.child_sas("to-right").len(), 2);
    assert_eq!(n.b.child_sas("to-left").len(), 2);
}
