//! The namespace testbed (scripts/testbed.sh, P=rp) with two Rampart gateways started from
//! configs written into a temp dir, each with its own control socket there; `rampart ctl`
//! run against them; captures of the WAN. Shared by the namespace tests.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One testbed at a time within a test binary (the names are fixed).
pub static BED: Mutex<()> = Mutex::new(());

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn sh(cmd: &str) -> Output {
    Command::new("bash").arg("-c").arg(cmd).current_dir(root()).output().expect("bash")
}

pub fn ok(cmd: &str) -> String {
    let o = sh(cmd);
    assert!(o.status.success(), "`{cmd}` failed: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The testbed config of gateway `g` (1 or 2), as JSON.
pub fn testbed_config(g: usize) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(format!("configs/testbed/gw{g}.json"))).unwrap()).unwrap()
}

/// A peer of the IKE scenario: gateway `g` talking to the other one.
pub fn ike_peer(g: usize, start: &str) -> Value {
    let (me, other) = if g == 1 { (1, 2) } else { (2, 1) };
    json!({
        "name": format!("gw{other}"),
        "local_addrs": [format!("192.0.2.{me}")],
        "remote_addr": format!("192.0.2.{other}"),
        "local_id": format!("gw{me}.rampart.test"),
        "remote_id": format!("gw{other}.rampart.test"),
        "auth": {"psk": "cli-test-psk-0123456789abcdef"},
        "start_action": start,
        "dpd_action": "clear",
        "children": [{"name": "net", "local_ts": [format!("10.{me}.0.0/24")], "remote_ts": [format!("10.{other}.0.0/24")]}]
    })
}

/// A peer that never connects (nobody has its address), for reload tests.
pub fn dummy_peer(name: &str, n: u8) -> Value {
    json!({
        "name": name,
        "local_addrs": ["192.0.2.1"],
        "remote_addr": format!("198.51.100.{n}"),
        "local_id": "gw1.rampart.test",
        "remote_id": format!("{name}.rampart.test"),
        "auth": {"psk": "dummy-peer-psk-0123456789abcdef"},
        "children": [{"name": "net", "local_ts": ["10.1.0.0/24"], "remote_ts": [format!("10.{}.0.0/24", 100 + n)]}]
    })
}

/// The testbed config of gateway `g` with IKE instead of manual SAs.
pub fn ike_config(g: usize, start: &str) -> Value {
    let mut c = testbed_config(g);
    let m = c.as_object_mut().unwrap();
    m.remove("policies");
    m.remove("sas");
    m.insert("peers".into(), json!([ike_peer(g, start)]));
    c
}

pub struct Bed {
    pub gws: Vec<Child>,
    pub dir: PathBuf,
    pub sockets: Vec<PathBuf>,
    pub configs: Vec<PathBuf>,
}

