//! Plain configuration structs for the IKEv2 engine: peers, proposals, children, lifetimes.
//! The config model (JSON) is mapped onto these by the caller; nothing here parses files.

use std::net::IpAddr;
use std::time::Duration;

pub use super::wire::TrafficSelector;

/// IKE identity (RFC 7296 3.5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    Ipv4(std::net::Ipv4Addr),
    Ipv6(std::net::Ipv6Addr),
    Fqdn(String),
    Rfc822(String),
    KeyId(Vec<u8>),
}

impl Identity {
    pub const ID_IPV4_ADDR: u8 = 1;
    pub const ID_FQDN: u8 = 2;
    pub const ID_RFC822_ADDR: u8 = 3;
    pub const ID_IPV6_ADDR: u8 = 5;
    pub const ID_KEY_ID: u8 = 11;

    pub fn id_type(&self) -> u8 {
        match self {
            Identity::Ipv4(_) => Self::ID_IPV4_ADDR,
            Identity::Ipv6(_) => Self::ID_IPV6_ADDR,
            Identity::Fqdn(_) => Self::ID_FQDN,
            Identity::Rfc822(_) => Self::ID_RFC822_ADDR,
            Identity::KeyId(_) => Self::ID_KEY_ID,
        }
    }

    pub fn data(&self) -> Vec<u8> {
        match self {
            Identity::Ipv4(a) => a.octets().to_vec(),
            Identity::Ipv6(a) => a.octets().to_vec(),
            Identity::Fqdn(s) | Identity::Rfc822(s) => s.as_bytes().to_vec(),
            Identity::KeyId(k) => k.clone(),
        }
    }

