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
