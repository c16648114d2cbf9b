//! The configuration model: one JSON document (serde_json) for ports, addresses, routes,
//! policies, manual SAs, peers and logging. Every error names the field and the file.

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Worker cores (pinned). One worker per entry.
    #[serde(default = "default_cores")]
    pub cores: Vec<usize>,
    /// Extra EAL arguments, e.g. `["--no-huge", "-m", "512"]`.
    #[serde(default)]
    pub eal: Vec<String>,
    /// Microseconds a worker sleeps after a poll that found nothing: 0 (the default) polls
    /// without pause, as a dedicated core should; a shared machine or a test bed may want 50.
    #[serde(default)]
    pub idle_sleep_us: u64,
    /// Flow cache entries per worker (64 bytes each, rounded up to a power of two); 0 turns
    /// the cache off, so that every packet is looked up in the SPD.
    #[serde(default = "default_flow_cache")]
    pub flow_cache_entries: usize,
    /// The ESP crypto engine, picked once at start: `auto` (the default: intel-ipsec-mb for
    /// AES-GCM where it is built in and the CPU has AES-NI, else ring), `soft` (ring) or
    /// `ipsec-mb` (refused at start where it cannot run).
    #[serde(default)]
    pub crypto_engine: CryptoEngineConfig,
    pub ports: Vec<PortConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// What transit traffic that matches no policy gets: `bypass` or `discard`.
    #[serde(default = "default_action")]
    pub default_action: ActionConfig,
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    #[serde(default)]
    pub sas: Vec<SaConfig>,
    /// IKEv2 peers.
    #[serde(default)]
    pub peers: Vec<PeerConfigJson>,
    #[serde(default)]
    pub control: ControlConfig,
    /// Prometheus metrics over HTTP (`GET /metrics`) on this address; off when absent.
    #[serde(default)]
    pub metrics: Option<std::net::SocketAddr>,
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Debugging only: write every SA's keys in Wireshark's formats under `dir`. Off unless
    /// present; keys in clear on disk defeat IPsec, so never on a production gateway.
    #[serde(default)]
    pub key_export: Option<KeyExportConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyExportConfig {
    /// Directory for `esp_sa` and `ikev2_decryption_table` (created, mode 0700, if missing).
    pub dir: PathBuf,
}

fn default_flow_cache() -> usize {
    65536
}

