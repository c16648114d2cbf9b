//! `net_af_packet` against a kernel veth peer, in a network namespace private to this test
//! (so nothing is left behind). Skipped when not root or namespaces are unavailable.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use dpdk_sys::{ArrayVec, Mbuf, Mempool, Port, PortConf, SOCKET_ID_ANY};

fn ip(args: &str) -> bool {
    Command::new("ip").args(args.split_whitespace()).status().is_ok_and(|s| s.success())
}

/// A raw AF_PACKET socket bound to `ifname`, with a receive timeout.
struct RawSocket(i32);

impl RawSocket {
    fn bind(ifname: &str) -> RawSocket {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto.into()) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: name is a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex != 0);
        // SAFETY: sockaddr_ll is plain data; zero is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        // SAFETY: fd is ours; the pointers and lengths describe live values of the right types.
        unsafe {
            assert_eq!(libc::bind(fd, (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of_val(&sll) as u32), 0);
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), std::mem::size_of_val(&tv) as u32);
        }
        RawSocket(fd)
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: fd is a bound packet socket; frame is a live buffer of frame.len() bytes.
        let n = unsafe { libc::send(self.0, frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(n, frame.len() as isize);
    }

    /// Waits up to `limit` for a frame equal to `want` (the kernel sends its own, e.g. IPv6 ND).
    fn recv_match(&self, want: &[u8], limit: Duration) -> bool {
        let start = Instant::now();
        let mut buf = [0u8; 2048];
        while start.elapsed() < limit {
            // SAFETY: buf is a live, writable buffer of buf.len() bytes.
            let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 && &buf[..n as usize] == want {
                return true;
            }
        }
        false
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.0) };
    }
}

#[test]
fn af_packet_over_veth() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for a network namespace and veth");
        return;
    }
    // A private netns for this thread: the veth, the DPDK socket and the raw socket live
    // there and vanish with the process. `ip` inherits it as our child.
    // SAFETY: unshare only changes this thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        eprintln!("skipped: unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
        return;
    }
    if !(ip("link add rpa type veth peer name rpb") && ip("link set rpa up") && ip("link set rpb up")) {
        eprintln!("skipped: cannot create a veth pair");
        return;
    }

    let _eal = common::init("afpacket", &[], true);
    let pool = Mempool::new_pktmbuf("afp_test", 1023, 32, 2176, SOCKET_ID_ANY).expect("pool");
    let port = Port::probe("net_af_packet0,iface=rpa").expect("probe af_packet");
    assert_eq!(port.dev_info().unwrap().driver, "net_af_packet");
    let out = Command::new("ip").args(["-o", "link", "show", "rpa"]).output().unwrap();
    let mac: Vec<String> = port.mac_addr().iter().map(|b| format!("{b:02x}")).collect();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&mac.join(":")), "the veth's MAC");
    port.configure(&PortConf { rx_desc: 256, tx_desc: 256, ..Default::default() }, &pool).expect("configure");
    port.start().expect("start");
    let peer = RawSocket::bind("rpb");

    // DPDK -> kernel
    let out = common::frame(1, 98);
    let mut m = pool.alloc().unwrap();
    m.append(out.len() as u16).unwrap().copy_from_slice(&out);
    let mut burst = ArrayVec::<Mbuf, 1>::from([m]);
    assert_eq!(port.tx_burst(0, &mut burst), 1);
    assert!(burst.is_empty());
    assert!(peer.recv_match(&out, Duration::from_secs(3)), "frame from DPDK seen on the veth peer");

    // kernel -> DPDK
    let back = common::frame(2, 77);
    peer.send(&back);
    let start = Instant::now();
    let mut got = false;
    let mut rx = ArrayVec::<Mbuf, 32>::new();
    while !got && start.elapsed() < Duration::from_secs(3) {
        port.rx_burst(0, &mut rx);
        got = rx.iter().any(|m| m.data() == &back[..]);
        Mbuf::free_bulk(&mut rx);
    }
    assert!(got, "frame from the kernel received by DPDK");
    let stats = port.stats();
    assert!(stats.opackets >= 1 && stats.ipackets >= 1, "{stats:?}");
    port.stop().unwrap();
    port.close().unwrap();
}