    /// Decode an ID payload body; `None` for unsupported types or malformed data.
    pub fn from_wire(id_type: u8, data: &[u8]) -> Option<Identity> {
        Some(match id_type {
            Self::ID_IPV4_ADDR => Identity::Ipv4(<[u8; 4]>::try_from(data).ok()?.into()),
            Self::ID_IPV6_ADDR => Identity::Ipv6(<[u8; 16]>::try_from(data).ok()?.into()),
            Self::ID_FQDN => Identity::Fqdn(String::from_utf8(data.to_vec()).ok()?),
            Self::ID_RFC822_ADDR => Identity::Rfc822(String::from_utf8(data.to_vec()).ok()?),
            Self::ID_KEY_ID => Identity::KeyId(data.to_vec()),
            _ => return None,
        })
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::Fqdn(s) => write!(f, "{s}"),
            Identity::Rfc822(s) => write!(f, "{s}"),
            Identity::KeyId(k) => {
                f.write_str("keyid:")?;
                for b in k {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// Authentication method. An enum so that certificates can be added; the engine never falls
/// back from one method to another.
#[derive(Clone)]
pub enum Auth {
    Psk(Vec<u8>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Psk(_) => f.write_str("Psk(<redacted>)"),
        }
    }
}

/// IKE encryption transforms (IANA "Transform Type 1").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    AesCbc128,
    AesCbc256,
    AesGcm16_128,
    AesGcm16_256,
}

impl EncrAlg {
    pub fn is_aead(self) -> bool {
        matches!(self, EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256)
    }
    /// (transform id, key length in bits)
    pub fn wire(self) -> (u16, u16) {
        match self {
            EncrAlg::AesCbc128 => (12, 128),
            EncrAlg::AesCbc256 => (12, 256),
            EncrAlg::AesGcm16_128 => (20, 128),
            EncrAlg::AesGcm16_256 => (20, 256),
        }
    }
    pub fn from_wire(id: u16, keylen: Option<u16>) -> Option<Self> {
        Some(match (id, keylen?) {
            (12, 128) => EncrAlg::AesCbc128,
            (12, 256) => EncrAlg::AesCbc256,
            (20, 128) => EncrAlg::AesGcm16_128,
            (20, 256) => EncrAlg::AesGcm16_256,
            _ => return None,
        })
    }
    /// Key bytes taken from prf+ (GCM includes the 4-byte salt, RFC 5282).
    pub fn key_len(self) -> usize {
        match self {
            EncrAlg::AesCbc128 => 16,
            EncrAlg::AesCbc256 => 32,
            EncrAlg::AesGcm16_128 => 20,
            EncrAlg::AesGcm16_256 => 36,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl PrfAlg {
    pub fn wire(self) -> u16 {
        match self {
            PrfAlg::HmacSha256 => 5,
            PrfAlg::HmacSha384 => 6,
            PrfAlg::HmacSha512 => 7,
        }
    }
    pub fn from_wire(id: u16) -> Option<Self> {
        Some(match id {
            5 => PrfAlg::HmacSha256,
            6 => PrfAlg::HmacSha384,
            7 => PrfAlg::HmacSha512,
            _ => return None,
        })
    }
    pub fn out_len(self) -> usize {
        match self {
            PrfAlg::HmacSha256 => 32,
            PrfAlg::HmacSha384 => 48,
            PrfAlg::HmacSha512 => 64,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegAlg {
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl IntegAlg {
    pub fn wire(self) -> u16 {
        match self {
            IntegAlg::HmacSha256_128 => 12,
            IntegAlg::HmacSha384_192 => 13,
            IntegAlg::HmacSha512_256 => 14,
        }
    }
    pub fn from_wire(id: u16) -> Option<Self> {
        Some(match id {
            12 => IntegAlg::HmacSha256_128,
            13 => IntegAlg::HmacSha384_192,
            14 => IntegAlg::HmacSha512_256,
            _ => return None,
        })
    }
    pub fn key_len(self) -> usize {
        match self {
            IntegAlg::HmacSha256_128 => 32,
            IntegAlg::HmacSha384_192 => 48,
            IntegAlg::HmacSha512_256 => 64,
        }
    }
    pub fn icv_len(self) -> usize {
        self.key_len() / 2
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    Modp2048,
    Modp3072,
    Ecp256,
    Ecp384,
    Curve25519,
}

impl DhGroup {
    pub fn wire(self) -> u16 {
        match self {
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Curve25519 => 31,
        }
    }
    pub fn from_wire(id: u16) -> Option<Self> {
        Some(match id {
            14 => DhGroup::Modp2048,
            15 => DhGroup::Modp3072,
            19 => DhGroup::Ecp256,
            20 => DhGroup::Ecp384,
            31 => DhGroup::Curve25519,
            _ => return None,
        })
    }
    /// Length of the KE payload's key exchange data.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Curve25519 => 32,
        }
    }
}

/// ESP algorithms the dataplane implements (all AEAD; key bytes include the 4-byte salt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EspAlg {
    AesGcm128,
    AesGcm256,
    ChaCha20Poly1305,
}

impl EspAlg {
    /// Every algorithm the dataplane implements, in our order of preference.
    pub const ALL: [EspAlg; 3] = [EspAlg::AesGcm256, EspAlg::AesGcm128, EspAlg::ChaCha20Poly1305];

    /// The ESP algorithm that matches an IKE_SA's encryption: AES-GCM of the same key size
    /// (for AES-CBC too, as the dataplane implements only AEAD).
    pub fn matching(encr: EncrAlg) -> EspAlg {
        match encr {
            EncrAlg::AesGcm16_128 | EncrAlg::AesCbc128 => EspAlg::AesGcm128,
            EncrAlg::AesGcm16_256 | EncrAlg::AesCbc256 => EspAlg::AesGcm256,
        }
    }

    pub fn wire(self) -> (u16, Option<u16>) {
        match self {
            EspAlg::AesGcm128 => (20, Some(128)),
            EspAlg::AesGcm256 => (20, Some(256)),
            EspAlg::ChaCha20Poly1305 => (28, None),
        }
    }
    pub fn from_wire(id: u16, keylen: Option<u16>) -> Option<Self> {
        Some(match (id, keylen) {
            (20, Some(128)) => EspAlg::AesGcm128,
            (20, Some(256)) => EspAlg::AesGcm256,
            (28, None) => EspAlg::ChaCha20Poly1305,
            _ => return None,
        })
    }
    pub fn key_len(self) -> usize {
        match self {
            EspAlg::AesGcm128 => 20,
            EspAlg::AesGcm256 => 36,
            EspAlg::ChaCha20Poly1305 => 36,
        }
    }
}

/// One IKE proposal: every combination of the listed transforms is acceptable.
/// `integ` must be empty for AEAD-only proposals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeProposal {
    pub encr: Vec<EncrAlg>,
    pub prf: Vec<PrfAlg>,
    pub integ: Vec<IntegAlg>,
    pub dh: Vec<DhGroup>,
}

impl IkeProposal {
    /// strongSwan's default in the interop testbed: aes128gcm16-prfsha256-x25519.
    pub fn aes128gcm_sha256_x25519() -> Self {
        IkeProposal {
            encr: vec![EncrAlg::AesGcm16_128],
            prf: vec![PrfAlg::HmacSha256],
            integ: vec![],
            dh: vec![DhGroup::Curve25519],
        }
    }
}

/// One ESP proposal. `dh` lists groups accepted for PFS in CREATE_CHILD_SA (ignored in
/// IKE_AUTH, where no KE is exchanged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspProposal {
    /// In our order of preference. Empty means "any": as initiator propose the algorithm
    /// that matches the IKE_SA's encryption (`EspAlg::matching`); as responder accept any
    /// algorithm in `EspAlg::ALL`, preferring that same one.
    pub algs: Vec<EspAlg>,
    pub esn: bool,
    pub dh: Vec<DhGroup>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// Rekey after this (minus a random part of `jitter`).
    pub soft: Duration,
    /// Delete after this if not rekeyed.
    pub hard: Duration,
    pub jitter: Duration,
}

impl Lifetime {
    pub const IKE_DEFAULT: Lifetime = Lifetime {
        soft: Duration::from_secs(4 * 3600),
        hard: Duration::from_secs(4 * 3600 + 1200),
        jitter: Duration::from_secs(600),
    };
    pub const CHILD_DEFAULT: Lifetime = Lifetime {
        soft: Duration::from_secs(3600),
        hard: Duration::from_secs(3600 + 600),
        jitter: Duration::from_secs(300),
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildMode {
    Tunnel,
}

#[derive(Clone, Debug)]
pub struct ChildConfig {
    pub name: String,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub mode: ChildMode,
    /// Empty: use the peer's `esp_proposals`.
    pub esp_proposals: Vec<EspProposal>,
    /// Send a KE payload (first group of the first proposal with one) in CREATE_CHILD_SA.
    pub pfs: bool,
    pub lifetime: Lifetime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAction {
    None,
    Start,
    Trap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpdAction {
    Clear,
    Restart,
}

#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub name: String,
    /// Addresses we may use towards this peer; the first is used when initiating.
    pub local_addrs: Vec<IpAddr>,
    /// `None`: any address (responder only).
    pub remote_addr: Option<IpAddr>,
    pub local_id: Identity,
    pub remote_id: Identity,
    pub auth: Auth,
    pub ike_proposals: Vec<IkeProposal>,
    pub esp_proposals: Vec<EspProposal>,
    pub children: Vec<ChildConfig>,
    pub ike_lifetime: Lifetime,
    pub dpd_interval: Option<std::time::Duration>,
    pub start_action: StartAction,
    pub dpd_action: DpdAction,
}

/// Engine-wide knobs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// First retransmission timeout; doubled each try.
    pub retransmit_base: Duration,
    /// Number of retransmissions before the peer is declared dead.
    pub retransmit_tries: u32,
    /// Half-open IKE_SAs above which IKE_SA_INIT requests must carry a COOKIE.
    pub cookie_threshold: usize,
    /// Hard cap on half-open IKE_SAs (beyond it IKE_SA_INIT is dropped).
    pub max_half_open: usize,
    /// Drop a half-open SA that did not complete within this time.
    pub half_open_timeout: Duration,
    /// Encrypted messages larger than this are fragmented (RFC 7383) when the peer supports it.
    pub fragment_size: usize,
    /// How long a cached response is kept for retransmitted requests.
    pub response_cache_time: Duration,
    /// Largest datagram accepted.
    pub max_datagram: usize,
    pub ike_port: u16,
    pub natt_port: u16,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retransmit_base: Duration::from_millis(500),
            retransmit_tries: 5,
            cookie_threshold: 1000,
            max_half_open: 20000,
            half_open_timeout: Duration::from_secs(30),
            fragment_size: 1280,
            response_cache_time: Duration::from_secs(30),
            max_datagram: 65000,
            ike_port: 500,
            natt_port: 4500,
        }
    }
}