fn default_cores() -> Vec<usize> {
    vec![1]
}
fn default_action() -> ActionConfig {
    ActionConfig::Bypass
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    /// A DPDK device: `net_af_packet0,iface=eth1`, `net_tap0`, `0000:03:00.0`, ...
    pub devargs: String,
    /// Own addresses with prefix length, e.g. `192.0.2.1/24`.
    #[serde(default)]
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub dst: String,
    #[serde(default)]
    pub via: Option<IpAddr>,
    pub port: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ActionConfig {
    Protect,
    Bypass,
    Discard,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DirectionConfig {
    #[default]
    Outbound,
    Inbound,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    /// Lower goes first.
    #[serde(default = "default_priority")]
    pub priority: u32,
    #[serde(default)]
    pub direction: DirectionConfig,
    #[serde(default = "any_prefix")]
    pub src: String,
    #[serde(default = "any_prefix")]
    pub dst: String,
    /// IP protocol number; absent means any.
    #[serde(default)]
    pub proto: Option<u8>,
    /// `"80"` or `"1024-65535"`; absent means any.
    #[serde(default)]
    pub sport: Option<String>,
    #[serde(default)]
    pub dport: Option<String>,
    pub action: ActionConfig,
    /// For `protect`: the name of the manual SA to use (outbound) or to accept (inbound).
    #[serde(default)]
    pub sa: Option<String>,
}

fn default_priority() -> u32 {
    100
}
fn any_prefix() -> String {
    "any".into()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum CryptoEngineConfig {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "soft")]
    Soft,
    #[serde(rename = "ipsec-mb")]
    IpsecMb,
}

impl CryptoEngineConfig {
    pub fn engine(self) -> rampart_dataplane::crypto::Engine {
        use rampart_dataplane::crypto::Engine;
        match self {
            CryptoEngineConfig::Auto => Engine::Auto,
            CryptoEngineConfig::Soft => Engine::Soft,
            CryptoEngineConfig::IpsecMb => Engine::IpsecMb,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum AlgConfig {
    #[serde(rename = "aes-gcm-128")]
    AesGcm128,
    #[serde(rename = "aes-gcm-256")]
    AesGcm256,
    #[serde(rename = "chacha20-poly1305")]
    Chacha20Poly1305,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModeConfig {
    #[default]
    Tunnel,
    Transport,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncapConfig {
    #[serde(default = "nat_t_port")]
    pub sport: u16,
    #[serde(default = "nat_t_port")]
    pub dport: u16,
}

fn nat_t_port() -> u16 {
    4500
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifetimeConfig {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_packets: Option<u64>,
    pub hard_packets: Option<u64>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaConfig {
    pub name: String,
    pub direction: DirectionConfig,
    /// Decimal or `0x` hex.
    pub spi: SpiConfig,
    pub alg: AlgConfig,
    /// Hex: the cipher key followed by the 4-byte salt (RFC 4106 / RFC 7634).
    pub key: String,
    #[serde(default)]
    pub mode: ModeConfig,
    /// Tunnel mode: the outer addresses, ours and the peer's.
    #[serde(default)]
    pub local: Option<IpAddr>,
    #[serde(default)]
    pub remote: Option<IpAddr>,
    #[serde(default)]
    pub esn: bool,
    /// Anti-replay window in packets (64..=4096, a multiple of 64), 0 to disable.
    #[serde(default = "default_window")]
    pub replay_window: u32,
    /// UDP encapsulation (RFC 3948).
    #[serde(default)]
    pub encap: Option<EncapConfig>,
    #[serde(default)]
    pub lifetime: LifetimeConfig,
}

// Keys never reach logs, not even through a debug print of the config.
impl std::fmt::Debug for SaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaConfig")
            .field("name", &self.name)
            .field("direction", &self.direction)
            .field("spi", &self.spi)
            .field("alg", &self.alg)
            .field("key", &"<redacted>")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn default_window() -> u32 {
    1024
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SpiConfig {
    Num(u32),
    Text(#[serde(deserialize_with = "de_spi")] u32),
}

impl SpiConfig {
    pub fn get(self) -> u32 {
        match self {
            SpiConfig::Num(n) | SpiConfig::Text(n) => n,
        }
    }
}

fn de_spi<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let s = String::deserialize(d)?;
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| serde::de::Error::custom(format!("`{s}` is not a 32-bit SPI")))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig { socket: default_socket() }
    }
}

fn default_socket() -> PathBuf {
    "/run/rampart/rampart.sock".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// A `tracing` filter, e.g. `info` or `info,ike=debug`.
    #[serde(default = "default_log")]
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig { level: default_log() }
    }
}

fn default_log() -> String {
    "info".into()
}

/// An IKEv2 peer: who it is, how both sides authenticate, what to propose, what to protect.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfigJson {
    pub name: String,
    /// Our address(es) for IKE with this peer.
    pub local_addrs: Vec<IpAddr>,
    /// The peer's address; absent for a responder that accepts the peer from anywhere.
    #[serde(default)]
    pub remote_addr: Option<IpAddr>,
    /// `192.0.2.1` (ID_IPV4_ADDR), `2001:db8::1`, `user@example.com` (ID_RFC822_ADDR),
    /// `keyid:0a1b...` (ID_KEY_ID), anything else an FQDN (ID_FQDN).
    pub local_id: String,
    pub remote_id: String,
    pub auth: AuthConfig,
    /// strongSwan-style proposals, most preferred first: `aes128gcm16-prfsha256-x25519`.
    #[serde(default = "default_ike_proposals")]
    pub ike_proposals: Vec<String>,
    /// `aes128gcm16-x25519` (the group is for PFS in CREATE_CHILD_SA), `chacha20poly1305-esn`.
    #[serde(default = "default_esp_proposals")]
    pub esp_proposals: Vec<String>,
    pub children: Vec<ChildConfigJson>,
    /// Seconds between liveness checks when nothing arrives from the peer; absent: none.
    #[serde(default)]
    pub dpd_interval_s: Option<u64>,
    #[serde(default = "default_dpd_action")]
    pub dpd_action: String,
    /// `none` (wait for the peer), `start` (at start-up), `trap` (on the first packet).
    #[serde(default = "default_start")]
    pub start_action: String,
    #[serde(default)]
    pub ike_lifetime_s: Option<u64>,
}

impl std::fmt::Debug for PeerConfigJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConfig").field("name", &self.name).field("remote_id", &self.remote_id).finish_non_exhaustive()
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum AuthConfig {
    /// A pre-shared key for this peer alone; `0x...` for hex, otherwise the UTF-8 bytes.
    Psk(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildConfigJson {
    pub name: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    /// Use a fresh key exchange when rekeying (the group comes from `esp_proposals`).
    #[serde(default = "yes")]
    pub pfs: bool,
    #[serde(default)]
    pub lifetime_s: Option<u64>,
    #[serde(default = "default_priority")]
    pub priority: u32,
    #[serde(default = "default_window")]
    pub replay_window: u32,
}

fn yes() -> bool {
    true
}
fn default_ike_proposals() -> Vec<String> {
    vec!["aes128gcm16-prfsha256-x25519".into()]
}
fn default_esp_proposals() -> Vec<String> {
    vec!["aes128gcm16-x25519".into()]
}
fn default_dpd_action() -> String {
    "restart".into()
}
fn default_start() -> String {
    "none".into()
}

/// A configuration error: the file, the field path and what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub field: String,
    pub msg: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.msg)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.field, self.msg)
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |field: String, msg: String| ConfigError { file: path.to_owned(), field, msg };
        let text = std::fs::read_to_string(path).map_err(|e| err(String::new(), e.to_string()))?;
        Self::parse(&text).map_err(|(field, msg)| err(field, msg))
    }

    /// Parses and validates; the error is (field path, message).
    pub fn parse(text: &str) -> Result<Config, (String, String)> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            (if path == "." { String::new() } else { path }, e.into_inner().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let e = |field: String, msg: String| Err((field, msg));
        if self.cores.is_empty() {
            return e("cores".into(), "at least one worker core is needed".into());
        }
        if self.ports.is_empty() {
            return e("ports".into(), "at least one port is needed".into());
        }
        unique(self.ports.iter().map(|p| p.name.as_str()), "ports", "name")?;
        for (i, p) in self.ports.iter().enumerate() {
            for (j, a) in p.addresses.iter().enumerate() {
                parse_addr_prefix(a).map_err(|m| (format!("ports[{i}].addresses[{j}]"), m))?;
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            parse_prefix(&r.dst).map_err(|m| (format!("routes[{i}].dst"), m))?;
            self.port_index(&r.port).ok_or_else(|| (format!("routes[{i}].port"), format!("no port named `{}`", r.port)))?;
        }
        if let Some(k) = &self.key_export {
            if !k.dir.is_absolute() {
                return e("key_export.dir".into(), "must be an absolute path".into());
            }
        }
        if self.flow_cache_entries > 1 << 24 {
            return e("flow_cache_entries".into(), "at most 16777216 (1 GiB per worker)".into());
        }
        unique(self.sas.iter().map(|s| s.name.as_str()), "sas", "name")?;
        let mut spis = HashSet::new();
        for (i, s) in self.sas.iter().enumerate() {
            let f = |n: &str| format!("sas[{i}].{n}");
            if s.direction == DirectionConfig::Inbound && !spis.insert(s.spi.get()) {
                return e(f("spi"), format!("duplicate inbound SPI {:#x}", s.spi.get()));
            }
            if s.spi.get() < 256 {
                return e(f("spi"), "SPIs 0 to 255 are reserved (RFC 4303 2.1)".into());
            }
            let key = parse_hex(&s.key).map_err(|m| (f("key"), m))?;
            let want = match s.alg {
                AlgConfig::AesGcm128 => 20,
                AlgConfig::AesGcm256 | AlgConfig::Chacha20Poly1305 => 36,
            };
            if key.len() != want {
                return e(f("key"), format!("{:?} needs {want} bytes (key and 4-byte salt), got {}", s.alg, key.len()));
            }
            if s.replay_window != 0 && !(64..=4096).contains(&s.replay_window) || s.replay_window % 64 != 0 {
                return e(f("replay_window"), "must be 0 (off) or 64 to 4096, a multiple of 64".into());
            }
            if s.mode == ModeConfig::Tunnel {
                match (s.local, s.remote) {
                    (Some(l), Some(r)) if l.is_ipv4() == r.is_ipv4() => {}
                    (Some(_), Some(_)) => return e(f("remote"), "local and remote must be the same family".into()),
                    _ => return e(f("local"), "tunnel mode needs `local` and `remote`".into()),
                }
            }
        }
        unique(self.policies.iter().map(|p| p.name.as_str()), "policies", "name")?;
        let sa_by_name: HashMap<&str, &SaConfig> = self.sas.iter().map(|s| (s.name.as_str(), s)).collect();
        for (i, p) in self.policies.iter().enumerate() {
            let f = |n: &str| format!("policies[{i}].{n}");
            parse_prefix(&p.src).map_err(|m| (f("src"), m))?;
            parse_prefix(&p.dst).map_err(|m| (f("dst"), m))?;
            for (n, r) in [("sport", &p.sport), ("dport", &p.dport)] {
                if let Some(r) = r {
                    parse_port_range(r).map_err(|m| (f(n), m))?;
                }
            }
            match (p.action, &p.sa) {
                (ActionConfig::Protect, Some(name)) => {
                    let sa = sa_by_name.get(name.as_str()).ok_or_else(|| (f("sa"), format!("no SA named `{name}`")))?;
                    if sa.direction != p.direction {
                        return e(f("sa"), format!("SA `{name}` is {}, the policy is {}", dir_word(sa.direction), dir_word(p.direction)));
                    }
                }
                (ActionConfig::Protect, None) => return e(f("sa"), "a protect policy needs an SA".into()),
                (_, Some(_)) => return e(f("sa"), "only protect policies take an SA".into()),
                (_, None) => {}
            }
        }
        unique(self.peers.iter().map(|p| p.name.as_str()), "peers", "name")?;
        for (i, p) in self.peers.iter().enumerate() {
            crate::peers::peer(p).map_err(|(f, m)| (format!("peers[{i}].{f}"), m))?;
        }
        let used: HashSet<&str> = self.policies.iter().filter_map(|p| p.sa.as_deref()).collect();
        for (i, s) in self.sas.iter().enumerate() {
            if s.direction == DirectionConfig::Inbound && !used.contains(s.name.as_str()) {
                return e(format!("sas[{i}]"), format!("inbound SA `{}` is named by no inbound protect policy, so nothing it carries could be delivered", s.name));
            }
        }
        Ok(())
    }

    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }
}

fn unique<'a>(names: impl Iterator<Item = &'a str>, list: &str, field: &str) -> Result<(), (String, String)> {
    let mut seen = HashSet::new();
    for (i, n) in names.enumerate() {
        if !seen.insert(n) {
            return Err((format!("{list}[{i}].{field}"), format!("duplicate name `{n}`")));
        }
    }
    Ok(())
}

pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err("hex string of odd length".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| "not a hex string".to_string()))
        .collect()
}

/// `10.0.0.0/8`, `2001:db8::/32`, a bare address (a host prefix), or `any`.
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    if s == "any" {
        return Ok((IpAddr::from([0u8; 4]), 0));
    }
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| format!("`{s}` is not an address or prefix"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|&l| l <= max).ok_or_else(|| format!("bad prefix length in `{s}`"))?,
        None => max,
    };
    Ok((addr, len))
}

/// An interface address: `192.0.2.1/24`.
pub fn parse_addr_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    if !s.contains('/') {
        return Err(format!("`{s}` needs a prefix length, e.g. `{s}/24`"));
    }
    parse_prefix(s)
}

pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{s}` is not a port or a range like `1024-65535`");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b) = (a.trim().parse::<u16>().map_err(|_| bad())?, b.trim().parse::<u16>().map_err(|_| bad())?);
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

fn dir_word(d: DirectionConfig) -> &'static str {
    match d {
        DirectionConfig::Outbound => "outbound",
        DirectionConfig::Inbound => "inbound",
    }
}
