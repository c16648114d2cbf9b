//! The IKEv2 engine: every IKE_SA of one gateway, driven by datagrams and time (sans-IO, as
//! quinn-proto). The caller feeds `handle_datagram`/`handle_timeout` and drains
//! `poll_transmit`, `poll_timeout` and `poll_event`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};
use tracing::{debug, info, warn};

use super::config::*;
use super::crypto::{ct_eq, psk_auth, DhPrivate, IkeKeys, IkeSuite};
use super::wire::{self, exchange, find_notify, notify, proto, ptype, ttype, Header, Notify, Payload, Proposal, Transform};

/// A datagram to send. On port 4500 the non-ESP marker is already prepended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Keys for one direction of a CHILD_SA. `key` includes the 4-byte salt. Debug is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ChildKeys {
    pub spi: u32,
    pub alg: EspAlg,
    pub key: Vec<u8>,
    pub esn: bool,
}

impl std::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChildKeys {{ spi: {:#010x}, alg: {:?}, esn: {}, key: <redacted> }}", self.spi, self.alg, self.esn)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaUp {
    pub peer: String,
    pub child: String,
    pub ike_spi_i: u64,
    pub ike_spi_r: u64,
    pub inbound: ChildKeys,
    pub outbound: ChildKeys,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// UDP encapsulation (RFC 3948): (local port, remote port).
    pub encap: Option<(u16, u16)>,
    pub local_addr: IpAddr,
    pub remote_addr: IpAddr,
    /// Inbound SPI of the CHILD_SA this one rekeys (delete it after installing this one).
    pub replaces: Option<u32>,
    /// We sent the CREATE_CHILD_SA request. The responder of a rekey keeps sending on the old
    /// SA until the initiator deletes it: the initiator cannot decrypt the new one before it
    /// has the response.
    pub initiator: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// The peer sent a Delete.
    PeerDeleted,
    /// `terminate` or a local Delete.
    Local,
    /// No answer to requests (liveness or otherwise).
    DeadPeer,
    /// Replaced by a rekeyed SA.
    Rekeyed,
    /// Hard lifetime reached.
    Expired,
    /// The handshake did not complete (timeout, notify, or protocol error).
    Failed,
    /// Redundant SA from a rekey collision (RFC 7296 2.8.1).
    Redundant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    IkeSaUp { peer: String, ike_spi_i: u64, ike_spi_r: u64, local: SocketAddr, remote: SocketAddr, remote_id: Identity },
    IkeSaDown { peer: String, ike_spi_i: u64, ike_spi_r: u64, reason: DownReason },
    /// The IKE_SA was rekeyed; its CHILD_SAs now belong to the new SPIs.
    IkeSaRekeyed { peer: String, old: (u64, u64), new: (u64, u64) },
    ChildSaUp(Box<ChildSaUp>),
    ChildSaDown { peer: String, child: String, inbound_spi: u32, outbound_spi: u32, reason: DownReason },
    /// A CHILD_SA could not be negotiated (the notify type says why, e.g. TS_UNACCEPTABLE).
    ChildSaFailed { peer: String, child: String, notify: u16 },
    /// Authentication failed; `peer_id` is the identity the peer claimed (or the one we
    /// expected, when the peer rejected us).
    AuthFailed { peer_id: Option<Identity>, remote: SocketAddr },
    /// An authenticated message of an established IKE_SA came from (or to) a new address or
    /// port across a NAT (RFC 7296 2.23, e.g. a NAT rebinding): IKE now sends to `remote`
    /// from `local`. The CHILD_SAs listed, as (inbound SPI, outbound SPI), should have their
    /// outer addresses and UDP encapsulation ports updated to match.
    PeerAddressChanged { peer: String, ike_spi_i: u64, ike_spi_r: u64, local: SocketAddr, remote: SocketAddr, children: Vec<(u32, u32)> },
}

/// Counters; every dropped input is counted in exactly one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub rx_datagrams: u64,
    pub tx_datagrams: u64,
    pub dropped_malformed: u64,
    pub dropped_non_ike: u64,
    pub dropped_oversized: u64,
    pub dropped_unknown_spi: u64,
    pub dropped_bad_msg_id: u64,
    pub dropped_integrity: u64,
    pub dropped_unexpected: u64,
    pub dropped_half_open_limit: u64,
    pub duplicate_responses: u64,
    pub retransmitted_responses: u64,
    pub retransmitted_requests: u64,
    pub unsupported_critical: u64,
    pub cookies_sent: u64,
    pub invalid_ke_sent: u64,
    pub no_proposal_chosen: u64,
    pub auth_failures: u64,
    pub ike_sa_established: u64,
    pub child_sa_established: u64,
    pub dead_peers: u64,
    pub half_open_expired: u64,
    pub fragments_rx: u64,
    pub fragments_tx: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Initiator: IKE_SA_INIT sent.
    InitSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    InitDone,
    /// Initiator: IKE_AUTH sent.
    AuthSent,
    Established,
    /// Replaced by a rekey; kept until the Delete exchange completes.
    Rekeyed,
    Deleting,
}

/// Transient handshake material, dropped once IKE_AUTH completes.
struct Handshake {
    dh: Option<DhPrivate>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    /// Our IKE_SA_INIT request (initiator) or the peer's (responder): RealMessage1.
    init_req: Vec<u8>,
    /// The IKE_SA_INIT response: RealMessage2.
    init_resp: Vec<u8>,
    cookie: Option<Vec<u8>>,
    ke_retries: u8,
    /// Initiator: inbound SPI proposed for the first CHILD_SA.
    child_spi: u32,
}

enum ReqKind {
    Init,
    Auth,
    Liveness,
    DeleteIke,
    DeleteChild { spis: Vec<u32> },
    CreateChild {
        cfg: usize,
        spi: u32,
        nonce: Vec<u8>,
        dh: Option<DhPrivate>,
        rekey_of: Option<u32>,
    },
    RekeyIke {
        new_spi: u64,
        nonce: Vec<u8>,
        dh: DhPrivate,
    },
}

struct Pending {
    msg_id: u32,
    exchange: u8,
    datagrams: Vec<Vec<u8>>,
    tries: u32,
    next: Instant,
    kind: ReqKind,
    sent: Instant,
}

struct CachedResponse {
    msg_id: u32,
    datagrams: Vec<Vec<u8>>,
    until: Instant,
}

/// Collision bookkeeping for a CHILD_SA rekey (RFC 7296 2.8.1): the nonces of the peer's
/// rekey exchange and the inbound SPI of the SA it created.
struct Collision {
    min_nonce: Vec<u8>,
}

/// Collision bookkeeping for an IKE_SA rekey (RFC 7296 2.8.2), kept for the old IKE_SA while
/// our own rekey of it is in flight and we answered the peer's: the lower nonce of the
/// peer's exchange and our SPI of the IKE_SA that exchange created.
struct IkeCollision {
    min_nonce: Vec<u8>,
    peer_sa: u64,
}

struct ChildSa {
    cfg: usize,
    spi_in: u32,
    spi_out: u32,
    alg: EspAlg,
    esn: bool,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
    rekey_at: Option<Instant>,
    expire_at: Instant,
    rekeying: bool,
    /// Superseded by a rekey; waiting for the Delete exchange.
    replaced: bool,
    collision: Option<Box<Collision>>,
    /// Last inbound ESP packet counter seen and when it last moved.
    traffic: Option<(u64, Instant)>,
}

struct IkeSa {
    peer: Option<usize>,
    /// We are the original initiator of this IKE_SA.
    initiator: bool,
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
    state: State,
    keys: Option<IkeKeys>,
    hs: Option<Box<Handshake>>,
    next_req_id: u32,
    expect_req_id: u32,
    pending: Option<Pending>,
    queue: VecDeque<(u8, Vec<Payload>, ReqKind)>,
    cached: Option<CachedResponse>,
    children: Vec<ChildSa>,
    nat: bool,
    frag_ok: bool,
    frags: Option<Box<Reassembly>>,
    created: Instant,
    last_rx: Instant,
    rekey_at: Option<Instant>,
    expire_at: Option<Instant>,
    iv_counter: u64,
    scheduled: Option<Instant>,
    remote_id: Option<Identity>,
    /// Peer's IKE_SA_INIT SPI and address, for the half-open index.
    half_open_key: Option<(u64, SocketAddr)>,
}

struct Reassembly {
    msg_id: u32,
    total: u16,
    first_inner: u8,
    parts: Vec<Option<Vec<u8>>>,
}

impl IkeSa {
    fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }
    fn encap(&self, cfg: &EngineConfig) -> Option<(u16, u16)> {
        (self.nat || self.local.port() == cfg.natt_port).then(|| (self.local.port(), self.remote.port()))
    }
}

/// The engine for one gateway.
pub struct Engine {
    cfg: EngineConfig,
    peers: Vec<PeerConfig>,
    /// Boxed: the table keeps 16-byte slots, so its spare capacity (up to half of it after
    /// a resize) costs little per IKE_SA.
    sas: HashMap<u64, Box<IkeSa>>,
    half_open: HashMap<(u64, SocketAddr), u64>,
    child_index: HashMap<u32, u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    cookie_secret: [u8; 32],
    spi_alloc: Option<Box<dyn FnMut() -> u32 + Send>>,
    /// Simultaneous IKE_SA rekeys being resolved, by our SPI of the old IKE_SA. Only ever
    /// holds entries during a collision, so no per-SA field is spent on it.
    ike_collisions: HashMap<u64, IkeCollision>,
    /// `ike_sa_keys` hands out keys only when this is set (a debugging key export).
    key_export: bool,
}

/// An IKE_SA's SK_e and SK_a keys, for a debugging key export (Wireshark's
/// ikev2_decryption_table). AES-GCM keys include their 4-byte salt. Debug is redacted.
#[derive(Clone)]
pub struct IkeSaKeys {
    pub spi_i: u64,
    pub spi_r: u64,
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    pub sk_ei: Vec<u8>,
    pub sk_er: Vec<u8>,
    pub sk_ai: Vec<u8>,
    pub sk_ar: Vec<u8>,
}

impl std::fmt::Debug for IkeSaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IkeSaKeys {{ spi_i: {:016x}, spi_r: {:016x}, encr: {:?}, integ: {:?}, keys: <redacted> }}", self.spi_i, self.spi_r, self.encr, self.integ)
    }
}

fn rand_nonce() -> Vec<u8> {
    let mut n = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

fn jittered(now: Instant, l: &Lifetime) -> (Option<Instant>, Instant) {
    let j = if l.jitter.is_zero() { Duration::ZERO } else { rand::thread_rng().gen_range(Duration::ZERO..=l.jitter) };
    let soft = l.soft.checked_sub(j).unwrap_or(l.soft);
    let rekey = (!l.soft.is_zero() && l.soft < l.hard).then(|| now + soft);
    (rekey, now + l.hard)
}

fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => ctx.update(&a.octets()),
        IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    ctx.finish().as_ref().to_vec()
}

fn id_body(id: &Identity) -> Vec<u8> {
    let mut v = vec![id.id_type(), 0, 0, 0];
    v.extend_from_slice(&id.data());
    v
}

fn ike_proposals(props: &[IkeProposal], spi: Option<u64>, only_group: Option<DhGroup>) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t = Vec::new();
            for e in &p.encr {
                let (id, kl) = e.wire();
                t.push(Transform { ttype: ttype::ENCR, id, key_len: Some(kl) });
            }
            for f in &p.prf {
                t.push(Transform { ttype: ttype::PRF, id: f.wire(), key_len: None });
            }
            for a in &p.integ {
                t.push(Transform { ttype: ttype::INTEG, id: a.wire(), key_len: None });
            }
            // The group of the KE payload goes first so that a responder preferring it matches.
            let mut dh = p.dh.clone();
            if let Some(g) = only_group {
                if let Some(pos) = dh.iter().position(|x| *x == g) {
                    dh.remove(pos);
                    dh.insert(0, g);
                }
            }
            for d in &dh {
                t.push(Transform { ttype: ttype::DH, id: d.wire(), key_len: None });
            }
            Proposal { num: i as u8 + 1, protocol: proto::IKE, spi: spi.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default(), transforms: t }
        })
        .collect()
}

fn esp_proposals(props: &[EspProposal], spi: u32, with_dh: Option<DhGroup>) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t = Vec::new();
            for a in &p.algs {
                let (id, kl) = a.wire();
                t.push(Transform { ttype: ttype::ENCR, id, key_len: kl });
            }
            if let Some(g) = with_dh {
                t.push(Transform { ttype: ttype::DH, id: g.wire(), key_len: None });
                for d in &p.dh {
                    if *d != g {
                        t.push(Transform { ttype: ttype::DH, id: d.wire(), key_len: None });
                    }
                }
            }
            t.push(Transform { ttype: ttype::ESN, id: p.esn as u16, key_len: None });
            Proposal { num: i as u8 + 1, protocol: proto::ESP, spi: spi.to_be_bytes().to_vec(), transforms: t }
        })
        .collect()
}

