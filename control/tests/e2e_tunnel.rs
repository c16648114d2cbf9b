//! End to end in network namespaces (scripts/testbed.sh): two kernel hosts, two Rampart
//! gateways on DPDK net_af_packet ports, a WAN veth between them, manually keyed SAs.
//! Ping and a 50 MB checksummed TCP transfer cross the tunnel; tshark (an independent
//! dissector) sees only ESP between the gateways on the WAN; a replayed ESP frame and one
//! with a bad ICV are dropped and counted; DISCARD traffic never reaches the WAN.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn sh(cmd: &str) -> Output {
    Command::new("bash").arg("-c").arg(cmd).current_dir(root()).output().expect("bash")
}

fn ok(cmd: &str) -> String {
    let o = sh(cmd);
    assert!(o.status.success(), "`{cmd}` failed: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

struct Bed {
    gws: Vec<(Child, PathBuf)>,
    dir: PathBuf,
}

impl Bed {
    fn up() -> Bed {
        let dir = std::env::temp_dir().join(format!("rampart-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        ok("P=rp scripts/testbed.sh up");
        let mut gws = Vec::new();
        for g in 1..=2 {
            let out = dir.join(format!("gw{g}.out"));
            let child = Command::new("ip")
                .args(["netns", "exec", &format!("rpgw{g}"), env!("CARGO_BIN_EXE_rampart"), "run", "--config"])
                .arg(root().join(format!("configs/testbed/gw{g}.json")))
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(dir.join(format!("gw{g}.log"))).unwrap())
                .spawn()
                .expect("start rampart");
            gws.push((child, out));
        }
        Bed { gws, dir }
    }

    /// The drops of one reason, summed over the workers, from a fresh counter report.
    fn drops(&self, gw: usize, reason: &str) -> u64 {
        let (child, out) = &self.gws[gw - 1];
        let before = std::fs::read_to_string(out).unwrap_or_default().matches("== rampart counters").count();
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
        let t0 = Instant::now();
        loop {
            let text = std::fs::read_to_string(out).unwrap_or_default();
            if text.matches("== rampart counters").count() > before {
                std::thread::sleep(Duration::from_millis(100));
                let text = std::fs::read_to_string(out).unwrap_or_default();
                let last = text.rsplit("== rampart counters").next().unwrap().to_string();
                return last
                    .lines()
                    .filter(|l| l.starts_with("worker "))
                    .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                    .filter_map(|w| w.strip_prefix(&format!("{reason}=")).map(|n| n.parse::<u64>().unwrap()))
                    .sum();
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "gw{gw} printed no counters");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for (c, _) in &mut self.gws {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for (c, _) in &mut self.gws {
            let _ = c.wait();
        }
        let _ = sh("P=rp scripts/testbed.sh down");
        eprintln!("logs in {}", self.dir.display());
    }
}

fn capture(iface_ns: &str, iface: &str, file: &Path) -> (Child, PathBuf) {
    let c = Command::new("ip")
        .args(["netns", "exec", iface_ns, "tcpdump", "-U", "-n", "-s", "200", "-B", "65536", "-i", iface, "-w"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(700));
    (c, file.to_path_buf())
}

/// Stops a capture once it has caught up: tcpdump reads behind the traffic, and what is
/// still in its buffer when it is interrupted is lost.
fn stop((mut c, file): (Child, PathBuf)) {
    let size = || std::fs::metadata(&file).map_or(0, |m| m.len());
    let t0 = Instant::now();
    let mut last = size();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = size();
        if now == last || t0.elapsed() > Duration::from_secs(20) {
            break;
        }
        last = now;
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
    let _ = c.wait();
}

/// The frames of a classic pcap file that were captured whole.
fn pcap_frames(file: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(file).unwrap();
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let len = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(b[at + 12..at + 16].try_into().unwrap()) as usize;
        if len == orig {
            out.push(b[at + 16..at + 16 + len].to_vec());
        }
        at += 16 + len;
    }
    out
}

fn inject(ns: &str, iface: &str, frame: &[u8]) {
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    ok(&format!(
        "ip netns exec {ns} python3 -c \"import socket,sys; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('{iface}',0)); s.send(bytes.fromhex(sys.argv[1]))\" {hex}"
    ));
}

#[test]
fn tunnel_end_to_end() {
    if !is_root() {
        eprintln!("SKIPPED tunnel_end_to_end: needs root for network namespaces");
        return;
    }
    let bed = Bed::up();
    let t0 = Instant::now();
    while !sh("ip netns exec rph1 ping -c1 -W1 10.2.0.1").status.success() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the tunnel did not come up; see {}", bed.dir.display());
    }
    // DPDK's af_packet sends past the kernel's taps (qdisc bypass), so what a gateway sends
    // is captured where it arrives: gw1's traffic on gw2's end of the WAN, and the reverse.
    let pcap = bed.dir.join("wan-to-gw2.pcap");
    let pcap_back = bed.dir.join("wan-to-gw1.pcap");
    let caps = [capture("rpgw2", "rpg2-wan", &pcap), capture("rpgw1", "rpg1-wan", &pcap_back)];
    ok("ip netns exec rph1 ping -c 5 -i 0.2 10.2.0.1");
    ok("ip netns exec rph2 ping -c 3 -i 0.2 10.1.0.1");
    ok("ip netns exec rph1 ping -6 -c 3 -i 0.2 fd02::1");
    // The far gateway's own LAN address, through the tunnel: its answer goes back in it.
    ok("ip netns exec rph1 ping -c 2 -i 0.2 10.2.0.254");
    println!("{}", ok("python3 scripts/transfer.py --server-ns rph2 --client-ns rph1 --addr 10.2.0.1 --mb 50"));
    // Small frames captured whole, newer than the transfer: one of them is replayed below.
    ok("ip netns exec rph1 ping -c 2 -i 0.2 10.2.0.1");
    caps.into_iter().for_each(stop);

    // The WAN, as an independent dissector reads it: ESP between the gateways, and ARP.
    let fields = ok(&format!("tshark -r {} -T fields -e frame.protocols -e ip.src -e ip.dst", pcap.display()))
        + &ok(&format!("tshark -r {} -T fields -e frame.protocols -e ip.src -e ip.dst", pcap_back.display()));
    let mut esp = 0;
    for line in fields.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f[0] == "eth:ethertype:arp" {
            continue;
        }
        assert_eq!(f[0], "eth:ethertype:ip:esp", "not ESP on the WAN: {line}");
        assert!(matches!((f[1], f[2]), ("192.0.2.1", "192.0.2.2") | ("192.0.2.2", "192.0.2.1")), "{line}");
        esp += 1;
    }
    assert!(esp > 30_000, "only {esp} ESP frames for 50 MB");

    // Replay a captured ESP frame from gw1 towards gw2: dropped and counted. The newest one,
    // so that it is inside the window: with ESN, a sequence number left of the window is
    // taken for the next 2^32 cycle (RFC 4303 A2) and fails the ICV instead.
    let frames = pcap_frames(&pcap);
    let from_gw1 = frames
        .iter()
        .rev()
        .find(|f| f.len() > 80 && f[12..14] == [8, 0] && f[23] == 50 && f[26..30] == [192, 0, 2, 1])
        .expect("an ESP frame from gw1")
        .clone();
    let replay0 = bed.drops(2, "replay");
    inject("rpgw1", "rpg1-wan", &from_gw1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(bed.drops(2, "replay"), replay0 + 1, "the replayed frame was not counted as a replay");

    // The same frame with a sequence number never seen and one ICV bit flipped: it passes the
    // replay check, fails authentication, and must not advance the window.
    let mut forged = from_gw1.clone();
    let seq_at = 14 + 20 + 4;
    let seq = u32::from_be_bytes(forged[seq_at..seq_at + 4].try_into().unwrap());
    forged[seq_at..seq_at + 4].copy_from_slice(&(seq + 100_000).to_be_bytes());
    *forged.last_mut().unwrap() ^= 1;
    let auth0 = bed.drops(2, "auth_failed");
    inject("rpgw1", "rpg1-wan", &forged);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(bed.drops(2, "auth_failed"), auth0 + 1, "the forged frame was not counted as an authentication failure");
    ok("ip netns exec rph1 ping -c 2 -i 0.2 10.2.0.1");

    // DISCARD: nothing for the blocked host reaches the WAN.
    let pcap2 = bed.dir.join("wan-discard.pcap");
    let cap = capture("rpgw2", "rpg2-wan", &pcap2);
    let discard0 = bed.drops(1, "policy_discard");
    assert!(!sh("ip netns exec rph1 ping -c 3 -i 0.2 -W 1 10.2.0.99").status.success());
    stop(cap);
    assert_eq!(bed.drops(1, "policy_discard"), discard0 + 3);
    let n = ok(&format!("tshark -r {} -Y 'ip' -T fields -e ip.src | wc -l", pcap2.display()));
    assert_eq!(n.trim(), "0", "discarded traffic reached the WAN");
}
