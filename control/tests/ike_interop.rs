// Interop with strongSwan (see /work/shared/interop/README.md, PEER=external): drives the
// sans-IO engine over kernel UDP sockets on 192.0.2.2:500/4500 inside ss-right. Ignored by
// default; run with
//   ip netns exec ss-right <test binary> --ignored --nocapture strongswan_interop
// Environment: IKE_INTEROP_SECS (run time, default 30), IKE_INTEROP_INITIATE=1 (we initiate),
// IKE_INTEROP_REKEY=1 (after setup, rekey the CHILD_SA then the IKE_SA from our side),
// IKE_INTEROP_GROUP (31, 19, 14...).

use rampart_control::ike::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn config() -> PeerConfig {
    let group = std::env::var("IKE_INTEROP_GROUP").ok().and_then(|g| g.parse().ok()).and_then(DhGroup::from_wire).unwrap_or(DhGroup::Curve25519);
    let psk = std::env::var("PSK").unwrap_or_else(|_| "interop-testbed-psk-0123456789abcdef".into());
    PeerConfig {
        name: "ss-left".into(),
        local_addrs: vec!["192.0.2.2".parse().unwrap()],
        remote_addr: Some("192.0.2.1".parse().unwrap()),
        local_id: Identity::Fqdn("right.interop.test".into()),
        remote_id: Identity::Fqdn("left.interop.test".into()),
        auth: Auth::Psk(psk.into_bytes()),
        ike_proposals: vec![
            IkeProposal { encr: vec![EncrAlg::AesGcm16_128, EncrAlg::AesGcm16_256], prf: vec![PrfAlg::HmacSha256, PrfAlg::HmacSha384], integ: vec![], dh: vec![group, DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Modp2048] },
        ],
        esp_proposals: vec![EspProposal { algs: vec![EspAlg::AesGcm128, EspAlg::AesGcm256], esn: false, dh: vec![group, DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Modp2048] }],
        children: vec![ChildConfig {
            name: "net".into(),
            local_ts: vec![TrafficSelector::from_prefix("10.2.0.0".parse().unwrap(), 24)],
            remote_ts: vec![TrafficSelector::from_prefix("10.1.0.0".parse().unwrap(), 24)],
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

#[test]
#[ignore]
fn strongswan_interop() {
    let secs: u64 = std::env::var("IKE_INTEROP_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let s500 = UdpSocket::bind("192.0.2.2:500").expect("bind 500 (run inside ss-right)");
    let s4500 = UdpSocket::bind("192.0.2.2:4500").expect("bind 4500");
    for s in [&s500, &s4500] {
        s.set_nonblocking(true).unwrap();
    }
    let mut e = Engine::new(EngineConfig::default(), vec![config()]);
    let start = Instant::now();
    if std::env::var("IKE_INTEROP_INITIATE").is_ok() {
        e.initiate(start, "ss-left");
    }
    let rekey = std::env::var("IKE_INTEROP_REKEY").is_ok();
    let mut child_up: Option<(Instant, u32)> = None;
    let (mut rekeyed_child, mut rekeyed_ike) = (false, false);
    let mut ups = 0;
    let mut buf = vec![0u8; 65536];
    while start.elapsed() < Duration::from_secs(secs) {
        let now = Instant::now();
        for s in [&s500, &s4500] {
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                let local = s.local_addr().unwrap();
                e.handle_datagram(now, local, from, &buf[..n]);
            }
        }
        if e.poll_timeout().is_some_and(|t| t <= now) {
            e.handle_timeout(now);
        }
        while let Some(t) = e.poll_transmit() {
            let s = if t.local.port() == 4500 { &s4500 } else { &s500 };
            let _ = s.send_to(&t.bytes, t.remote);
        }
        while let Some(ev) = e.poll_event() {
            println!("EVENT {ev:?}");
            if let Event::ChildSaUp(c) = &ev {
                ups += 1;
                child_up = Some((now, c.inbound.spi));
            }
        }
        if let (true, Some((t, spi))) = (rekey, child_up) {
            if !rekeyed_child && now.duration_since(t) > Duration::from_secs(3) {
                println!("ACTION rekey_child {spi:08x}: {}", e.rekey_child(now, spi));
                rekeyed_child = true;
            } else if rekeyed_child && !rekeyed_ike && now.duration_since(t) > Duration::from_secs(3) {
                println!("ACTION rekey_ike: {}", e.rekey_ike(now, "ss-left"));
                rekeyed_ike = true;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!("STATS {:?}", e.stats());
    println!("IKE_SAS {:?} CHILD_SAS {:?}", e.ike_sas("ss-left"), e.child_sas("ss-left"));
    let _: SocketAddr = "0.0.0.0:0".parse().unwrap();
    assert!(ups >= 1, "no CHILD_SA came up");
}