/// Pick an IKE suite: the first peer proposal all of whose transform types we accept.
fn select_ike(theirs: &[Proposal], ours: &[IkeProposal], prefer: Option<u16>) -> Option<(u8, IkeSuite, Vec<u8>)> {
    for p in theirs.iter().filter(|p| p.protocol == proto::IKE) {
        for o in ours {
            let encr = p.of_type(ttype::ENCR).filter_map(|t| EncrAlg::from_wire(t.id, t.key_len)).find(|e| o.encr.contains(e));
            let prf = p.of_type(ttype::PRF).filter_map(|t| PrfAlg::from_wire(t.id)).find(|e| o.prf.contains(e));
            let dhs: Vec<DhGroup> = p.of_type(ttype::DH).filter_map(|t| DhGroup::from_wire(t.id)).filter(|d| o.dh.contains(d)).collect();
            let dh = prefer.and_then(|g| dhs.iter().copied().find(|d| d.wire() == g)).or_else(|| dhs.first().copied());
            let (Some(encr), Some(prf), Some(dh)) = (encr, prf, dh) else { continue };
            let integ = if encr.is_aead() {
                None
            } else {
                match p.of_type(ttype::INTEG).filter_map(|t| IntegAlg::from_wire(t.id)).find(|e| o.integ.contains(e)) {
                    Some(i) => Some(i),
                    None => continue,
                }
            };
            return Some((p.num, IkeSuite { encr, prf, integ, dh }, p.spi.clone()));
        }
    }
    None
}

fn suite_proposal(num: u8, s: &IkeSuite, spi: Option<u64>) -> Proposal {
    let (id, kl) = s.encr.wire();
    let mut t = vec![
        Transform { ttype: ttype::ENCR, id, key_len: Some(kl) },
        Transform { ttype: ttype::PRF, id: s.prf.wire(), key_len: None },
    ];
    if let Some(i) = s.integ {
        t.push(Transform { ttype: ttype::INTEG, id: i.wire(), key_len: None });
    }
    t.push(Transform { ttype: ttype::DH, id: s.dh.wire(), key_len: None });
    Proposal { num, protocol: proto::IKE, spi: spi.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default(), transforms: t }
}

#[derive(Debug, Clone, Copy)]
struct EspChoice {
    num: u8,
    alg: EspAlg,
    esn: bool,
    dh: Option<DhGroup>,
    spi: u32,
}

/// Pick an ESP proposal: the peer's first that one of ours accepts, with the algorithm we
/// prefer among those it lists. `with_dh`: CREATE_CHILD_SA, where a DH transform means PFS.
fn select_esp(theirs: &[Proposal], ours: &[EspProposal], with_dh: bool, prefer: Option<u16>) -> Option<EspChoice> {
    for p in theirs.iter().filter(|p| p.protocol == proto::ESP && p.spi.len() == 4) {
        let spi = u32::from_be_bytes(p.spi[..4].try_into().ok()?);
        for o in ours {
            let offered: Vec<EspAlg> = p.of_type(ttype::ENCR).filter_map(|t| EspAlg::from_wire(t.id, t.key_len)).collect();
            let Some(alg) = o.algs.iter().copied().find(|a| offered.contains(a)) else {
                continue;
            };
            let esns: Vec<u16> = p.of_type(ttype::ESN).map(|t| t.id).collect();
            let esn_ok = if esns.is_empty() { !o.esn } else { esns.contains(&(o.esn as u16)) };
            if !esn_ok {
                continue;
            }
            let dh = if with_dh {
                let theirs_dh: Vec<u16> = p.of_type(ttype::DH).map(|t| t.id).filter(|id| *id != 0).collect();
                if theirs_dh.is_empty() {
                    None
                } else {
                    let acc: Vec<DhGroup> = theirs_dh.iter().filter_map(|id| DhGroup::from_wire(*id)).filter(|d| o.dh.contains(d)).collect();
                    match prefer.and_then(|g| acc.iter().copied().find(|d| d.wire() == g)).or_else(|| acc.first().copied()) {
                        Some(g) => Some(g),
                        None if p.of_type(ttype::DH).any(|t| t.id == 0) => None,
                        None => continue,
                    }
                }
            } else {
                None
            };
            return Some(EspChoice { num: p.num, alg, esn: o.esn, dh, spi });
        }
    }
    None
}

fn esp_choice_proposal(c: &EspChoice, our_spi: u32) -> Proposal {
    let (id, kl) = c.alg.wire();
    let mut t = vec![Transform { ttype: ttype::ENCR, id, key_len: kl }];
    if let Some(g) = c.dh {
        t.push(Transform { ttype: ttype::DH, id: g.wire(), key_len: None });
    }
    t.push(Transform { ttype: ttype::ESN, id: c.esn as u16, key_len: None });
    Proposal { num: c.num, protocol: proto::ESP, spi: our_spi.to_be_bytes().to_vec(), transforms: t }
}