impl Bed {
    /// Brings the testbed up and writes the configs (their `control.socket` set to a socket in
    /// the temp dir); starts the gateways whose `start` is true.
    pub fn up(tag: &str, mut cfgs: Vec<Value>, start: [bool; 2]) -> Bed {
        let dir = std::env::temp_dir().join(format!("rampart-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ok("P=rp scripts/testbed.sh up");
        let mut sockets = Vec::new();
        let mut configs = Vec::new();
        for (i, c) in cfgs.iter_mut().enumerate() {
            let sock = dir.join(format!("gw{}.sock", i + 1));
            c["control"] = json!({"socket": sock});
            let file = dir.join(format!("gw{}.json", i + 1));
            std::fs::write(&file, serde_json::to_string_pretty(c).unwrap()).unwrap();
            sockets.push(sock);
            configs.push(file);
        }
        let mut bed = Bed { gws: Vec::new(), dir, sockets, configs };
        for g in 1..=2 {
            if start[g - 1] {
                bed.start(g);
            }
        }
        bed
    }

    pub fn start(&mut self, g: usize) {
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("rpgw{g}"), env!("CARGO_BIN_EXE_rampart"), "run", "--config"])
            .arg(&self.configs[g - 1])
            .stdout(std::fs::File::create(self.dir.join(format!("gw{g}.out"))).unwrap())
            .stderr(std::fs::File::create(self.dir.join(format!("gw{g}.log"))).unwrap())
            .spawn()
            .expect("start rampart");
        self.gws.push(child);
        let t0 = Instant::now();
        while !self.ctl(g, &["version"]).status.success() {
            assert!(t0.elapsed() < Duration::from_secs(30), "gw{g} did not answer on its control socket; see {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `rampart ctl --socket S ARGS...` against gateway `g`.
    pub fn ctl(&self, g: usize, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rampart")).arg("ctl").arg("--socket").arg(&self.sockets[g - 1]).args(args).output().expect("rampart ctl")
    }

    /// `ctl`, which must succeed; its stdout.
    pub fn ctl_ok(&self, g: usize, args: &[&str]) -> String {
        let o = self.ctl(g, args);
        assert!(o.status.success(), "rampart ctl {args:?} on gw{g} failed: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `ctl --json`, parsed.
    pub fn ctl_json(&self, g: usize, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ctl_ok(g, &a)).expect("JSON from ctl --json")
    }

    /// The inbound SPIs of gateway `g`'s CHILD_SAs.
    pub fn child_spis(&self, g: usize) -> Vec<String> {
        let v = self.ctl_json(g, &["list-sas"]);
        v["child_sas"].as_array().unwrap().iter().map(|c| c["spi_in"].as_str().unwrap().to_string()).collect()
    }

    /// Waits until `f` holds (30 s at most).
    pub fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while !f() {
            assert!(t0.elapsed() < Duration::from_secs(30), "timed out waiting for {what}; logs in {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Drops of one reason on gateway `g`, summed over its workers.
    pub fn drops(&self, g: usize, reason: &str) -> u64 {
        let c = self.ctl_json(g, &["counters"]);
        c["workers"].as_array().unwrap().iter().map(|w| w["drops"][reason].as_u64().unwrap_or(0)).sum()
    }

    pub fn log(&self, g: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("gw{g}.log"))).unwrap_or_default() + &std::fs::read_to_string(self.dir.join(format!("gw{g}.out"))).unwrap_or_default()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for c in &mut self.gws {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in &mut self.gws {
            let _ = c.wait();
        }
        let _ = sh("P=rp scripts/testbed.sh down");
        eprintln!("logs in {}", self.dir.display());
    }
}

/// Ping from host `h` (1 or 2) to `dst` in the background: (child, its output file).
pub fn ping_bg(dir: &Path, h: usize, dst: &str, count: u32, interval: &str) -> (Child, PathBuf) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let out = dir.join(format!("ping-{}.txt", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let c = Command::new("ip")
        .args(["netns", "exec", &format!("rph{h}"), "ping", "-n", "-c", &count.to_string(), "-i", interval, "-W", "1", dst])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("ping");
    (c, out)
}

/// Waits for a background ping; (transmitted, received).
pub fn ping_result((mut c, out): (Child, PathBuf)) -> (u32, u32) {
    let _ = c.wait();
    let text = std::fs::read_to_string(&out).unwrap();
    let line = text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("no ping summary: {text}"));
    let n: Vec<u32> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    (n[0], n[1])
}

/// Captures on `iface` in `ns`, keeping the first `snaplen` bytes of each frame (0: all).
/// DPDK's af_packet sends past the kernel's taps (qdisc bypass), so what a gateway sends is
/// captured where it arrives.
pub fn capture(ns: &str, iface: &str, file: &Path, snaplen: u32) -> (Child, PathBuf) {
    let c = Command::new("ip")
        .args(["netns", "exec", ns, "tcpdump", "-U", "--immediate-mode", "-n", "-B", "65536", "-s", &snaplen.to_string(), "-i", iface, "-w"])
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
pub fn stop((mut c, file): (Child, PathBuf)) {
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
pub fn pcap_frames(file: &Path) -> Vec<Vec<u8>> {
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

/// Sends a raw frame out of `iface` in `ns`.
pub fn inject(ns: &str, iface: &str, frame: &[u8]) {
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    ok(&format!(
        "ip netns exec {ns} python3 -c \"import socket,sys; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('{iface}',0)); s.send(bytes.fromhex(sys.argv[1]))\" {hex}"
    ));
}
