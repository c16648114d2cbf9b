//! Burst rx/tx through real PMDs: `net_ring0` (its tx rings feed its own rx rings) and a
//! `net_null` probed at run time.

mod common;

use dpdk_sys::{ArrayVec, Mbuf, Mempool, Port, PortConf, SOCKET_ID_ANY};

#[test]
fn ring_loopback_and_null_port() {
    let _eal = common::init("ring", &["--vdev", "net_ring0"], false);
    let pool = Mempool::new_pktmbuf("ring_test", 1023, 32, 2176, SOCKET_ID_ANY).expect("pool");

    // net_ring0 from --vdev: already probed by EAL, so probe finds it.
    let port = Port::probe("net_ring0").expect("probe net_ring0");
    assert_eq!(port.name(), "net_ring0");
    let info = port.dev_info().unwrap();
    assert_eq!(info.driver, "net_ring");
    assert!(!info.rss_capable());

    let asked = PortConf { rx_queues: 64, tx_queues: 2, rx_desc: 256, tx_desc: 256, rss: true, mtu: None };
    let granted = port.configure(&asked, &pool).expect("configure");
    assert_eq!(granted.rx_queues, info.max_rx_queues, "clamped to the device's max");
    assert_eq!(granted.tx_queues, 2);
    assert!(!granted.rss, "net_ring has no RSS");
    port.start().expect("start");
    let _ = port.promiscuous(true); // not every PMD implements it; must not panic either way
    assert!(port.link().unwrap().up);
    assert_eq!(port.mac_addr().len(), 6);

    // Send 32 distinct frames on queue 0 and get the same bytes back on rx queue 0.
    let frames: Vec<Vec<u8>> = (0..32u8).map(|i| common::frame(i, 60 + i as usize)).collect();
    let mut burst = ArrayVec::<Mbuf, 32>::new();
    assert!(pool.alloc_bulk(&mut burst, 32));
    for (m, f) in burst.iter_mut().zip(&frames) {
        m.append(f.len() as u16).unwrap().copy_from_slice(f);
        m.set_user(f.len() as u64);
    }
    assert_eq!(port.tx_burst(0, &mut burst), 32);
    assert!(burst.is_empty(), "sent mbufs leave the burst");

    let mut rx = ArrayVec::<Mbuf, 32>::new();
    let n = port.rx_burst(0, &mut rx);
    assert_eq!(n, 32);
    for (m, f) in rx.iter().zip(&frames) {
        assert_eq!(m.data(), &f[..]);
        assert_eq!(m.user(), f.len() as u64, "the user field travels with the mbuf");
    }
    Mbuf::free_bulk(&mut rx);
    assert_eq!(port.rx_burst(0, &mut rx), 0, "nothing more");

    let mut two = ArrayVec::<Mbuf, 2>::new();
    assert!(pool.alloc_bulk(&mut two, 2));
    for m in two.iter_mut() {
        m.append(60).unwrap().fill(0xab);
    }
    assert_eq!(port.tx_burst(1, &mut two), 2);
    let mut rx = ArrayVec::<Mbuf, 8>::new();
    assert_eq!(port.rx_burst(1, &mut rx), 2);
    drop(rx);

    let stats = port.stats();
    assert_eq!(stats.opackets, 34);
    assert_eq!(stats.ipackets, 34);
    // net_ring counts packets only (its byte counters stay 0).
    port.stop().unwrap();
    port.close().unwrap();

    // A vdev probed at run time.
    let null = Port::probe("net_null0,size=64").expect("probe net_null0");
    assert_eq!(null.name(), "net_null0", "(the closed port's id may be reused)");
    assert_eq!(null.dev_info().unwrap().driver, "net_null");
    null.configure(&PortConf::default(), &pool).expect("configure null");
    null.start().unwrap();
    let mut rx = ArrayVec::<Mbuf, 16>::new();
    assert_eq!(null.rx_burst(0, &mut rx), 16, "net_null makes packets up");
    assert!(rx.iter().all(|m| m.len() == 64));
    assert_eq!(null.rx_burst(0, &mut rx), 0, "no room left");
    assert_eq!(null.tx_burst(0, &mut rx), 16);
    assert!(rx.is_empty());
    assert_eq!(null.stats().opackets, 16);
    assert!(Port::all().contains(&null));
    assert!(Port::probe("net_nosuchpmd0").is_err());
    null.stop().unwrap();
    null.close().unwrap();
    assert_eq!(pool.in_use_count(), 0, "every mbuf came back");
}