/// Narrow the peer's proposed selectors to what we allow (RFC 7296 2.9).
fn narrow(proposed: &[TrafficSelector], allowed: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out = Vec::new();
    for p in proposed {
        for a in allowed {
            if let Some(i) = p.intersect(a) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
    }
    out
}

fn within(got: &[TrafficSelector], proposed: &[TrafficSelector]) -> bool {
    !got.is_empty() && got.iter().all(|g| proposed.iter().any(|p| g.intersect(p) == Some(*g)))
}

struct Msg {
    header: Header,
    payloads: Vec<Payload>,
}

impl Msg {
    fn nonce(&self) -> Option<&Vec<u8>> {
        self.payloads.iter().find_map(|p| if let Payload::Nonce(n) = p { Some(n) } else { None })
    }
    fn sa(&self) -> Option<&Vec<Proposal>> {
        self.payloads.iter().find_map(|p| if let Payload::Sa(s) = p { Some(s) } else { None })
    }
    fn ke(&self) -> Option<(u16, &Vec<u8>)> {
        self.payloads.iter().find_map(|p| if let Payload::Ke { group, data } = p { Some((*group, data)) } else { None })
    }
    fn tsi(&self) -> Option<&Vec<TrafficSelector>> {
        self.payloads.iter().find_map(|p| if let Payload::TsI(t) = p { Some(t) } else { None })
    }
    fn tsr(&self) -> Option<&Vec<TrafficSelector>> {
        self.payloads.iter().find_map(|p| if let Payload::TsR(t) = p { Some(t) } else { None })
    }
    fn notify(&self, t: u16) -> Option<&Notify> {
        find_notify(&self.payloads, t)
    }
    fn error_notify(&self) -> Option<u16> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.is_error() => Some(n.ntype),
            _ => None,
        })
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig, peers: Vec<PeerConfig>) -> Engine {
        let mut cookie_secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut cookie_secret);
        Engine {
            cfg,
            peers,
            sas: HashMap::new(),
            half_open: HashMap::new(),
            child_index: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            cookie_secret,
            spi_alloc: None,
            ike_collisions: HashMap::new(),
            key_export: false,
        }
    }

    /// Allow `ike_sa_keys` to hand out IKE keys (off by default: only for an explicit,
    /// configured debugging key export).
    pub fn set_key_export(&mut self, on: bool) {
        self.key_export = on;
    }

    /// The keys of the IKE_SA with these SPIs, when key export is on and the SA has keys.
    pub fn ike_sa_keys(&self, spi_i: u64, spi_r: u64) -> Option<IkeSaKeys> {
        if !self.key_export {
            return None;
        }
        let sa = self.sas.values().find(|s| s.spi_i == spi_i && s.spi_r == spi_r)?;
        let k = sa.keys.as_ref()?;
        Some(IkeSaKeys {
            spi_i,
            spi_r,
            encr: k.suite.encr,
            integ: k.suite.integ,
            sk_ei: k.e(true).to_vec(),
            sk_er: k.e(false).to_vec(),
            sk_ai: k.a(true).to_vec(),
            sk_ar: k.a(false).to_vec(),
        })
    }

    /// Adds a peer. It goes last, so the peer indices that IKE_SAs hold stay valid.
    pub fn add_peer(&mut self, peer: PeerConfig) {
        self.peers.push(peer);
    }

    /// Removes a peer: its IKE_SAs are deleted (a Delete is sent once for each established
    /// one; its CHILD_SAs go down with events, as `terminate`), every IKE_SA of the peer is
    /// forgotten now, and the peer indices of the other IKE_SAs are shifted down to match.
    /// (An IKE_SA's `peer` is the only peer index the engine keeps.)
    pub fn remove_peer(&mut self, now: Instant, peer_name: &str) -> bool {
        let Some(pi) = self.peers.iter().position(|p| p.name == peer_name) else { return false };
        self.terminate(now, peer_name);
        let spis: Vec<u64> = self.sas.iter().filter(|(_, s)| s.peer == Some(pi)).map(|(k, _)| *k).collect();
        for spi in spis {
            if let Some(sa) = self.sas.remove(&spi) {
                self.close_sa(*sa, DownReason::Local);
            }
        }
        for sa in self.sas.values_mut() {
            if let Some(p) = sa.peer.as_mut().filter(|p| **p > pi) {
                *p -= 1;
            }
        }
        self.peers.remove(pi);
        true
    }

    /// Let the caller choose inbound ESP SPIs (e.g. to encode a table slot). Values already
    /// in use or below 256 are retried.
    pub fn set_spi_allocator(&mut self, f: impl FnMut() -> u32 + Send + 'static) {
        self.spi_alloc = Some(Box::new(f));
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    pub fn peers(&self) -> &[PeerConfig] {
        &self.peers
    }
    /// Number of IKE_SAs (any state).
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }
    /// Established IKE_SAs of `peer`, as (SPIi, SPIr).
    pub fn ike_sas(&self, peer: &str) -> Vec<(u64, u64)> {
        let Some(pi) = self.peers.iter().position(|p| p.name == peer) else { return vec![] };
        self.sas.values().filter(|s| s.peer == Some(pi) && s.state == State::Established).map(|s| (s.spi_i, s.spi_r)).collect()
    }
    /// Installed CHILD_SAs of `peer`, as (inbound SPI, outbound SPI).
    pub fn child_sas(&self, peer: &str) -> Vec<(u32, u32)> {
        let Some(pi) = self.peers.iter().position(|p| p.name == peer) else { return vec![] };
        self.sas
            .values()
            .filter(|s| s.peer == Some(pi) && s.state == State::Established)
            .flat_map(|s| s.children.iter().filter(|c| !c.replaced).map(|c| (c.spi_in, c.spi_out)))
            .collect()
    }

    /// When the CHILD_SA with this inbound SPI rekeys (if it does) and when it expires.
    pub fn child_lifetime(&self, inbound_spi: u32) -> Option<(Option<Instant>, Instant)> {
        let key = self.child_index.get(&inbound_spi)?;
        let sa = self.sas.get(key)?;
        sa.children.iter().find(|c| c.spi_in == inbound_spi).map(|c| (c.rekey_at, c.expire_at))
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
    /// The earliest time `handle_timeout` should be called (may be early, never late).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Start the peers whose `start_action` is `Start`.
    pub fn start(&mut self, now: Instant) {
        let names: Vec<String> = self.peers.iter().filter(|p| p.start_action == StartAction::Start).map(|p| p.name.clone()).collect();
        for n in names {
            self.initiate(now, &n);
        }
    }

    // ---------------------------------------------------------------- helpers

    fn alloc_spi(&mut self) -> u32 {
        loop {
            let s = match self.spi_alloc.as_mut() {
                Some(f) => f(),
                None => rand::thread_rng().gen(),
            };
            if s >= 256 && !self.child_index.contains_key(&s) {
                return s;
            }
        }
    }

    fn alloc_ike_spi(&self) -> u64 {
        loop {
            let s: u64 = rand::thread_rng().gen();
            if s != 0 && !self.sas.contains_key(&s) {
                return s;
            }
        }
    }

    fn peer_name(&self, sa: &IkeSa) -> String {
        sa.peer.map(|p| self.peers[p].name.clone()).unwrap_or_default()
    }

    fn send_raw(&mut self, local: SocketAddr, remote: SocketAddr, msg: &[u8]) {
        let mut bytes = Vec::with_capacity(msg.len() + 4);
        if local.port() == self.cfg.natt_port {
            bytes.extend_from_slice(&[0, 0, 0, 0]);
        }
        bytes.extend_from_slice(msg);
        self.stats.tx_datagrams += 1;
        self.transmits.push_back(Transmit { local, remote, bytes });
    }

    fn header(sa: &IkeSa, exch: u8, response: bool, msg_id: u32) -> Header {
        let mut flags = 0;
        if sa.initiator {
            flags |= wire::flags::INITIATOR;
        }
        if response {
            flags |= wire::flags::RESPONSE;
        }
        Header { spi_i: sa.spi_i, spi_r: sa.spi_r, next_payload: 0, version: 0x20, exchange: exch, flags, msg_id, length: 0 }
    }

    /// Encode, encrypt and (if needed and agreed) fragment a message.
    fn seal(&mut self, sa: &mut IkeSa, exch: u8, response: bool, msg_id: u32, payloads: &[Payload]) -> Vec<Vec<u8>> {
        let header = Self::header(sa, exch, response, msg_id);
        let Some(keys) = sa.keys.as_ref() else {
            return vec![wire::emit_plain(header, payloads)];
        };
        let mut plain = Vec::with_capacity(256);
        let first = wire::emit_chain(payloads, &mut plain);
        let overhead = keys.overhead();
        let max = self.cfg.fragment_size.max(overhead + 64);
        if sa.frag_ok && exch != exchange::IKE_SA_INIT && plain.len() + overhead > max {
            let chunk = max - overhead;
            let total = plain.len().div_ceil(chunk);
            let mut out = Vec::with_capacity(total);
            for (i, c) in plain.chunks(chunk).enumerate() {
                sa.iv_counter += 1;
                let fi = if i == 0 { first } else { 0 };
                out.push(keys.seal(sa.initiator, header, fi, Some((i as u16 + 1, total as u16)), c, sa.iv_counter));
            }
            self.stats.fragments_tx += out.len() as u64;
            return out;
        }
        sa.iv_counter += 1;
        vec![keys.seal(sa.initiator, header, first, None, &plain, sa.iv_counter)]
    }

    /// Send a request now, or queue it behind the outstanding one (window size 1).
    fn request(&mut self, now: Instant, sa: &mut IkeSa, exch: u8, payloads: Vec<Payload>, kind: ReqKind) {
        if sa.pending.is_some() {
            sa.queue.push_back((exch, payloads, kind));
            return;
        }
        let msg_id = sa.next_req_id;
        sa.next_req_id += 1;
        let datagrams = self.seal(sa, exch, false, msg_id, &payloads);
        for d in &datagrams {
            self.send_raw(sa.local, sa.remote, d);
        }
        sa.pending = Some(Pending { msg_id, exchange: exch, datagrams, tries: 0, next: now + self.cfg.retransmit_base, kind, sent: now });
    }

    fn flush_queue(&mut self, now: Instant, sa: &mut IkeSa) {
        if sa.pending.is_none() {
            if let Some((e, p, k)) = sa.queue.pop_front() {
                self.request(now, sa, e, p, k);
            }
        }
    }

    fn respond(&mut self, now: Instant, sa: &mut IkeSa, exch: u8, msg_id: u32, payloads: &[Payload]) {
        let datagrams = self.seal(sa, exch, true, msg_id, payloads);
        for d in &datagrams {
            self.send_raw(sa.local, sa.remote, d);
        }
        sa.expect_req_id = msg_id.wrapping_add(1);
        sa.cached = Some(CachedResponse { msg_id, datagrams, until: now + self.cfg.response_cache_time });
    }

    fn next_deadline(&self, sa: &IkeSa) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut upd = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        upd(sa.pending.as_ref().map(|p| p.next));
        upd(sa.cached.as_ref().map(|c| c.until));
        match sa.state {
            State::Established => {
                upd(sa.rekey_at);
                upd(sa.expire_at);
                if let Some(iv) = sa.peer.and_then(|p| self.peers[p].dpd_interval) {
                    if sa.pending.is_none() {
                        upd(Some(sa.last_rx + iv));
                    }
                }
                for c in &sa.children {
                    upd(c.rekey_at);
                    upd(Some(c.expire_at));
                }
            }
            State::InitDone | State::InitSent | State::AuthSent => upd(Some(sa.created + self.cfg.half_open_timeout)),
            // A redundant IKE_SA from a rekey collision lingers until then for the peer's Delete.
            // (Only when idle: on_timer drops it then, so the deadline cannot repeat.)
            State::Rekeyed if sa.pending.is_none() && sa.cached.is_none() => upd(sa.expire_at),
            _ => {}
        }
        t
    }

    fn put_back(&mut self, sa: IkeSa) {
        let mut sa = sa;
        let spi = sa.our_spi();
        if let Some(d) = self.next_deadline(&sa) {
            if sa.scheduled != Some(d) {
                sa.scheduled = Some(d);
                self.timers.push(Reverse((d, spi)));
            }
        } else {
            sa.scheduled = None;
        }
        self.sas.insert(spi, Box::new(sa));
    }

    /// Forget an IKE_SA and everything indexed by it.
    fn drop_sa(&mut self, sa: IkeSa) {
        self.ike_collisions.remove(&sa.our_spi());
        if let Some(k) = sa.half_open_key {
            self.half_open.remove(&k);
        }
        for c in &sa.children {
            self.child_index.remove(&c.spi_in);
        }
        if let Some(hs) = &sa.hs {
            if hs.child_spi != 0 {
                self.child_index.remove(&hs.child_spi);
            }
        }
        let reserved = sa.pending.iter().map(|p| &p.kind).chain(sa.queue.iter().map(|q| &q.2));
        for k in reserved {
            if let ReqKind::CreateChild { spi, .. } = k {
                self.child_index.remove(spi);
            }
        }
    }

    fn close_sa(&mut self, sa: IkeSa, reason: DownReason) {
        let peer = self.peer_name(&sa);
        for c in &sa.children {
            self.events.push_back(Event::ChildSaDown {
                peer: peer.clone(),
                child: self.child_name(&sa, c.cfg),
                inbound_spi: c.spi_in,
                outbound_spi: c.spi_out,
                reason,
            });
        }
        if sa.state == State::Established {
            info!(target: "ike", peer = %peer, spi_i = format_args!("{:016x}", sa.spi_i), spi_r = format_args!("{:016x}", sa.spi_r), ?reason, "IKE_SA down");
            self.events.push_back(Event::IkeSaDown { peer, ike_spi_i: sa.spi_i, ike_spi_r: sa.spi_r, reason });
        } else if sa.peer.is_some() && sa.initiator && matches!(sa.state, State::InitSent | State::AuthSent) {
            warn!(target: "ike", peer = %peer, ?reason, "IKE_SA setup failed");
            self.events.push_back(Event::IkeSaDown { peer, ike_spi_i: sa.spi_i, ike_spi_r: sa.spi_r, reason });
        }
        self.drop_sa(sa);
    }

    fn child_name(&self, sa: &IkeSa, cfg: usize) -> String {
        sa.peer.and_then(|p| self.peers[p].children.get(cfg)).map(|c| c.name.clone()).unwrap_or_default()
    }

    /// The ESP proposals of a child for use on `sa`, with "any" (empty `algs`) resolved
    /// against the IKE_SA's encryption: the matching algorithm only when we propose, every
    /// algorithm (the matching one first) when we choose among the peer's.
    fn esp_props_for(&self, sa: &IkeSa, cfg: usize, choosing: bool) -> Vec<EspProposal> {
        let mut props = self.child_esp_props(sa.peer.unwrap(), cfg).to_vec();
        let Some(encr) = sa.keys.as_ref().map(|k| k.suite.encr) else { return props };
        for p in props.iter_mut().filter(|p| p.algs.is_empty()) {
            let m = EspAlg::matching(encr);
            p.algs.push(m);
            if choosing {
                p.algs.extend(EspAlg::ALL.into_iter().filter(|a| *a != m));
            }
        }
        props
    }

    fn child_esp_props(&self, peer: usize, cfg: usize) -> &[EspProposal] {
        let p = &self.peers[peer];
        match p.children.get(cfg) {
            Some(c) if !c.esp_proposals.is_empty() => &c.esp_proposals,
            _ => &p.esp_proposals,
        }
    }

    // ---------------------------------------------------------------- commands

    /// Start an IKE_SA (and its first CHILD_SA) with the named peer.
    pub fn initiate(&mut self, now: Instant, peer_name: &str) -> bool {
        let Some(pi) = self.peers.iter().position(|p| p.name == peer_name) else { return false };
        let p = &self.peers[pi];
        let (Some(raddr), Some(laddr)) = (p.remote_addr, p.local_addrs.first().copied()) else { return false };
        let Some(group) = p.ike_proposals.first().and_then(|x| x.dh.first().copied()) else { return false };
        let spi_i = self.alloc_ike_spi();
        let mut sa = IkeSa::new(now, Some(pi), true, spi_i, 0, SocketAddr::new(laddr, self.cfg.ike_port), SocketAddr::new(raddr, self.cfg.ike_port), State::InitSent);
        sa.hs = Some(Box::new(Handshake {
            dh: Some(DhPrivate::generate(group)),
            ni: rand_nonce(),
            nr: Vec::new(),
            init_req: Vec::new(),
            init_resp: Vec::new(),
            cookie: None,
            ke_retries: 0,
            child_spi: 0,
        }));
        info!(target: "ike", peer = %peer_name, "initiating IKE_SA");
        self.send_init(now, &mut sa);
        self.put_back(sa);
        true
    }

    fn send_init(&mut self, now: Instant, sa: &mut IkeSa) {
        let pi = sa.peer.unwrap();
        let hs = sa.hs.as_mut().unwrap();
        let dh = hs.dh.as_ref().unwrap();
        let group = dh.group();
        let mut payloads = Vec::with_capacity(8);
        if let Some(c) = &hs.cookie {
            payloads.push(Payload::Notify(Notify::new(notify::COOKIE, c.clone())));
        }
        payloads.push(Payload::Sa(ike_proposals(&self.peers[pi].ike_proposals, None, Some(group))));
        payloads.push(Payload::Ke { group: group.wire(), data: dh.public() });
        payloads.push(Payload::Nonce(hs.ni.clone()));
        payloads.push(Payload::Notify(Notify::new(notify::NAT_DETECTION_SOURCE_IP, nat_hash(sa.spi_i, 0, sa.local))));
        payloads.push(Payload::Notify(Notify::new(notify::NAT_DETECTION_DESTINATION_IP, nat_hash(sa.spi_i, 0, sa.remote))));
        payloads.push(Payload::Notify(Notify::new(notify::IKEV2_FRAGMENTATION_SUPPORTED, vec![])));
        let hdr = Header { spi_i: sa.spi_i, spi_r: 0, next_payload: 0, version: 0x20, exchange: exchange::IKE_SA_INIT, flags: wire::flags::INITIATOR, msg_id: 0, length: 0 };
        let bytes = wire::emit_plain(hdr, &payloads);
        hs.init_req = bytes.clone();
        self.send_raw(sa.local, sa.remote, &bytes);
        sa.next_req_id = 1;
        sa.pending = Some(Pending { msg_id: 0, exchange: exchange::IKE_SA_INIT, datagrams: vec![bytes], tries: 0, next: now + self.cfg.retransmit_base, kind: ReqKind::Init, sent: now });
    }

    /// Delete every IKE_SA of the named peer (with its CHILD_SAs).
    pub fn terminate(&mut self, now: Instant, peer_name: &str) {
        let Some(pi) = self.peers.iter().position(|p| p.name == peer_name) else { return };
        let spis: Vec<u64> = self.sas.iter().filter(|(_, s)| s.peer == Some(pi)).map(|(k, _)| *k).collect();
        for spi in spis {
            let Some(mut sa) = self.sas.remove(&spi).map(|b| *b) else { continue };
            if sa.state == State::Established {
                self.delete_ike(now, &mut sa, DownReason::Local);
                self.put_back(sa);
            } else {
                self.close_sa(sa, DownReason::Local);
            }
        }
    }

    /// Send a Delete for the IKE_SA; the CHILD_SAs go down now.
    fn delete_ike(&mut self, now: Instant, sa: &mut IkeSa, reason: DownReason) {
        let peer = self.peer_name(sa);
        for c in sa.children.drain(..).collect::<Vec<_>>() {
            self.child_index.remove(&c.spi_in);
            self.events.push_back(Event::ChildSaDown { peer: peer.clone(), child: self.child_name(sa, c.cfg), inbound_spi: c.spi_in, outbound_spi: c.spi_out, reason });
        }
        self.events.push_back(Event::IkeSaDown { peer, ike_spi_i: sa.spi_i, ike_spi_r: sa.spi_r, reason });
        sa.state = State::Deleting;
        sa.queue.clear();
        sa.pending = None;
        self.request(now, sa, exchange::INFORMATIONAL, vec![Payload::Delete { protocol: proto::IKE, spis: vec![] }], ReqKind::DeleteIke);
    }

    fn find_child(&self, inbound_spi: u32) -> Option<u64> {
        self.child_index.get(&inbound_spi).copied()
    }

    /// Rekey the CHILD_SA with this inbound SPI (CREATE_CHILD_SA with REKEY_SA).
    pub fn rekey_child(&mut self, now: Instant, inbound_spi: u32) -> bool {
        let Some(ike) = self.find_child(inbound_spi) else { return false };
        let Some(mut sa) = self.sas.remove(&ike).map(|b| *b) else { return false };
        let ok = self.start_child_rekey(now, &mut sa, inbound_spi);
        self.put_back(sa);
        ok
    }

    /// Rekey the IKE_SA of the named peer.
    pub fn rekey_ike(&mut self, now: Instant, peer_name: &str) -> bool {
        let Some(pi) = self.peers.iter().position(|p| p.name == peer_name) else { return false };
        let Some(spi) = self.sas.iter().find(|(_, s)| s.peer == Some(pi) && s.state == State::Established).map(|(k, _)| *k) else { return false };
        let mut sa = *self.sas.remove(&spi).unwrap();
        self.start_ike_rekey(now, &mut sa);
        self.put_back(sa);
        true
    }

    /// Create an additional CHILD_SA (config index `child`) on the peer's IKE_SA.
    pub fn create_child(&mut self, now: Instant, peer_name: &str, child: &str) -> bool {
        let Some(pi) = self.peers.iter().position(|p| p.name == peer_name) else { return false };
        let Some(ci) = self.peers[pi].children.iter().position(|c| c.name == child) else { return false };
        let Some(spi) = self.sas.iter().find(|(_, s)| s.peer == Some(pi) && s.state == State::Established).map(|(k, _)| *k) else { return false };
        let mut sa = *self.sas.remove(&spi).unwrap();
        self.start_create_child(now, &mut sa, ci, None);
        self.put_back(sa);
        true
    }

    /// Start action "trap": traffic hit a PROTECT policy of `child` that has no SA. Starts
    /// the IKE_SA (with its CHILD_SAs) when the peer has none, or a CREATE_CHILD_SA for the
    /// child when the IKE_SA is up without it. Idempotent: nothing new is started while the
    /// IKE_SA or that CHILD_SA is being negotiated, or once the CHILD_SA is up. False for an
    /// unknown peer or child, or when there is nothing we can start (no remote address).
    pub fn acquire(&mut self, now: Instant, peer_name: &str, child: &str) -> bool {
        let Some(pi) = self.peers.iter().position(|p| p.name == peer_name) else { return false };
        let Some(ci) = self.peers[pi].children.iter().position(|c| c.name == child) else { return false };
        let in_flight = |k: &ReqKind| matches!(k, ReqKind::CreateChild { cfg, rekey_of: None, .. } if *cfg == ci);
        let mut established = None;
        for (spi, sa) in self.sas.iter().filter(|(_, s)| s.peer == Some(pi)) {
            match sa.state {
                // The IKE_SA being set up brings up every child of the peer.
                State::InitSent | State::AuthSent => return true,
                State::Established => {
                    let has = sa.children.iter().any(|c| c.cfg == ci && !c.replaced);
                    let pending = sa.pending.iter().map(|p| &p.kind).chain(sa.queue.iter().map(|q| &q.2)).any(in_flight);
                    if has || pending {
                        return true;
                    }
                    established.get_or_insert(*spi);
                }
                _ => {}
            }
        }
        match established {
            Some(spi) => {
                debug!(target: "ike", peer = %peer_name, %child, "acquire: creating CHILD_SA");
                let mut sa = *self.sas.remove(&spi).unwrap();
                self.start_create_child(now, &mut sa, ci, None);
                self.put_back(sa);
                true
            }
            None => {
                debug!(target: "ike", peer = %peer_name, %child, "acquire: initiating IKE_SA");
                self.initiate(now, peer_name)
            }
        }
    }

    /// Feed the inbound packet counter of a CHILD_SA (for liveness: ESP arriving counts as
    /// the peer being alive; a CHILD_SA with no ESP while IKE answers gets rekeyed).
    pub fn note_child_traffic(&mut self, now: Instant, inbound_spi: u32, packets_total: u64) {
        let Some(ike) = self.find_child(inbound_spi) else { return };
        let Some(sa) = self.sas.get_mut(&ike) else { return };
        let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == inbound_spi) else { return };
        match c.traffic {
            Some((n, _)) if n >= packets_total => {}
            _ => {
                c.traffic = Some((packets_total, now));
                sa.last_rx = sa.last_rx.max(now);
            }
        }
    }

    fn start_child_rekey(&mut self, now: Instant, sa: &mut IkeSa, inbound_spi: u32) -> bool {
        if sa.state != State::Established {
            return false;
        }
        let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == inbound_spi && !c.replaced && !c.rekeying) else { return false };
        c.rekeying = true;
        let cfg = c.cfg;
        self.start_create_child(now, sa, cfg, Some(inbound_spi));
        true
    }

    fn start_create_child(&mut self, now: Instant, sa: &mut IkeSa, cfg: usize, rekey_of: Option<u32>) {
        let pi = sa.peer.unwrap();
        let spi = self.alloc_spi();
        self.child_index.insert(spi, sa.our_spi());
        let props = self.esp_props_for(sa, cfg, false);
        let ccfg = &self.peers[pi].children[cfg];
        let group = if ccfg.pfs { props.iter().find_map(|p| p.dh.first().copied()) } else { None };
        let (lts, rts) = match rekey_of.and_then(|s| sa.children.iter().find(|c| c.spi_in == s)) {
            Some(c) => (c.local_ts.clone(), c.remote_ts.clone()),
            None => (ccfg.local_ts.clone(), ccfg.remote_ts.clone()),
        };
        let nonce = rand_nonce();
        let dh = group.map(DhPrivate::generate);
        let mut payloads = Vec::with_capacity(7);
        if let Some(old) = rekey_of {
            payloads.push(Payload::Notify(Notify { protocol: proto::ESP, spi: old.to_be_bytes().to_vec(), ntype: notify::REKEY_SA, data: vec![] }));
        }
        payloads.push(Payload::Sa(esp_proposals(&props, spi, group)));
        payloads.push(Payload::Nonce(nonce.clone()));
        if let Some(d) = &dh {
            payloads.push(Payload::Ke { group: d.group().wire(), data: d.public() });
        }
        payloads.push(Payload::TsI(lts));
        payloads.push(Payload::TsR(rts));
        self.request(now, sa, exchange::CREATE_CHILD_SA, payloads, ReqKind::CreateChild { cfg, spi, nonce, dh, rekey_of });
    }

    fn start_ike_rekey(&mut self, now: Instant, sa: &mut IkeSa) {
        let pi = sa.peer.unwrap();
        let suite = sa.keys.as_ref().unwrap().suite;
        let new_spi = self.alloc_ike_spi();
        let nonce = rand_nonce();
        let dh = DhPrivate::generate(suite.dh);
        let mut props = ike_proposals(&self.peers[pi].ike_proposals, Some(new_spi), Some(suite.dh));
        // Offer the current suite first.
        props.insert(0, suite_proposal(1, &suite, Some(new_spi)));
        for (i, p) in props.iter_mut().enumerate() {
            p.num = i as u8 + 1;
        }
        let payloads = vec![Payload::Sa(props), Payload::Nonce(nonce.clone()), Payload::Ke { group: suite.dh.wire(), data: dh.public() }];
        sa.rekey_at = None;
        // Reserve the SPI so nobody else takes it.
        self.request(now, sa, exchange::CREATE_CHILD_SA, payloads, ReqKind::RekeyIke { new_spi, nonce, dh });
    }

    // ---------------------------------------------------------------- input

    /// Process one UDP datagram received on `local` from `remote`.
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, bytes: &[u8]) {
        self.stats.rx_datagrams += 1;
        let mut b = bytes;
        if local.port() == self.cfg.natt_port {
            if b.len() < 4 || b[..4] != [0, 0, 0, 0] {
                self.stats.dropped_non_ike += 1;
                return;
            }
            b = &b[4..];
        }
        if b.len() > self.cfg.max_datagram {
            self.stats.dropped_oversized += 1;
            return;
        }
        let parsed = match wire::parse_message(b) {
            Ok(p) => p,
            Err(wire::ParseError::UnsupportedCritical(t)) => {
                self.stats.unsupported_critical += 1;
                if let Ok(h) = Header::parse(b) {
                    if h.exchange == exchange::IKE_SA_INIT && !h.is_response() {
                        let hdr = Header { flags: wire::flags::RESPONSE, ..h };
                        let msg = wire::emit_plain(hdr, &[Payload::Notify(Notify::new(notify::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t]))]);
                        self.send_raw(local, remote, &msg);
                    }
                }
                return;
            }
            Err(_) => {
                self.stats.dropped_malformed += 1;
                return;
            }
        };
        let h = parsed.header;
        let b = &b[..h.length as usize];
        if h.exchange == exchange::IKE_SA_INIT && !h.is_response() {
            if h.spi_r != 0 || h.msg_id != 0 || parsed.encrypted.is_some() {
                self.stats.dropped_malformed += 1;
                return;
            }
            self.responder_init(now, local, remote, b, parsed.payloads, h);
            return;
        }
        let our_spi = if h.from_initiator() { h.spi_r } else { h.spi_i };
        let Some(mut sa) = self.sas.remove(&our_spi).map(|b| *b) else {
            self.stats.dropped_unknown_spi += 1;
            return;
        };
        // The I flag must say the sender is the other role.
        if h.from_initiator() == sa.initiator || (!sa.initiator && h.spi_i != sa.spi_i) {
            self.stats.dropped_unknown_spi += 1;
            self.put_back(sa);
            return;
        }
        if h.exchange == exchange::IKE_SA_INIT {
            if sa.state == State::InitSent && sa.pending.as_ref().is_some_and(|p| p.msg_id == 0) {
                self.initiator_init_response(now, sa, local, remote, b, parsed.payloads, h);
            } else {
                self.stats.duplicate_responses += 1;
                self.put_back(sa);
            }
            return;
        }
        let (Some(enc), true) = (parsed.encrypted, sa.keys.is_some()) else {
            self.stats.dropped_unexpected += 1;
            self.put_back(sa);
            return;
        };
        // Window and duplicates before any crypto work.
        if h.is_response() {
            if !sa.pending.as_ref().is_some_and(|p| p.msg_id == h.msg_id && p.exchange == h.exchange) {
                self.stats.duplicate_responses += 1;
                self.put_back(sa);
                return;
            }
        } else if h.msg_id != sa.expect_req_id {
            if sa.cached.as_ref().is_some_and(|c| c.msg_id == h.msg_id) {
                // A retransmitted request: resend our answer (only for the first fragment).
                let first_frag = enc.ptype != ptype::SKF || b.get(enc.offset + 4..enc.offset + 6) == Some(&[0, 1]);
                if first_frag {
                    self.stats.retransmitted_responses += 1;
                    let d = sa.cached.as_ref().unwrap().datagrams.clone();
                    for m in d {
                        self.send_raw(sa.local, sa.remote, &m);
                    }
                }
            } else {
                self.stats.dropped_bad_msg_id += 1;
            }
            self.put_back(sa);
            return;
        }
        let plain = match sa.keys.as_ref().unwrap().open(!sa.initiator, b, &enc) {
            Ok(p) => p,
            Err(_) => {
                self.stats.dropped_integrity += 1;
                self.put_back(sa);
                return;
            }
        };
        let (first, plain) = if enc.ptype == ptype::SKF {
            self.stats.fragments_rx += 1;
            match self.reassemble(&mut sa, h.msg_id, b, &enc, plain) {
                Some(x) => x,
                None => {
                    self.put_back(sa);
                    return;
                }
            }
        } else {
            (enc.first_inner, plain)
        };
        let payloads = match wire::parse_chain(first, &plain, 0, false) {
            Ok((p, _)) => p,
            Err(e) => {
                if let wire::ParseError::UnsupportedCritical(t) = e {
                    self.stats.unsupported_critical += 1;
                    if !h.is_response() {
                        self.respond(now, &mut sa, h.exchange, h.msg_id, &[Payload::Notify(Notify::new(notify::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t]))]);
                    }
                } else {
                    self.stats.dropped_malformed += 1;
                }
                self.put_back(sa);
                return;
            }
        };
        // Authenticated: the peer is alive; follow it across NAT.
        sa.last_rx = now;
        if sa.nat || local.port() == self.cfg.natt_port {
            if (sa.remote != remote || sa.local != local) && sa.state == State::Established {
                info!(target: "ike", peer = %self.peer_name(&sa), from = %sa.remote, to = %remote, "peer address changed");
                let children = sa.children.iter().map(|c| (c.spi_in, c.spi_out)).collect();
                self.events.push_back(Event::PeerAddressChanged { peer: self.peer_name(&sa), ike_spi_i: sa.spi_i, ike_spi_r: sa.spi_r, local, remote, children });
            }
            sa.remote = remote;
            sa.local = local;
        }
        let msg = Msg { header: h, payloads };
        if h.is_response() {
            let p = sa.pending.take().unwrap();
            self.handle_response(now, sa, local, remote, msg, p);
        } else {
            self.handle_request(now, sa, local, remote, msg);
        }
    }

    fn reassemble(&mut self, sa: &mut IkeSa, msg_id: u32, b: &[u8], enc: &wire::EncryptedRef, plain: Vec<u8>) -> Option<(u8, Vec<u8>)> {
        let num = u16::from_be_bytes([b[enc.offset + 4], b[enc.offset + 5]]);
        let total = u16::from_be_bytes([b[enc.offset + 6], b[enc.offset + 7]]);
        if num == 0 || total == 0 || num > total || total > 64 {
            self.stats.dropped_malformed += 1;
            return None;
        }
        let r = sa.frags.get_or_insert_with(|| Box::new(Reassembly { msg_id, total, first_inner: 0, parts: vec![None; total as usize] }));
        if r.msg_id != msg_id || r.total != total {
            **r = Reassembly { msg_id, total, first_inner: 0, parts: vec![None; total as usize] };
        }
        if num == 1 {
            r.first_inner = enc.first_inner;
        }
        r.parts[num as usize - 1] = Some(plain);
        if r.parts.iter().all(|p| p.is_some()) {
            let r = sa.frags.take().unwrap();
            let mut all = Vec::new();
            for p in r.parts.into_iter().flatten() {
                all.extend_from_slice(&p);
            }
            return Some((r.first_inner, all));
        }
        None
    }

    fn cookie_for(&self, ni: &[u8], remote: SocketAddr, spi_i: u64) -> Vec<u8> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.cookie_secret);
        ctx.update(ni);
        ctx.update(remote.to_string().as_bytes());
        ctx.update(&spi_i.to_be_bytes());
        ctx.finish().as_ref()[..16].to_vec()
    }

    fn responder_init(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, b: &[u8], payloads: Vec<Payload>, h: Header) {
        if let Some(spi) = self.half_open.get(&(h.spi_i, remote)).copied() {
            // Retransmitted IKE_SA_INIT: answer with the same response.
            if let Some(sa) = self.sas.get(&spi) {
                if let Some(c) = &sa.cached {
                    if c.msg_id == 0 {
                        let d = c.datagrams.clone();
                        self.stats.retransmitted_responses += 1;
                        for m in d {
                            self.send_raw(local, remote, &m);
                        }
                        return;
                    }
                }
            }
            self.stats.dropped_unexpected += 1;
            return;
        }
        let msg = Msg { header: h, payloads };
        let reply_plain = |eng: &mut Engine, n: Notify| {
            let hdr = Header { flags: wire::flags::RESPONSE, next_payload: 0, length: 0, ..h };
            let m = wire::emit_plain(hdr, &[Payload::Notify(n)]);
            eng.send_raw(local, remote, &m);
        };
        let (Some(ni), Some(sa_props), Some((ke_group, ke_data))) = (msg.nonce(), msg.sa(), msg.ke()) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if self.half_open.len() >= self.cfg.max_half_open {
            self.stats.dropped_half_open_limit += 1;
            return;
        }
        if self.half_open.len() >= self.cfg.cookie_threshold {
            let want = self.cookie_for(ni, remote, h.spi_i);
            let ok = msg.notify(notify::COOKIE).is_some_and(|c| ct_eq(&c.data, &want));
            if !ok {
                self.stats.cookies_sent += 1;
                reply_plain(self, Notify::new(notify::COOKIE, want));
                return;
            }
        }
        // Candidate peers by address; the identity decides later, in IKE_AUTH.
        let ip = remote.ip();
        let mut choice = None;
        for p in self.peers.iter().filter(|p| p.remote_addr.is_none_or(|a| a == ip)) {
            if let Some(c) = select_ike(sa_props, &p.ike_proposals, Some(ke_group)) {
                choice = Some(c);
                break;
            }
        }
        let Some((num, suite, _)) = choice else {
            self.stats.no_proposal_chosen += 1;
            debug!(target: "ike", %remote, "IKE_SA_INIT: no proposal chosen");
            reply_plain(self, Notify::new(notify::NO_PROPOSAL_CHOSEN, vec![]));
            return;
        };
        if suite.dh.wire() != ke_group {
            self.stats.invalid_ke_sent += 1;
            reply_plain(self, Notify::new(notify::INVALID_KE_PAYLOAD, suite.dh.wire().to_be_bytes().to_vec()));
            return;
        }
        let dh = DhPrivate::generate(suite.dh);
        let Ok(shared) = dh.shared(ke_data) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let spi_r = self.alloc_ike_spi();
        let nr = rand_nonce();
        // NAT detection (RFC 7296 2.23): SPIr is zero in the request's hashes.
        let mut nat = false;
        let srcs: Vec<&Notify> = msg.payloads.iter().filter_map(|p| match p {
            Payload::Notify(n) if n.ntype == notify::NAT_DETECTION_SOURCE_IP => Some(n),
            _ => None,
        }).collect();
        if !srcs.is_empty() {
            let want = nat_hash(h.spi_i, 0, remote);
            if !srcs.iter().any(|n| ct_eq(&n.data, &want)) {
                nat = true;
            }
        }
        if let Some(d) = msg.notify(notify::NAT_DETECTION_DESTINATION_IP) {
            if !ct_eq(&d.data, &nat_hash(h.spi_i, 0, local)) {
                nat = true;
            }
        }
        let frag_ok = msg.notify(notify::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        let mut resp = vec![
            Payload::Sa(vec![suite_proposal(num, &suite, None)]),
            Payload::Ke { group: suite.dh.wire(), data: dh.public() },
            Payload::Nonce(nr.clone()),
            Payload::Notify(Notify::new(notify::NAT_DETECTION_SOURCE_IP, nat_hash(h.spi_i, spi_r, local))),
            Payload::Notify(Notify::new(notify::NAT_DETECTION_DESTINATION_IP, nat_hash(h.spi_i, spi_r, remote))),
        ];
        if frag_ok {
            resp.push(Payload::Notify(Notify::new(notify::IKEV2_FRAGMENTATION_SUPPORTED, vec![])));
        }
        let hdr = Header { spi_i: h.spi_i, spi_r, next_payload: 0, version: 0x20, exchange: exchange::IKE_SA_INIT, flags: wire::flags::RESPONSE, msg_id: 0, length: 0 };
        let out = wire::emit_plain(hdr, &resp);
        self.send_raw(local, remote, &out);
        let keys = IkeKeys::initial(suite, &shared, ni, &nr, h.spi_i, spi_r);
        let mut sa = IkeSa::new(now, None, false, h.spi_i, spi_r, local, remote, State::InitDone);
        sa.keys = Some(keys);
        sa.hs = Some(Box::new(Handshake { dh: None, ni: ni.clone(), nr, init_req: b.to_vec(), init_resp: out.clone(), cookie: None, ke_retries: 0, child_spi: 0 }));
        sa.expect_req_id = 1;
        sa.cached = Some(CachedResponse { msg_id: 0, datagrams: vec![out], until: now + self.cfg.response_cache_time });
        sa.nat = nat;
        sa.frag_ok = frag_ok;
        sa.half_open_key = Some((h.spi_i, remote));
        self.half_open.insert((h.spi_i, remote), spi_r);
        self.put_back(sa);
    }

    #[allow(clippy::too_many_arguments)]
    fn initiator_init_response(&mut self, now: Instant, mut sa: IkeSa, local: SocketAddr, remote: SocketAddr, b: &[u8], payloads: Vec<Payload>, h: Header) {
        let msg = Msg { header: h, payloads };
        let pi = sa.peer.unwrap();
        if let Some(c) = msg.notify(notify::COOKIE) {
            let hs = sa.hs.as_mut().unwrap();
            if hs.cookie.is_some() && hs.ke_retries > 4 {
                self.close_sa(sa, DownReason::Failed);
                return;
            }
            hs.ke_retries += 1;
            hs.cookie = Some(c.data.clone());
            debug!(target: "ike", "IKE_SA_INIT: replaying cookie");
            self.send_init(now, &mut sa);
            self.put_back(sa);
            return;
        }
        if let Some(n) = msg.notify(notify::INVALID_KE_PAYLOAD) {
            let g = (n.data.len() == 2).then(|| u16::from_be_bytes([n.data[0], n.data[1]])).and_then(DhGroup::from_wire);
            let hs = sa.hs.as_mut().unwrap();
            match g {
                Some(g) if hs.ke_retries < 3 && self.peers[pi].ike_proposals.iter().any(|p| p.dh.contains(&g)) => {
                    debug!(target: "ike", group = ?g, "IKE_SA_INIT: INVALID_KE_PAYLOAD, retrying");
                    hs.ke_retries += 1;
                    hs.dh = Some(DhPrivate::generate(g));
                    self.send_init(now, &mut sa);
                    self.put_back(sa);
                }
                _ => self.close_sa(sa, DownReason::Failed),
            }
            return;
        }
        if let Some(e) = msg.error_notify() {
            warn!(target: "ike", peer = %self.peers[pi].name, notify = e, "IKE_SA_INIT rejected");
            self.close_sa(sa, DownReason::Failed);
            return;
        }
        let hs = sa.hs.as_mut().unwrap();
        let group = hs.dh.as_ref().unwrap().group();
        let (Some(nr), Some(props), Some((kg, kd))) = (msg.nonce(), msg.sa(), msg.ke()) else {
            self.stats.dropped_malformed += 1;
            self.put_back(sa);
            return;
        };
        let suite = match select_ike(props, &self.peers[pi].ike_proposals, Some(group.wire())) {
            Some((_, s, _)) if props.len() == 1 && s.dh == group && kg == group.wire() && h.spi_r != 0 => s,
            _ => {
                self.stats.dropped_unexpected += 1;
                self.close_sa(sa, DownReason::Failed);
                return;
            }
        };
        let Ok(shared) = hs.dh.as_ref().unwrap().shared(kd) else {
            self.stats.dropped_malformed += 1;
            self.close_sa(sa, DownReason::Failed);
            return;
        };
        sa.spi_r = h.spi_r;
        hs.nr = nr.clone();
        hs.init_resp = b.to_vec();
        hs.dh = None;
        let keys = IkeKeys::initial(suite, &shared, &hs.ni, nr, sa.spi_i, sa.spi_r);
        // NAT detection.
        let mut nat = false;
        if let Some(n) = msg.notify(notify::NAT_DETECTION_SOURCE_IP) {
            if !msg.payloads.iter().any(|p| matches!(p, Payload::Notify(x) if x.ntype == notify::NAT_DETECTION_SOURCE_IP && ct_eq(&x.data, &nat_hash(sa.spi_i, sa.spi_r, remote)))) {
                let _ = n;
                nat = true;
            }
        }
        if let Some(d) = msg.notify(notify::NAT_DETECTION_DESTINATION_IP) {
            if !ct_eq(&d.data, &nat_hash(sa.spi_i, sa.spi_r, local)) {
                nat = true;
            }
        }
        sa.nat = nat;
        sa.frag_ok = msg.notify(notify::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        if nat {
            sa.local.set_port(self.cfg.natt_port);
            sa.remote.set_port(self.cfg.natt_port);
        }
        sa.keys = Some(keys);
        sa.pending = None;
        sa.state = State::AuthSent;
        // IKE_AUTH.
        let p = &self.peers[pi];
        let idi = id_body(&p.local_id);
        let Auth::Psk(psk) = &p.auth;
        let hs = sa.hs.as_ref().unwrap();
        let auth = psk_auth(suite.prf, psk, &hs.init_req, &hs.nr, sa.keys.as_ref().unwrap().p(true), &idi);
        let mut payloads = vec![
            Payload::IdI { id_type: idi[0], data: idi[4..].to_vec() },
            Payload::IdR { id_type: p.remote_id.id_type(), data: p.remote_id.data() },
            Payload::Auth { method: wire::AUTH_SHARED_KEY_MIC, data: auth },
            Payload::Notify(Notify::new(notify::INITIAL_CONTACT, vec![])),
        ];
        if let Some(c) = p.children.first() {
            let props = self.esp_props_for(&sa, 0, false);
            let (lts, rts) = (c.local_ts.clone(), c.remote_ts.clone());
            let spi = self.alloc_spi();
            self.child_index.insert(spi, sa.our_spi());
            sa.hs.as_mut().unwrap().child_spi = spi;
            payloads.push(Payload::Sa(esp_proposals(&props, spi, None)));
            payloads.push(Payload::TsI(lts));
            payloads.push(Payload::TsR(rts));
        }
        self.request(now, &mut sa, exchange::IKE_AUTH, payloads, ReqKind::Auth);
        self.put_back(sa);
    }

    fn handle_request(&mut self, now: Instant, mut sa: IkeSa, _local: SocketAddr, _remote: SocketAddr, msg: Msg) {
        let h = msg.header;
        match (h.exchange, sa.state) {
            (exchange::IKE_AUTH, State::InitDone) => self.responder_auth(now, sa, msg),
            (exchange::INFORMATIONAL, State::Established | State::Rekeyed | State::Deleting | State::InitDone) => self.informational(now, sa, msg),
            (exchange::CREATE_CHILD_SA, State::Established) => self.create_child_request(now, sa, msg),
            (exchange::CREATE_CHILD_SA, State::Rekeyed | State::Deleting) => {
                self.respond(now, &mut sa, h.exchange, h.msg_id, &[Payload::Notify(Notify::new(notify::TEMPORARY_FAILURE, vec![]))]);
                self.put_back(sa);
            }
            _ => {
                self.stats.dropped_unexpected += 1;
                self.put_back(sa);
            }
        }
    }

    fn responder_auth(&mut self, now: Instant, mut sa: IkeSa, msg: Msg) {
        let h = msg.header;
        let idi = msg.payloads.iter().find_map(|p| if let Payload::IdI { id_type, data } = p { Some((*id_type, data.clone())) } else { None });
        let auth = msg.payloads.iter().find_map(|p| if let Payload::Auth { method, data } = p { Some((*method, data.clone())) } else { None });
        let (Some((it, idd)), Some((am, ad))) = (idi, auth) else {
            self.stats.dropped_malformed += 1;
            self.respond(now, &mut sa, h.exchange, h.msg_id, &[Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))]);
            self.close_sa(sa, DownReason::Failed);
            return;
        };
        let claimed = Identity::from_wire(it, &idd);
        let suite = sa.keys.as_ref().unwrap().suite;
        let ip = sa.remote.ip();
        let pi = claimed.as_ref().and_then(|id| {
            self.peers.iter().position(|p| &p.remote_id == id && p.remote_addr.is_none_or(|a| a == ip) && select_ike(&[suite_proposal(1, &suite, None)], &p.ike_proposals, None).is_some())
        });
        let mut idi_body = vec![it, 0, 0, 0];
        idi_body.extend_from_slice(&idd);
        let ok = pi.is_some_and(|pi| {
            let Auth::Psk(psk) = &self.peers[pi].auth;
            let hs = sa.hs.as_ref().unwrap();
            let want = psk_auth(suite.prf, psk, &hs.init_req, &hs.nr, sa.keys.as_ref().unwrap().p(true), &idi_body);
            am == wire::AUTH_SHARED_KEY_MIC && ct_eq(&want, &ad)
        });
        if !ok {
            self.stats.auth_failures += 1;
            warn!(target: "ike", peer_id = %claimed.as_ref().map(|c| c.to_string()).unwrap_or_else(|| "<unparsable>".into()), remote = %sa.remote, "IKE_AUTH: authentication failed");
            self.events.push_back(Event::AuthFailed { peer_id: claimed, remote: sa.remote });
            self.respond(now, &mut sa, h.exchange, h.msg_id, &[Payload::Notify(Notify::new(notify::AUTHENTICATION_FAILED, vec![]))]);
            // Keep the SA only to answer retransmissions; it expires as half-open.
            sa.state = State::Deleting;
            sa.hs = None;
            self.put_back(sa);
            return;
        }
        let pi = pi.unwrap();
        sa.peer = Some(pi);
        sa.remote_id = claimed.clone();
        let p = &self.peers[pi];
        let idr = id_body(&p.local_id);
        let Auth::Psk(psk) = &p.auth;
        let hs = sa.hs.take().unwrap();
        let my_auth = psk_auth(suite.prf, psk, &hs.init_resp, &hs.ni, sa.keys.as_ref().unwrap().p(false), &idr);
        let mut resp = vec![
            Payload::IdR { id_type: idr[0], data: idr[4..].to_vec() },
            Payload::Auth { method: wire::AUTH_SHARED_KEY_MIC, data: my_auth },
        ];
        sa.state = State::Established;
        sa.keys.as_mut().unwrap().drop_auth_keys();
        if let Some(k) = sa.half_open_key.take() {
            self.half_open.remove(&k);
        }
        let (rk, ex) = jittered(now, &p.ike_lifetime);
        sa.rekey_at = rk;
        sa.expire_at = Some(ex);
        self.stats.ike_sa_established += 1;
        info!(target: "ike", peer = %p.name, remote = %sa.remote, id = %claimed.as_ref().unwrap(), "IKE_SA established (responder)");
        self.events.push_back(Event::IkeSaUp { peer: p.name.clone(), ike_spi_i: sa.spi_i, ike_spi_r: sa.spi_r, local: sa.local, remote: sa.remote, remote_id: claimed.unwrap() });
        let mut up = None;
        if let Some(props) = msg.sa() {
            match self.responder_child(&mut sa, props, msg.tsi(), msg.tsr(), None, &hs.ni, &hs.nr, None, None, false, now) {
                Ok((payloads, ev)) => {
                    resp.extend(payloads);
                    up = Some(ev);
                }
                Err(n) => resp.push(Payload::Notify(Notify::new(n, vec![]))),
            }
        }
        self.respond(now, &mut sa, h.exchange, h.msg_id, &resp);
        if let Some(ev) = up {
            self.events.push_back(ev);
        }
        self.put_back(sa);
    }

    /// Negotiate a CHILD_SA as responder. Returns the payloads to answer with and the
    /// ChildSaUp event, or the notify to refuse with.
    #[allow(clippy::too_many_arguments)]
    fn responder_child(
        &mut self,
        sa: &mut IkeSa,
        props: &[Proposal],
        tsi: Option<&Vec<TrafficSelector>>,
        tsr: Option<&Vec<TrafficSelector>>,
        ke: Option<(u16, &Vec<u8>)>,
        ni: &[u8],
        nr: &[u8],
        replaces: Option<usize>,
        fixed_cfg: Option<usize>,
        create: bool,
        now: Instant,
    ) -> Result<(Vec<Payload>, Event), u16> {
        let pi = sa.peer.unwrap();
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else { return Err(notify::INVALID_SYNTAX) };
        let peer = &self.peers[pi];
        let mut found = None;
        for (ci, c) in peer.children.iter().enumerate() {
            if fixed_cfg.is_some_and(|f| f != ci) {
                continue;
            }
            let r = narrow(tsi, &c.remote_ts);
            let l = narrow(tsr, &c.local_ts);
            if !r.is_empty() && !l.is_empty() {
                found = Some((ci, l, r));
                break;
            }
        }
        let Some((ci, lts, rts)) = found else { return Err(notify::TS_UNACCEPTABLE) };
        let our_props = self.esp_props_for(sa, ci, true);
        let Some(choice) = select_esp(props, &our_props, create, ke.map(|k| k.0)) else {
            self.stats.no_proposal_chosen += 1;
            return Err(notify::NO_PROPOSAL_CHOSEN);
        };
        let mut shared = None;
        let mut ke_out = None;
        match (choice.dh, ke) {
            (Some(g), Some((kg, kd))) if g.wire() == kg => {
                let d = DhPrivate::generate(g);
                shared = Some(d.shared(kd).map_err(|_| notify::INVALID_SYNTAX)?);
                ke_out = Some(Payload::Ke { group: kg, data: d.public() });
            }
            (Some(_), _) => {
                self.stats.invalid_ke_sent += 1;
                return Err(notify::INVALID_KE_PAYLOAD);
            }
            (None, _) => {}
        }
        let spi_in = self.alloc_spi();
        self.child_index.insert(spi_in, sa.our_spi());
        let keys = sa.keys.as_ref().unwrap();
        let (i2r, r2i) = keys.child_keymat(shared.as_deref(), ni, nr, choice.alg.key_len());
        let ccfg = &self.peers[pi].children[ci];
        let (rekey_at, expire_at) = jittered(now, &ccfg.lifetime);
        let replaces_spi = replaces.map(|i| sa.children[i].spi_in);
        let child = ChildSa {
            cfg: ci,
            spi_in,
            spi_out: choice.spi,
            alg: choice.alg,
            esn: choice.esn,
            local_ts: lts.clone(),
            remote_ts: rts.clone(),
            rekey_at,
            expire_at,
            rekeying: false,
            replaced: false,
            collision: None,
            traffic: None,
        };
        let ev = self.child_up_event(sa, &child, i2r, r2i, replaces_spi);
        // Most IKE_SAs carry one CHILD_SA: do not let the first push reserve room for four.
        sa.children.reserve_exact(1);
        sa.children.push(child);
        let mut payloads = vec![Payload::Sa(vec![esp_choice_proposal(&choice, spi_in)])];
        if create {
            payloads.push(Payload::Nonce(nr.to_vec()));
        }
        if let Some(k) = ke_out {
            payloads.push(k);
        }
        payloads.push(Payload::TsI(rts));
        payloads.push(Payload::TsR(lts));
        self.stats.child_sa_established += 1;
        Ok((payloads, ev))
    }

    /// Build ChildSaUp; `i2r`/`r2i` are the initiator-to-responder and reverse keys of the
    /// exchange, `we_initiated` decides which is inbound.
    fn child_up_event(&self, sa: &IkeSa, c: &ChildSa, i2r: Vec<u8>, r2i: Vec<u8>, replaces: Option<u32>) -> Event {
        self.child_up_event_dir(sa, c, i2r, r2i, replaces, false)
    }

    fn child_up_event_dir(&self, sa: &IkeSa, c: &ChildSa, i2r: Vec<u8>, r2i: Vec<u8>, replaces: Option<u32>, we_initiated: bool) -> Event {
        let (inb, outb) = if we_initiated { (r2i, i2r) } else { (i2r, r2i) };
        let peer = self.peer_name(sa);
        let child = self.child_name(sa, c.cfg);
        debug!(target: "ike", peer = %peer, child = %child, spi_in = format_args!("{:08x}", c.spi_in), spi_out = format_args!("{:08x}", c.spi_out), alg = ?c.alg, "CHILD_SA up");
        Event::ChildSaUp(Box::new(ChildSaUp {
            peer,
            child,
            ike_spi_i: sa.spi_i,
            ike_spi_r: sa.spi_r,
            inbound: ChildKeys { spi: c.spi_in, alg: c.alg, key: inb, esn: c.esn },
            outbound: ChildKeys { spi: c.spi_out, alg: c.alg, key: outb, esn: c.esn },
            local_ts: c.local_ts.clone(),
            remote_ts: c.remote_ts.clone(),
            encap: sa.encap(&self.cfg),
            local_addr: sa.local.ip(),
            remote_addr: sa.remote.ip(),
            replaces,
            initiator: we_initiated,
        }))
    }

    fn informational(&mut self, now: Instant, mut sa: IkeSa, msg: Msg) {
        let h = msg.header;
        let mut resp = Vec::new();
        let mut delete_ike = false;
        let peer = self.peer_name(&sa);
        for p in &msg.payloads {
            if let Payload::Delete { protocol, spis } = p {
                match *protocol {
                    proto::IKE => delete_ike = true,
                    proto::ESP => {
                        let mut ours = Vec::new();
                        for s in spis {
                            if let Some(i) = sa.children.iter().position(|c| c.spi_out == *s) {
                                let c = sa.children.remove(i);
                                self.child_index.remove(&c.spi_in);
                                ours.push(c.spi_in);
                                let reason = if c.replaced { DownReason::Rekeyed } else { DownReason::PeerDeleted };
                                self.events.push_back(Event::ChildSaDown { peer: peer.clone(), child: self.child_name(&sa, c.cfg), inbound_spi: c.spi_in, outbound_spi: c.spi_out, reason });
                            }
                        }
                        if !ours.is_empty() {
                            resp.push(Payload::Delete { protocol: proto::ESP, spis: ours });
                        }
                    }
                    _ => {}
                }
            }
        }
        self.respond(now, &mut sa, h.exchange, h.msg_id, &resp);
        if delete_ike {
            // Flush the response now; the SA goes away.
            let reason = if sa.state == State::Rekeyed { DownReason::Rekeyed } else { DownReason::PeerDeleted };
            if sa.state == State::Rekeyed {
                self.drop_sa(sa);
            } else {
                info!(target: "ike", peer = %peer, "IKE_SA deleted by peer");
                self.close_sa(sa, reason);
            }
            return;
        }
        self.put_back(sa);
    }

    fn create_child_request(&mut self, now: Instant, mut sa: IkeSa, msg: Msg) {
        let h = msg.header;
        let Some(props) = msg.sa() else {
            self.respond(now, &mut sa, h.exchange, h.msg_id, &[Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))]);
            self.put_back(sa);
            return;
        };
        let Some(ni) = msg.nonce().cloned() else {
            self.respond(now, &mut sa, h.exchange, h.msg_id, &[Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))]);
            self.put_back(sa);
            return;
        };
        if props.iter().any(|p| p.protocol == proto::IKE) {
            self.ike_rekey_request(now, sa, &msg, ni);
            return;
        }
        let nr = rand_nonce();
        let rekey = msg.notify(notify::REKEY_SA).filter(|n| n.spi.len() == 4).map(|n| u32::from_be_bytes(n.spi[..4].try_into().unwrap()));
        let mut idx = None;
        if let Some(old_out) = rekey {
            match sa.children.iter().position(|c| c.spi_out == old_out && !c.replaced) {
                Some(i) => idx = Some(i),
                None => {
                    let n = Notify { protocol: proto::ESP, spi: old_out.to_be_bytes().to_vec(), ntype: notify::CHILD_SA_NOT_FOUND, data: vec![] };
                    self.respond(now, &mut sa, h.exchange, h.msg_id, &[Payload::Notify(n)]);
                    self.put_back(sa);
                    return;
                }
            }
        }
        let fixed = idx.map(|i| sa.children[i].cfg);
        let res = self.responder_child(&mut sa, props, msg.tsi(), msg.tsr(), msg.ke(), &ni, &nr, idx, fixed, true, now);
        match res {
            Ok((payloads, ev)) => {
                if let Some(i) = idx {
                    let new_in = sa.children.last().unwrap().spi_in;
                    let c = &mut sa.children[i];
                    c.replaced = true;
                    // A rekey of ours for the same SA is in flight: remember the nonces.
                    if c.rekeying {
                        let min = if ni < nr { ni.clone() } else { nr.clone() };
                        let _ = new_in;
                        c.collision = Some(Box::new(Collision { min_nonce: min }));
                    }
                }
                self.respond(now, &mut sa, h.exchange, h.msg_id, &payloads);
                self.events.push_back(ev);
            }
            Err(n) => {
                let mut pl = vec![Payload::Notify(Notify::new(n, vec![]))];
                if n == notify::INVALID_KE_PAYLOAD {
                    // Tell the peer which group we want.
                    let pi = sa.peer.unwrap();
                    let g = self.child_esp_props(pi, fixed.unwrap_or(0)).iter().find_map(|p| p.dh.first().copied());
                    pl = vec![Payload::Notify(Notify::new(n, g.map(|g| g.wire().to_be_bytes().to_vec()).unwrap_or_default()))];
                }
                self.respond(now, &mut sa, h.exchange, h.msg_id, &pl);
            }
        }
        self.put_back(sa);
    }

    fn ike_rekey_request(&mut self, now: Instant, mut sa: IkeSa, msg: &Msg, ni: Vec<u8>) {
        let h = msg.header;
        let pi = sa.peer.unwrap();
        let ke = msg.ke();
        let sel = select_ike(msg.sa().unwrap(), &self.peers[pi].ike_proposals, ke.map(|k| k.0));
        let Some((num, suite, spi)) = sel.filter(|s| s.2.len() == 8) else {
            self.respond(now, &mut sa, h.exchange, h.msg_id, &[Payload::Notify(Notify::new(notify::NO_PROPOSAL_CHOSEN, vec![]))]);
            self.put_back(sa);
            return;
        };
        let Some((kg, kd)) = ke.filter(|k| k.0 == suite.dh.wire()) else {
            self.respond(now, &mut sa, h.exchange, h.msg_id, &[Payload::Notify(Notify::new(notify::INVALID_KE_PAYLOAD, suite.dh.wire().to_be_bytes().to_vec()))]);
            self.put_back(sa);
            return;
        };
        let _ = kg;
        let dh = DhPrivate::generate(suite.dh);
        let Ok(shared) = dh.shared(kd) else {
            self.respond(now, &mut sa, h.exchange, h.msg_id, &[Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))]);
            self.put_back(sa);
            return;
        };
        let new_spi_i = u64::from_be_bytes(spi[..8].try_into().unwrap());
        let new_spi_r = self.alloc_ike_spi();
        let nr = rand_nonce();
        let keys = sa.keys.as_ref().unwrap().rekeyed(suite, &shared, &ni, &nr, new_spi_i, new_spi_r);
        if sa.pending.as_ref().is_some_and(|p| matches!(p.kind, ReqKind::RekeyIke { .. })) {
            // Our own rekey of this IKE_SA is in flight (RFC 7296 2.8.2): the CHILD_SAs move
            // to the peer's new IKE_SA for now; our response decides which one survives.
            let min_nonce = if ni < nr { ni.clone() } else { nr.clone() };
            self.ike_collisions.insert(sa.our_spi(), IkeCollision { min_nonce, peer_sa: new_spi_r });
        }
        let resp = vec![Payload::Sa(vec![suite_proposal(num, &suite, Some(new_spi_r))]), Payload::Nonce(nr), Payload::Ke { group: suite.dh.wire(), data: dh.public() }];
        self.respond(now, &mut sa, h.exchange, h.msg_id, &resp);
        let new = self.rekeyed_sa(now, &mut sa, false, new_spi_i, new_spi_r, keys);
        self.finish_ike_rekey(sa, new);
    }

    /// Build the IKE_SA replacing `old` and move the CHILD_SAs onto it.
    fn rekeyed_sa(&mut self, now: Instant, old: &mut IkeSa, initiator: bool, spi_i: u64, spi_r: u64, keys: IkeKeys) -> IkeSa {
        let pi = old.peer.unwrap();
        let (rk, ex) = jittered(now, &self.peers[pi].ike_lifetime);
        let mut new = IkeSa::new(now, old.peer, initiator, spi_i, spi_r, old.local, old.remote, State::Established);
        new.keys = Some(keys);
        new.children = std::mem::take(&mut old.children);
        new.nat = old.nat;
        new.frag_ok = old.frag_ok;
        new.rekey_at = rk;
        new.expire_at = Some(ex);
        new.remote_id = old.remote_id.clone();
        old.state = State::Rekeyed;
        old.rekey_at = None;
        for c in &new.children {
            self.child_index.insert(c.spi_in, new.our_spi());
        }
        new
    }

    /// Both sides rekeyed the IKE_SA at once (RFC 7296 2.8.2): `new` is the IKE_SA our
    /// exchange (nonces `ni`, `nr`) created, `col` describes the peer's. The one whose
    /// exchange holds the lowest of the four nonces is redundant and its creator deletes it;
    /// the survivor takes the CHILD_SAs and its creator deletes the old IKE_SA.
    fn resolve_ike_rekey_collision(&mut self, now: Instant, mut old: IkeSa, mut new: IkeSa, col: IkeCollision, ni: &[u8], nr: &[u8]) {
        let peer = self.peer_name(&old);
        let mine_min = if ni < nr { ni } else { nr };
        if mine_min < col.min_nonce.as_slice() {
            // Ours is redundant. Its CHILD_SAs already sit on the peer's new IKE_SA, and the
            // peer deletes the old one; nothing was announced for ours, so no event.
            info!(target: "ike", peer = %peer, "IKE_SA rekey collision lost: deleting our redundant IKE_SA");
            new.state = State::Deleting;
            new.rekey_at = None;
            self.request(now, &mut new, exchange::INFORMATIONAL, vec![Payload::Delete { protocol: proto::IKE, spis: vec![] }], ReqKind::DeleteIke);
            old.queue.clear();
            self.put_back(old);
            self.put_back(new);
            return;
        }
        info!(target: "ike", peer = %peer, "IKE_SA rekey collision won");
        // Take the CHILD_SAs back from the peer's (redundant) IKE_SA; the peer deletes that
        // one, which we keep only to answer its Delete.
        if let Some(mut theirs) = self.sas.remove(&col.peer_sa).map(|b| *b) {
            new.children.append(&mut theirs.children);
            for c in &new.children {
                self.child_index.insert(c.spi_in, new.our_spi());
            }
            std::mem::swap(&mut new.queue, &mut theirs.queue);
            new.queue.append(&mut theirs.queue);
            theirs.state = State::Rekeyed;
            theirs.rekey_at = None;
            theirs.expire_at = Some(now + self.cfg.response_cache_time);
            self.events.push_back(Event::IkeSaRekeyed { peer: peer.clone(), old: (theirs.spi_i, theirs.spi_r), new: (new.spi_i, new.spi_r) });
            self.put_back(theirs);
        }
        old.queue.clear();
        self.request(now, &mut old, exchange::INFORMATIONAL, vec![Payload::Delete { protocol: proto::IKE, spis: vec![] }], ReqKind::DeleteIke);
        self.flush_queue(now, &mut new);
        self.put_back(old);
        self.put_back(new);
    }

    fn finish_ike_rekey(&mut self, old: IkeSa, new: IkeSa) {
        let peer = self.peer_name(&old);
        info!(target: "ike", peer = %peer, "IKE_SA rekeyed");
        self.events.push_back(Event::IkeSaRekeyed { peer, old: (old.spi_i, old.spi_r), new: (new.spi_i, new.spi_r) });
        self.put_back(old);
        self.put_back(new);
    }

    fn handle_response(&mut self, now: Instant, mut sa: IkeSa, _local: SocketAddr, _remote: SocketAddr, msg: Msg, p: Pending) {
        match p.kind {
            ReqKind::Auth => {
                self.initiator_auth_response(now, sa, msg);
                return;
            }
            ReqKind::Init => {}
            ReqKind::Liveness => {
                // IKE answers: a CHILD_SA that tracks traffic but saw none is rekeyed.
                if let Some(iv) = sa.peer.and_then(|pi| self.peers[pi].dpd_interval) {
                    let stale: Vec<u32> = sa.children.iter().filter(|c| !c.replaced && !c.rekeying && c.traffic.is_some_and(|(_, t)| now.duration_since(t) >= iv)).map(|c| c.spi_in).collect();
                    for s in stale {
                        debug!(target: "ike", spi = format_args!("{s:08x}"), "no ESP on CHILD_SA while IKE answers: rekeying");
                        if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == s) {
                            c.traffic = Some((c.traffic.unwrap().0, now));
                        }
                        self.start_child_rekey(now, &mut sa, s);
                    }
                }
            }
            ReqKind::DeleteIke => {
                self.drop_sa(sa);
                return;
            }
            ReqKind::DeleteChild { spis: asked } => {
                let peer = self.peer_name(&sa);
                for pl in &msg.payloads {
                    if let Payload::Delete { protocol: proto::ESP, spis } = pl {
                        for s in spis {
                            if let Some(i) = sa.children.iter().position(|c| c.spi_out == *s) {
                                let c = sa.children.remove(i);
                                self.child_index.remove(&c.spi_in);
                                let reason = if c.replaced { DownReason::Rekeyed } else { DownReason::Local };
                                self.events.push_back(Event::ChildSaDown { peer: peer.clone(), child: self.child_name(&sa, c.cfg), inbound_spi: c.spi_in, outbound_spi: c.spi_out, reason });
                            }
                        }
                    }
                }
                // Children we asked to delete but the peer did not list are gone too.
                for s in asked {
                    if let Some(i) = sa.children.iter().position(|c| c.spi_in == s) {
                        let c = sa.children.remove(i);
                        self.child_index.remove(&c.spi_in);
                        let reason = if c.replaced { DownReason::Rekeyed } else { DownReason::Local };
                        self.events.push_back(Event::ChildSaDown { peer: peer.clone(), child: self.child_name(&sa, c.cfg), inbound_spi: c.spi_in, outbound_spi: c.spi_out, reason });
                    }
                }
            }
            ReqKind::CreateChild { cfg, spi, nonce, dh, rekey_of } => {
                self.create_child_response(now, &mut sa, msg, cfg, spi, nonce, dh, rekey_of);
            }
            ReqKind::RekeyIke { new_spi, nonce, dh } => {
                if let Some(new) = self.ike_rekey_response(now, &mut sa, &msg, new_spi, &nonce, dh) {
                    let mut new = new;
                    let mut old = sa;
                    if let Some(col) = self.ike_collisions.remove(&old.our_spi()) {
                        self.resolve_ike_rekey_collision(now, old, new, col, &nonce, msg.nonce().unwrap());
                        return;
                    }
                    old.queue.clear();
                    self.request(now, &mut old, exchange::INFORMATIONAL, vec![Payload::Delete { protocol: proto::IKE, spis: vec![] }], ReqKind::DeleteIke);
                    self.flush_queue(now, &mut new);
                    self.finish_ike_rekey(old, new);
                    return;
                }
            }
        }
        self.flush_queue(now, &mut sa);
        self.put_back(sa);
    }

    fn initiator_auth_response(&mut self, now: Instant, mut sa: IkeSa, msg: Msg) {
        let pi = sa.peer.unwrap();
        let p = &self.peers[pi];
        if msg.notify(notify::AUTHENTICATION_FAILED).is_some() {
            self.stats.auth_failures += 1;
            warn!(target: "ike", peer = %p.name, peer_id = %p.remote_id, "peer rejected our authentication");
            self.events.push_back(Event::AuthFailed { peer_id: Some(p.remote_id.clone()), remote: sa.remote });
            self.close_sa(sa, DownReason::Failed);
            return;
        }
        let idr = msg.payloads.iter().find_map(|p| if let Payload::IdR { id_type, data } = p { Some((*id_type, data.clone())) } else { None });
        let auth = msg.payloads.iter().find_map(|p| if let Payload::Auth { method, data } = p { Some((*method, data.clone())) } else { None });
        let suite = sa.keys.as_ref().unwrap().suite;
        let ok = match (&idr, &auth) {
            (Some((it, idd)), Some((am, ad))) => {
                let mut body = vec![*it, 0, 0, 0];
                body.extend_from_slice(idd);
                let Auth::Psk(psk) = &p.auth;
                let hs = sa.hs.as_ref().unwrap();
                let want = psk_auth(suite.prf, psk, &hs.init_resp, &hs.ni, sa.keys.as_ref().unwrap().p(false), &body);
                Identity::from_wire(*it, idd).as_ref() == Some(&p.remote_id) && *am == wire::AUTH_SHARED_KEY_MIC && ct_eq(&want, ad)
            }
            _ => false,
        };
        if !ok {
            self.stats.auth_failures += 1;
            let claimed = idr.and_then(|(t, d)| Identity::from_wire(t, &d));
            warn!(target: "ike", peer = %p.name, peer_id = %claimed.as_ref().map(|c| c.to_string()).unwrap_or_default(), "IKE_AUTH response failed authentication");
            self.events.push_back(Event::AuthFailed { peer_id: claimed, remote: sa.remote });
            // Tell the peer (RFC 7296 2.21.2) and close.
            sa.state = State::Deleting;
            self.request(now, &mut sa, exchange::INFORMATIONAL, vec![Payload::Notify(Notify::new(notify::AUTHENTICATION_FAILED, vec![]))], ReqKind::DeleteIke);
            let hs = sa.hs.take();
            drop(hs);
            let child_spi = std::mem::take(&mut sa.children);
            drop(child_spi);
            self.put_back(sa);
            return;
        }
        sa.state = State::Established;
        sa.remote_id = Some(p.remote_id.clone());
        let (rk, ex) = jittered(now, &p.ike_lifetime);
        sa.rekey_at = rk;
        sa.expire_at = Some(ex);
        sa.keys.as_mut().unwrap().drop_auth_keys();
        self.stats.ike_sa_established += 1;
        info!(target: "ike", peer = %p.name, remote = %sa.remote, "IKE_SA established (initiator)");
        self.events.push_back(Event::IkeSaUp { peer: p.name.clone(), ike_spi_i: sa.spi_i, ike_spi_r: sa.spi_r, local: sa.local, remote: sa.remote, remote_id: p.remote_id.clone() });
        let hs = sa.hs.take().unwrap();
        let nchildren = p.children.len();
        if nchildren > 0 {
            let res = self.initiator_child_result(now, &mut sa, &msg, 0, hs.child_spi, &hs.ni, &hs.nr, None, None);
            if let Err(n) = res {
                self.child_index.remove(&hs.child_spi);
                let peer = self.peer_name(&sa);
                warn!(target: "ike", peer = %peer, notify = n, "first CHILD_SA not created");
                self.events.push_back(Event::ChildSaFailed { peer, child: self.child_name(&sa, 0), notify: n });
            }
        }
        for ci in 1..nchildren {
            self.start_create_child(now, &mut sa, ci, None);
        }
        self.flush_queue(now, &mut sa);
        self.put_back(sa);
    }

    /// Complete a CHILD_SA we proposed; returns the index in `sa.children`.
    #[allow(clippy::too_many_arguments)]
    fn initiator_child_result(&mut self, now: Instant, sa: &mut IkeSa, msg: &Msg, cfg: usize, spi_in: u32, ni: &[u8], nr: &[u8], shared: Option<&[u8]>, replaces: Option<u32>) -> Result<usize, u16> {
        if let Some(e) = msg.error_notify() {
            return Err(e);
        }
        let pi = sa.peer.unwrap();
        let ccfg = &self.peers[pi].children[cfg];
        let (Some(props), Some(tsi), Some(tsr)) = (msg.sa(), msg.tsi(), msg.tsr()) else { return Err(notify::INVALID_SYNTAX) };
        let (prop_l, prop_r) = match replaces.and_then(|s| sa.children.iter().find(|c| c.spi_in == s)) {
            Some(c) => (c.local_ts.clone(), c.remote_ts.clone()),
            None => (ccfg.local_ts.clone(), ccfg.remote_ts.clone()),
        };
        if props.len() != 1 || !within(tsi, &prop_l) || !within(tsr, &prop_r) {
            return Err(notify::TS_UNACCEPTABLE);
        }
        let choice = select_esp(props, &self.esp_props_for(sa, cfg, false), shared.is_some(), None).ok_or(notify::NO_PROPOSAL_CHOSEN)?;
        let (i2r, r2i) = sa.keys.as_ref().unwrap().child_keymat(shared, ni, nr, choice.alg.key_len());
        let (rekey_at, expire_at) = jittered(now, &ccfg.lifetime);
        let child = ChildSa {
            cfg,
            spi_in,
            spi_out: choice.spi,
            alg: choice.alg,
            esn: choice.esn,
            local_ts: tsi.clone(),
            remote_ts: tsr.clone(),
            rekey_at,
            expire_at,
            rekeying: false,
            replaced: false,
            collision: None,
            traffic: None,
        };
        let ev = self.child_up_event_dir(sa, &child, i2r, r2i, replaces, true);
        self.events.push_back(ev);
        self.stats.child_sa_established += 1;
        // Most IKE_SAs carry one CHILD_SA: do not let the first push reserve room for four.
        sa.children.reserve_exact(1);
        sa.children.push(child);
        Ok(sa.children.len() - 1)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_child_response(&mut self, now: Instant, sa: &mut IkeSa, msg: Msg, cfg: usize, spi: u32, nonce: Vec<u8>, dh: Option<DhPrivate>, rekey_of: Option<u32>) {
        let nr = msg.nonce().cloned();
        let shared = match (&dh, msg.ke()) {
            (Some(d), Some((g, data))) if g == d.group().wire() => d.shared(data).ok(),
            _ => None,
        };
        let res = match (&nr, dh.is_some(), &shared) {
            (None, _, _) => msg.error_notify().map_or(Err(notify::INVALID_SYNTAX), Err),
            (Some(_), true, None) => msg.error_notify().map_or(Err(notify::INVALID_SYNTAX), Err),
            (Some(nr), _, _) => self.initiator_child_result(now, sa, &msg, cfg, spi, &nonce, nr, shared.as_deref(), rekey_of),
        };
        let peer = self.peer_name(sa);
        match res {
            Ok(_) => {
                let nr = nr.unwrap();
                let Some(old) = rekey_of else { return };
                let Some(oi) = sa.children.iter().position(|c| c.spi_in == old) else { return };
                let col = sa.children[oi].collision.take();
                sa.children[oi].rekeying = false;
                sa.children[oi].replaced = true;
                if let Some(col) = col {
                    // RFC 7296 2.8.1: the SA created with the lowest of the four nonces is
                    // redundant; its creator deletes it.
                    let mine_min = if nonce < nr { &nonce } else { &nr };
                    if mine_min < &col.min_nonce {
                        info!(target: "ike", peer = %peer, "CHILD_SA rekey collision lost: deleting our redundant SA");
                        let i = sa.children.iter().position(|c| c.spi_in == spi).unwrap();
                        sa.children[i].replaced = true;
                        self.request(now, sa, exchange::INFORMATIONAL, vec![Payload::Delete { protocol: proto::ESP, spis: vec![spi] }], ReqKind::DeleteChild { spis: vec![spi] });
                        return;
                    }
                    info!(target: "ike", peer = %peer, "CHILD_SA rekey collision won");
                }
                self.request(now, sa, exchange::INFORMATIONAL, vec![Payload::Delete { protocol: proto::ESP, spis: vec![old] }], ReqKind::DeleteChild { spis: vec![old] });
            }
            Err(n) => {
                self.child_index.remove(&spi);
                if let Some(old) = rekey_of {
                    if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                        c.rekeying = false;
                        // Peer rekeyed it concurrently and won the race, or refused.
                        if n == notify::TEMPORARY_FAILURE {
                            c.rekey_at = Some(now + Duration::from_secs(2));
                        }
                    }
                }
                warn!(target: "ike", peer = %peer, notify = n, "CREATE_CHILD_SA failed");
                self.events.push_back(Event::ChildSaFailed { peer, child: self.child_name(sa, cfg), notify: n });
            }
        }
    }

    fn ike_rekey_response(&mut self, now: Instant, sa: &mut IkeSa, msg: &Msg, new_spi: u64, ni: &[u8], dh: DhPrivate) -> Option<IkeSa> {
        let pi = sa.peer.unwrap();
        let peer = self.peer_name(sa);
        let fail = |eng: &mut Engine, sa: &mut IkeSa, why: &str| {
            warn!(target: "ike", peer = %peer, why, "IKE_SA rekey failed");
            sa.rekey_at = Some(now + Duration::from_secs(10));
            let _ = eng;
            None
        };
        let (Some(props), Some(nr), Some((kg, kd))) = (msg.sa(), msg.nonce(), msg.ke()) else { return fail(self, sa, "missing payloads") };
        let Some((_, suite, spi)) = select_ike(props, &self.peers[pi].ike_proposals, Some(kg)) else { return fail(self, sa, "no proposal") };
        if spi.len() != 8 || suite.dh != dh.group() || kg != suite.dh.wire() {
            return fail(self, sa, "bad proposal");
        }
        let Ok(shared) = dh.shared(kd) else { return fail(self, sa, "bad KE") };
        let new_spi_r = u64::from_be_bytes(spi[..8].try_into().unwrap());
        let keys = sa.keys.as_ref().unwrap().rekeyed(suite, &shared, ni, nr, new_spi, new_spi_r);
        Some(self.rekeyed_sa(now, sa, true, new_spi, new_spi_r, keys))
    }

    // ---------------------------------------------------------------- timers

    /// Run everything due at `now`: retransmissions, liveness checks, rekeys, expiries.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, spi))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(sa) = self.sas.get(&spi) else { continue };
            if sa.scheduled != Some(t) {
                continue;
            }
            let mut sa = *self.sas.remove(&spi).unwrap();
            sa.scheduled = None;
            if self.on_timer(now, &mut sa) {
                self.put_back(sa);
            }
        }
    }

    /// Returns false when the SA was consumed.
    fn on_timer(&mut self, now: Instant, sa: &mut IkeSa) -> bool {
        if let Some(c) = &sa.cached {
            if c.until <= now {
                sa.cached = None;
            }
        }
        if matches!(sa.state, State::InitDone | State::InitSent | State::AuthSent) && sa.created + self.cfg.half_open_timeout <= now {
            self.stats.half_open_expired += 1;
            let taken = std::mem::replace(sa, dummy_sa(now));
            self.close_sa(taken, DownReason::Failed);
            return false;
        }
        // A liveness check gets one liveness interval to be answered, so that a dead peer is
        // found within two intervals of its last word, not after the whole back-off.
        let liveness_iv = sa.peer.and_then(|pi| self.peers[pi].dpd_interval);
        if let Some(p) = sa.pending.as_mut() {
            let deadline = liveness_iv.filter(|_| matches!(p.kind, ReqKind::Liveness)).map(|iv| p.sent + iv);
            if p.next <= now {
                if p.tries >= self.cfg.retransmit_tries || deadline.is_some_and(|d| d <= now) {
                    let taken = std::mem::replace(sa, dummy_sa(now));
                    self.peer_dead(now, taken);
                    return false;
                }
                p.tries += 1;
                p.next = now + self.cfg.retransmit_base * 2u32.pow(p.tries.min(16));
                if let Some(d) = deadline {
                    p.next = p.next.min(d);
                }
                self.stats.retransmitted_requests += 1;
                let d = p.datagrams.clone();
                for m in d {
                    self.send_raw(sa.local, sa.remote, &m);
                }
            }
        }
        if sa.state != State::Established {
            let idle = sa.pending.is_none() && sa.cached.is_none();
            if matches!(sa.state, State::Deleting | State::Rekeyed) && idle {
                let taken = std::mem::replace(sa, dummy_sa(now));
                self.drop_sa(taken);
                return false;
            }
            return true;
        }
        if sa.expire_at.is_some_and(|e| e <= now) {
            info!(target: "ike", peer = %self.peer_name(sa), "IKE_SA hard lifetime reached");
            sa.expire_at = None;
            self.delete_ike(now, sa, DownReason::Expired);
            return true;
        }
        if sa.rekey_at.is_some_and(|r| r <= now) {
            sa.rekey_at = None;
            self.start_ike_rekey(now, sa);
        }
        // CHILD_SA lifetimes.
        let mut to_rekey = Vec::new();
        let mut to_delete = Vec::new();
        for c in sa.children.iter_mut() {
            if c.expire_at <= now && !c.replaced {
                to_delete.push(c.spi_in);
            } else if c.rekey_at.is_some_and(|r| r <= now) {
                c.rekey_at = None;
                to_rekey.push(c.spi_in);
            }
        }
        for s in to_rekey {
            self.start_child_rekey(now, sa, s);
        }
        if !to_delete.is_empty() {
            let peer = self.peer_name(sa);
            for s in &to_delete {
                if let Some(i) = sa.children.iter().position(|c| c.spi_in == *s) {
                    let c = sa.children.remove(i);
                    self.child_index.remove(&c.spi_in);
                    self.events.push_back(Event::ChildSaDown { peer: peer.clone(), child: self.child_name(sa, c.cfg), inbound_spi: c.spi_in, outbound_spi: c.spi_out, reason: DownReason::Expired });
                    self.request(now, sa, exchange::INFORMATIONAL, vec![Payload::Delete { protocol: proto::ESP, spis: vec![c.spi_in] }], ReqKind::DeleteChild { spis: vec![] });
                }
            }
        }
        // Liveness.
        if let Some(iv) = sa.peer.and_then(|p| self.peers[p].dpd_interval) {
            if sa.pending.is_none() && sa.queue.is_empty() && sa.last_rx + iv <= now {
                self.request(now, sa, exchange::INFORMATIONAL, vec![], ReqKind::Liveness);
            }
        }
        true
    }

    fn peer_dead(&mut self, now: Instant, sa: IkeSa) {
        if matches!(sa.state, State::Deleting | State::Rekeyed) {
            self.drop_sa(sa);
            return;
        }
        let pi = sa.peer;
        let established = sa.state == State::Established;
        self.stats.dead_peers += 1;
        warn!(target: "ike", peer = %self.peer_name(&sa), state = ?sa.state, "peer not responding");
        self.close_sa(sa, if established { DownReason::DeadPeer } else { DownReason::Failed });
        if let Some(pi) = pi {
            let p = &self.peers[pi];
            if established && p.dpd_action == DpdAction::Restart && p.remote_addr.is_some() {
                let name = p.name.clone();
                self.initiate(now, &name);
            }
        }
    }
}

