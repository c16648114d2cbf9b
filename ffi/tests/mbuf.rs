//! Mempool and mbuf semantics against real DPDK (one EAL for the whole file).

mod common;

use std::sync::OnceLock;

use dpdk_sys::{sys, ArrayVec, Eal, Mbuf, Mempool, SOCKET_ID_ANY};

fn started() -> &'static (Eal, Mempool) {
    static POOL: OnceLock<(Eal, Mempool)> = OnceLock::new();
    POOL.get_or_init(|| {
        let eal = common::init("mbuf", &[], true);
        let pool = Mempool::new_pktmbuf("mbuf_test", 1023, 32, sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16, SOCKET_ID_ANY)
            .expect("pool");
        (eal, pool)
    })
}

fn pool() -> Mempool {
    started().1
}

#[test]
fn eal_runs_once_and_reports_errors() {
    let (eal, _) = started();
    let err = Eal::init(&["--no-huge"]).unwrap_err();
    assert_eq!(err.code(), libc::EALREADY);
    assert!(err.to_string().starts_with("rte_eal_init: "), "{err}");
    // No shared files (--no-shconf): init removed the empty runtime directory.
    let dir = eal.runtime_dir();
    assert!(dir.ends_with(format!("rampart-mbuf-{}", std::process::id())), "{dir:?}");
    assert!(!dir.exists(), "{dir:?} left behind");
    assert!(dpdk_sys::tsc_hz() > 0);
    let (a, b) = (dpdk_sys::rdtsc(), dpdk_sys::rdtsc());
    assert!(b >= a);

    let dup = Mempool::new_pktmbuf("mbuf_test", 63, 0, 2048, SOCKET_ID_ANY).unwrap_err();
    assert_eq!(dup.code(), libc::EEXIST, "{dup}");
    assert!(Mempool::lookup("mbuf_test").is_some());
}

#[test]
fn prepend_append_adj_trim() {
    let pool = pool();
    let mut m = pool.alloc().expect("alloc");
    assert!(m.is_empty() && m.data().is_empty() && m.is_contiguous());
    let head = m.headroom();
    assert_eq!(head as u32, sys::RTE_PKTMBUF_HEADROOM);
    let tail = m.tailroom();

    m.append(4).unwrap().copy_from_slice(b"body");
    m.prepend(2).unwrap().copy_from_slice(b"hd");
    assert_eq!(m.data(), b"hdbody");
    assert_eq!(m.len(), 6);
    assert_eq!(m.headroom(), head - 2);
    assert_eq!(m.tailroom(), tail - 4);

    assert!(m.prepend(head).is_none(), "more than the headroom");
    assert!(m.append(tail).is_none(), "more than the tailroom");
    assert_eq!(m.data(), b"hdbody", "failed calls leave the packet alone");

    assert!(m.adj(2));
    assert!(m.trim(1));
    assert_eq!(m.data(), b"bod");
    assert!(!m.adj(4) && !m.trim(4));
    m.data_mut()[0] = b'B';
    assert_eq!(m.data(), b"Bod");

    m.set_user(0xdead_beef_0123_4567);
    assert_eq!(m.user(), 0xdead_beef_0123_4567);
    m.set_port(7);
    assert_eq!(m.port(), 7);

    let raw = m.into_raw();
    // SAFETY: raw came from into_raw just above and is owned by nobody else.
    let m = unsafe { Mbuf::from_raw(raw) };
    assert_eq!(m.data(), b"Bod");
}

#[test]
fn bulk_alloc_and_free_return_everything() {
    pool(); // EAL up first
    // A small pool of its own (no per-lcore cache) so the counts are exact.
    let pool = Mempool::new_pktmbuf("bulk_test", 63, 0, 2048, SOCKET_ID_ANY).expect("pool");
    assert_eq!(pool.in_use_count(), 0);

    let mut burst = ArrayVec::<Mbuf, 32>::new();
    assert!(pool.alloc_bulk(&mut burst, 32));
    assert_eq!(burst.len(), 32);
    assert_eq!(pool.in_use_count(), 32);
    assert!(!pool.alloc_bulk(&mut burst, 1), "no room left in the burst");
    assert_eq!(pool.in_use_count(), 32);

    let mut more = ArrayVec::<Mbuf, 32>::new();
    assert!(!pool.alloc_bulk(&mut more, 32), "only 31 left: all or nothing");
    assert!(more.is_empty());
    assert_eq!(pool.in_use_count(), 32);

    drop(burst.remove(3)); // freed by Drop
    assert_eq!(pool.in_use_count(), 31);
    Mbuf::free_bulk(&mut burst);
    assert!(burst.is_empty());
    assert_eq!(pool.in_use_count(), 0);

    let held: Vec<Mbuf> = std::iter::from_fn(|| pool.alloc()).collect();
    assert_eq!(held.len(), 63);
    assert!(pool.alloc().is_none());
    drop(held);
    assert_eq!(pool.avail_count(), 63);
}

#[test]
fn mbufs_cross_threads() {
    let pool = pool();
    let m = pool.alloc().unwrap();
    std::thread::spawn(move || {
        assert_eq!(dpdk_sys::lcore_id(), None, "a plain thread has no lcore");
        let id = dpdk_sys::register_thread().expect("register");
        assert_eq!(dpdk_sys::lcore_id(), Some(id));
        let n = pool.alloc().unwrap();
        drop((m, n));
        dpdk_sys::unregister_thread();
    })
    .join()
    .unwrap();
}
