//! `Ring` and `Port::from_rings`: a net_ring ethdev over rings we own, fed and drained from
//! the test as a generator and a sink would.

mod common;

use dpdk_sys::{ArrayVec, Mbuf, Mempool, Port, PortConf, Ring, SOCKET_ID_ANY};

#[test]
fn rings_and_ring_port() {
    let _eal = common::init("ringdev", &[], false);
    let pool = Mempool::new_pktmbuf("ringdev_pool", 2047, 32, 2176, SOCKET_ID_ANY).expect("pool");

    // Plain ring: enqueue in order, dequeue in order.
    let r = Ring::new("t_plain", 64).expect("ring");
    assert!(Ring::new("t_plain", 64).is_err(), "names are unique");
    assert_eq!(Ring::lookup("t_plain").unwrap().as_ptr(), r.as_ptr());
    let mut burst = ArrayVec::<Mbuf, 8>::new();
    assert!(pool.alloc_bulk(&mut burst, 5));
    for (i, m) in burst.iter_mut().enumerate() {
        m.set_user(i as u64);
    }
    assert_eq!(r.enqueue_burst(&mut burst), 5);
    assert!(burst.is_empty());
    assert_eq!(r.count(), 5);
    let mut out = ArrayVec::<Mbuf, 16>::new();
    assert!(pool.alloc_bulk(&mut out, 1));
    assert_eq!(r.dequeue_burst(&mut out), 5, "into the room after what is there");
    assert_eq!(out[1..].iter().map(|m| m.user()).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    Mbuf::free_bulk(&mut out);

    // A full ring takes what fits (size - 1) and leaves the rest with the caller.
    let small = Ring::new("t_small", 4).unwrap();
    let mut five = ArrayVec::<Mbuf, 5>::new();
    assert!(pool.alloc_bulk(&mut five, 5));
    for (i, m) in five.iter_mut().enumerate() {
        m.set_user(i as u64);
    }
    assert_eq!(small.enqueue_burst(&mut five), 3);
    assert_eq!(five.iter().map(|m| m.user()).collect::<Vec<_>>(), vec![3, 4], "the rest, in order");
    drop(five);
    let mut out = ArrayVec::<Mbuf, 8>::new();
    assert_eq!(small.dequeue_burst(&mut out), 3);
    drop(out);

    // A port over two queue pairs: rx rings fed from outside, tx rings drained outside.
    let rx: Vec<Ring> = (0..2).map(|i| Ring::new(&format!("t_rx{i}"), 1024).unwrap()).collect();
    let tx: Vec<Ring> = (0..2).map(|i| Ring::new(&format!("t_tx{i}"), 1024).unwrap()).collect();
    let port = Port::from_rings("ring_t", &rx.iter().collect::<Vec<_>>(), &tx.iter().collect::<Vec<_>>()).expect("from_rings");
    assert_eq!(port.name(), "net_ring_ring_t");
    assert!(Port::from_rings("ring_t", &[&rx[0]], &[&tx[0]]).is_err(), "one port per name");
    let info = port.dev_info().unwrap();
    assert_eq!(info.driver, "net_ring");
    assert_eq!((info.max_rx_queues, info.max_tx_queues), (2, 2));
    let conf = PortConf { rx_queues: 2, tx_queues: 2, rx_desc: 512, tx_desc: 512, rss: false, mtu: None };
    let g = port.configure(&conf, &pool).expect("configure");
    assert_eq!((g.rx_queues, g.tx_queues), (2, 2));
    port.start().unwrap();

    for q in 0..2u16 {
        let frames: Vec<Vec<u8>> = (0..16u8).map(|i| common::frame(i + 16 * q as u8, 64 + i as usize)).collect();
        let mut b = ArrayVec::<Mbuf, 16>::new();
        assert!(pool.alloc_bulk(&mut b, 16));
        for (m, f) in b.iter_mut().zip(&frames) {
            m.append(f.len() as u16).unwrap().copy_from_slice(f);
            m.set_user(0xfeed_0000 + f.len() as u64);
        }
        assert_eq!(rx[q as usize].enqueue_burst(&mut b), 16);
        // Nothing crosses queues.
        let mut got = ArrayVec::<Mbuf, 32>::new();
        assert_eq!(port.rx_burst(1 - q, &mut got), 0);
        assert_eq!(port.rx_burst(q, &mut got), 16);
        for (m, f) in got.iter().zip(&frames) {
            assert_eq!(m.data(), &f[..]);
            assert_eq!(m.user(), 0xfeed_0000 + f.len() as u64);
        }
        // And back out through the tx ring of the same queue.
        assert_eq!(port.tx_burst(q, &mut got), 16);
        assert!(got.is_empty());
        assert_eq!(tx[1 - q as usize].count(), 0);
        let mut sink = ArrayVec::<Mbuf, 32>::new();
        assert_eq!(tx[q as usize].dequeue_burst(&mut sink), 16);
        assert_eq!(sink[3].data(), &frames[3][..]);
        Mbuf::free_bulk(&mut sink);
    }
    let s = port.stats();
    assert_eq!((s.ipackets, s.opackets), (32, 32));
    port.stop().unwrap();
    port.close().unwrap();
    assert_eq!(pool.in_use_count(), 0, "every mbuf came back");
}