/// Placeholder left behind by `mem::replace` when an SA is consumed in a timer.
impl IkeSa {
    /// A new IKE_SA in `state` between `local` and `remote`: nothing sent, nothing pending.
    #[allow(clippy::too_many_arguments)]
    fn new(now: Instant, peer: Option<usize>, initiator: bool, spi_i: u64, spi_r: u64, local: SocketAddr, remote: SocketAddr, state: State) -> IkeSa {
        IkeSa {
            peer,
            initiator,
            spi_i,
            spi_r,
            local,
            remote,
            state,
            keys: None,
            hs: None,
            next_req_id: 0,
            expect_req_id: 0,
            pending: None,
            queue: VecDeque::new(),
            cached: None,
            children: Vec::new(),
            nat: false,
            frag_ok: false,
            frags: None,
            created: now,
            last_rx: now,
            rekey_at: None,
            expire_at: None,
            iv_counter: 0,
            scheduled: None,
            remote_id: None,
            half_open_key: None,
        }
    }
}

fn dummy_sa(now: Instant) -> IkeSa {
    let a = SocketAddr::from(([0, 0, 0, 0], 0));
    IkeSa::new(now, None, false, 0, 0, a, a, State::Deleting)
}

/// Approximate heap + inline bytes held by one IKE_SA (for the memory budget test).
#[doc(hidden)]
pub fn ike_sa_inline_size() -> usize {
    std::mem::size_of::<IkeSa>() + std::mem::size_of::<ChildSa>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Budget: an established IKE_SA with one CHILD_SA stays under 2 KiB (inline + heap,
    /// excluding the hash-map slots), once the handshake material and cached response are gone.
    #[test]
    fn memory_budget() {
        let inline = std::mem::size_of::<IkeSa>() + std::mem::size_of::<ChildSa>();
        let keys = 3 * 32 + 2 * 20; // SK_d, SK_ai/ar (none), SK_ei/er, SK_p dropped: GCM-128 + SHA-256
        let ts = 2 * std::mem::size_of::<TrafficSelector>();
        let id = 32;
        let total = inline + keys + ts + id;
        eprintln!("IkeSa {} ChildSa {} total ~{total}", std::mem::size_of::<IkeSa>(), std::mem::size_of::<ChildSa>());
        assert!(total < 2048, "{total}");
    }
}
