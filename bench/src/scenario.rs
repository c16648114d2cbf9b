//! The bench topology as a Rampart config: port 0 "lan" (protected, 10.1.0.0/16), port 1
//! "wan" (172.16.1.5 and the peer's 172.16.2.5, so ESP sent to the peer can come back in
//! for `--direction both`), N tunnels, P policies spreading the flows over them. The tables
//! are built from it by `rampart_control::build::tables`, as `rampart run` builds them.

use crate::args::Args;
use rampart_control::config::Config;
use rampart_dataplane::esp::{Sa, SaParams};
use rampart_dataplane::l3::{Mac, Neighbors};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

pub const LOCAL: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 5);
pub const PEER: Ipv4Addr = Ipv4Addr::new(172, 16, 2, 5);
/// The next hop on the LAN for decrypted traffic, and the peer on the WAN.
pub const LAN_NEXT_HOP: Ipv4Addr = Ipv4Addr::new(10, 1, 255, 1);
pub const LAN_HOST_MAC: Mac = [0x02, 0, 0, 0, 0x10, 0x01];
pub const PEER_MAC: Mac = [0x02, 0, 0, 0, 0x20, 0x01];
/// The anchors' tunnel uses SPI 5; ours start at 0x1000 (below 256 is reserved to us too).
pub const SPI_BASE: u32 = 0x1000;

/// Key || salt of tunnel i: distinct per tunnel, known to the verifier.
pub fn key(i: usize) -> Vec<u8> {
    (0..20u32).map(|j| (i as u32).wrapping_mul(131).wrapping_add(j * 17 + 1) as u8).collect()
}

pub fn spi(i: usize) -> u32 {
    SPI_BASE + i as u32
}

/// The destination that policy i selects (policies > 1), as a host address.
fn policy_dst(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 2, 0, 0)) + i as u32)
}

/// Flow f: (src, dst, sport, dport) of its plaintext packet, and the tunnel it takes.
pub fn flow(a: &Args, f: usize) -> (Ipv4Addr, Ipv4Addr, u16, u16, usize) {
    let src = Ipv4Addr::new(10, 1, (f / 254 % 255) as u8, (f % 254 + 1) as u8);
    let (dst, policy) = if a.policies > 1 {
        let p = f % a.policies;
        (policy_dst(p), p)
    } else {
        (Ipv4Addr::new(10, 2, (f / 254 % 255) as u8, (f % 254 + 1) as u8), 0)
    };
    (src, dst, 1024 + (f % 60000) as u16, 5001, policy % a.sas)
}

/// The config JSON for ports named by `lan` and `wan` devargs.
pub fn config_json(a: &Args, lan: &str, wan: &str, core: usize) -> String {
    let mut s = String::with_capacity(512 + a.sas * 400 + a.policies * 300);
    let _ = write!(
        s,
        r#"{{"cores": [{}], "ports": [
  {{"name": "lan", "devargs": "{lan}", "addresses": ["10.1.255.254/16"]}},
  {{"name": "wan", "devargs": "{wan}", "addresses": ["{LOCAL}/24", "{PEER}/24"]}}],
 "routes": [{{"dst": "10.0.0.0/8", "via": "{LAN_NEXT_HOP}", "port": "lan"}}],
 "default_action": "discard",
 "sas": ["#,
        (0..a.workers).map(|w| (core + w).to_string()).collect::<Vec<_>>().join(",")
    );
    for i in 0..a.sas {
        let k: String = key(i).iter().map(|b| format!("{b:02x}")).collect();
        let sep = if i == 0 { "" } else { "," };
        // The inbound twin has the same SPI and key, so what we send the peer we can also
        // take back in (`both`); replay window 0, as ipsec-secgw's default, because the
        // generator replays the same ESP frames (`decrypt`).
        let _ = write!(
            s,
            r#"{sep}
  {{"name": "o{i}", "direction": "outbound", "spi": {}, "alg": "aes-gcm-128", "key": "{k}", "local": "{LOCAL}", "remote": "{PEER}"}},
  {{"name": "i{i}", "direction": "inbound", "spi": {}, "alg": "aes-gcm-128", "key": "{k}", "local": "{PEER}", "remote": "{LOCAL}", "replay_window": 0}}"#,
            spi(i),
            spi(i)
        );
    }
    s.push_str("],\n \"policies\": [");
    for p in 0..a.policies {
        let dst = if a.policies > 1 { format!("{}/32", policy_dst(p)) } else { "10.2.0.0/16".into() };
        let sep = if p == 0 { "" } else { "," };
        let t = p % a.sas;
        let _ = write!(
            s,
            r#"{sep}
  {{"name": "out{p}", "src": "10.1.0.0/16", "dst": "{dst}", "action": "protect", "sa": "o{t}"}},
  {{"name": "in{p}", "direction": "inbound", "src": "10.1.0.0/16", "dst": "{dst}", "action": "protect", "sa": "i{t}"}}"#
        );
    }
    s.push_str("]}\n");
    s
}

pub fn config(a: &Args, lan: &str, wan: &str, core: usize) -> Result<Config, String> {
    Config::parse(&config_json(a, lan, wan, core)).map_err(|(f, m)| format!("bench config: {f}: {m}"))
}

/// The neighbours the bench knows up front, so no ARP happens.
pub fn neighbors() -> Neighbors {
    let mut n = Neighbors::default();
    n.learn(0, IpAddr::V4(LAN_NEXT_HOP), LAN_HOST_MAC);
    n.learn(1, IpAddr::V4(PEER), PEER_MAC);
    n
}

/// The peer's outbound SA for tunnel i, made from the same config entry: it seals the ESP
/// frames that `--direction decrypt` feeds in.
pub fn peer_sa(cfg: &Config, i: usize) -> Result<Sa, String> {
    // `config_json` writes tunnel i's outbound SA at 2i.
    let s = cfg.sas.get(2 * i).filter(|s| s.name == format!("o{i}")).ok_or("no such SA")?;
    let p: SaParams = rampart_control::build::sa_params(s)?;
    Sa::new(p).map_err(|e| e.to_string())
}
