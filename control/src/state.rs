//! What the control thread wants the dataplane to hold: the config's policies and manual SAs,
//! the CHILD_SAs that IKE negotiated, routes and neighbours. It builds each new snapshot.

use crate::build::{self, FieldError};
use crate::config::{Config, DirectionConfig};
use crate::ike::{ChildSaUp, EspAlg, TrafficSelector};
use rampart_dataplane::counters::SaDrops;
use rampart_dataplane::crypto::AeadAlg;
use rampart_dataplane::esp::{Lifetime, Mode, Sa, SaParams, UdpEncap};
use rampart_dataplane::l3::{Locals, Mac, Neighbors, Routes};
use rampart_dataplane::spd::{Action, Direction, Policy, Prefix, Selector, Spd};
use rampart_dataplane::tables::{SaEntry, SpiMap, Tables};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// A CHILD_SA that IKE negotiated, as installed.
pub struct Child {
    pub peer: String,
    pub child: String,
    pub out: Arc<SaEntry>,
    pub inn: Arc<SaEntry>,
    /// Outbound selectors (local to remote), negotiated.
    pub out_sel: Vec<Selector>,
    pub priority: u32,
    /// Install order: for one child, the newest SA carries the outbound traffic.
    seq: u64,
    /// As the responder of a rekey: the inbound SPI of the SA this one replaces; while that one
    /// is installed, it carries the outbound traffic, not this one.
    after: Option<u32>,
}

pub struct State {
    workers: usize,
    spd_gen: u64,
    default_action: Action,
    /// The config's policies with the manual SA each outbound PROTECT one uses.
    base: Vec<(Policy, Option<Arc<SaEntry>>)>,
    manual_in: Vec<Arc<SaEntry>>,
    /// Every manual SA by name, with the config it was built from (its JSON), so that a
    /// reload keeps the SAs whose config did not change, sequence numbers and windows and all.
    manual: HashMap<String, (String, Arc<SaEntry>)>,
    pub children: BTreeMap<u32, Child>,
    seq: u64,
    routes: Arc<Routes>,
    locals: Arc<Locals>,
    macs: Arc<Vec<Mac>>,
    pub neighbors: Arc<Neighbors>,
    /// The SPD and its outbound SAs, rebuilt only when policies or SAs change.
    spd: Option<(Arc<Spd>, OutSas)>,
}

/// For each SPD policy index, the outbound SA of a PROTECT policy.
type OutSas = Vec<Option<Arc<SaEntry>>>;

fn entry(name: String, params: SaParams, selectors: Vec<Selector>, workers: usize) -> Result<Arc<SaEntry>, String> {
    let sa = Sa::new(params).map_err(|e| e.to_string())?;
    Ok(Arc::new(SaEntry { name, sa, selectors: selectors.into(), drops: SaDrops::new(workers) }))
}

/// The JSON each manual SA is compared by on reload (the key included), by name.
fn sa_jsons(raw: &serde_json::Value) -> HashMap<&str, String> {
    raw.get("sas")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s.get("name")?.as_str()?, s.to_string())))
        .collect()
}

impl State {
    pub fn new(cfg: &Config, macs: Vec<Mac>, workers: usize) -> Result<State, FieldError> {
        Self::build(cfg, &serde_json::Value::Null, macs, workers, &HashMap::new())
    }

    /// Builds from a validated config and its raw JSON (`raw`, for comparing SAs on reload),
    /// reusing the entries of `old` whose JSON and selectors are unchanged.
    fn build(
        cfg: &Config,
        raw: &serde_json::Value,
        macs: Vec<Mac>,
        workers: usize,
        old: &HashMap<String, (String, Arc<SaEntry>)>,
    ) -> Result<State, FieldError> {
        let (pols, origin) = build::policies(cfg);
        let mut sas: HashMap<&str, Arc<SaEntry>> = HashMap::new();
        let mut manual_in = Vec::new();
        let mut manual = HashMap::new();
        // An inbound SA carries what its inbound protect policies select, and nothing else.
        let mut selectors_of: HashMap<&str, Vec<Selector>> = HashMap::new();
        for (p, &o) in pols.iter().zip(&origin) {
            if let (Direction::Inbound, Some(n)) = (p.dir, cfg.policies[o].sa.as_deref()) {
                selectors_of.entry(n).or_default().push(p.sel);
            }
        }
        let jsons = sa_jsons(raw);
        for (i, s) in cfg.sas.iter().enumerate() {
            let field = format!("sas[{i}]");
            let params = build::sa_params(s).map_err(|m| (field.clone(), m))?;
            let selectors = selectors_of.remove(s.name.as_str()).unwrap_or_default();
            let json = jsons.get(s.name.as_str()).cloned().unwrap_or_default();
            let e = match old.get(&s.name) {
                Some((j, e)) if !json.is_empty() && *j == json && e.selectors.as_slice() == selectors => e.clone(),
                _ => entry(s.name.clone(), params, selectors, workers).map_err(|m| (field, m))?,
            };
            if s.direction == DirectionConfig::Inbound {
                manual_in.push(e.clone());
            }
            manual.insert(s.name.clone(), (json, e.clone()));
            sas.insert(&s.name, e);
        }
        let mut base: Vec<(Policy, Option<Arc<SaEntry>>)> = pols
            .into_iter()
            .zip(origin)
            .map(|(p, o)| {
                let sa = match (p.dir, &cfg.policies[o].sa) {
                    (Direction::Outbound, Some(n)) => sas.get(n.as_str()).cloned(),
                    _ => None,
                };
                (p, sa)
            })
            .collect();
        // Each IKE child's configured selectors are PROTECT from the start: until an SA is up,
        // its traffic is dropped, never sent in clear. Negotiated SAs go in just above them.
        for (i, p) in cfg.peers.iter().enumerate() {
            for c in &p.children {
                for l in &c.local_ts {
                    for r in &c.remote_ts {
                        let (la, ll) = crate::config::parse_prefix(l).map_err(|m| (format!("peers[{i}]"), m))?;
                        let (ra, rl) = crate::config::parse_prefix(r).map_err(|m| (format!("peers[{i}]"), m))?;
                        if la.is_ipv4() != ra.is_ipv4() {
                            continue;
                        }
                        let (lp, rp) = (Prefix::new(la, ll), Prefix::new(ra, rl));
                        for (dir, src, dst) in [(Direction::Outbound, lp, rp), (Direction::Inbound, rp, lp)] {
                            let sel = Selector::new(src, dst);
                            base.push((Policy { id: 0, priority: c.priority + 1, dir, sel, action: Action::Protect }, None));
                        }
                    }
                }
            }
        }
        let (locals, routes) = build::l3(cfg);
        Ok(State {
            workers,
            spd_gen: 0,
            default_action: build::action(cfg.default_action),
            base,
            manual_in,
            manual,
            children: BTreeMap::new(),
            seq: 0,
            routes: Arc::new(routes),
            locals: Arc::new(locals),
            macs: Arc::new(macs),
            neighbors: Arc::new(Neighbors::default()),
            spd: None,
        })
    }

    /// Takes a new config (validated; `raw` is its JSON): policies, manual SAs, routes and the
    /// default action are rebuilt; manual SAs whose JSON did not change keep their entries
    /// (sequence numbers, replay windows, counters); CHILD_SAs and neighbours stay. Returns the
    /// manual SAs that are new entries. Nothing changes on an error.
    pub fn reload(&mut self, cfg: &Config, raw: &serde_json::Value) -> Result<Vec<Arc<SaEntry>>, FieldError> {
        let n = Self::build(cfg, raw, (*self.macs).clone(), self.workers, &self.manual)?;
        let kept: std::collections::HashSet<*const SaEntry> = self.manual.values().map(|(_, o)| Arc::as_ptr(o)).collect();
        let fresh = n.manual.values().filter(|(_, e)| !kept.contains(&Arc::as_ptr(e))).map(|(_, e)| e.clone()).collect();
        self.default_action = n.default_action;
        self.base = n.base;
        self.manual_in = n.manual_in;
        self.manual = n.manual;
        self.routes = n.routes;
        self.locals = n.locals;
        self.spd = None;
        Ok(fresh)
    }

    /// Records the config JSON of the manual SAs built at start, for a later reload.
    pub fn set_raw(&mut self, raw: &serde_json::Value) {
        let jsons = sa_jsons(raw);
        for (name, (json, _)) in self.manual.iter_mut() {
            *json = jsons.get(name.as_str()).cloned().unwrap_or_default();
        }
    }

    /// A snapshot of everything, to publish.
    pub fn tables(&mut self) -> Tables {
        if self.spd.is_none() {
            self.spd_gen += 1;
            let mut all: Vec<(Policy, Option<Arc<SaEntry>>)> = Vec::new();
            let mut kids: Vec<&Child> = self.children.values().collect();
            kids.sort_by_key(|c| std::cmp::Reverse(c.seq));
            let mut seen = std::collections::HashSet::new();
            for c in kids {
                // Only the newest SA of a child carries outbound traffic (make-before-break:
                // the older one stays inbound-only until IKE deletes it), and a rekey's
                // responder sends on the new SA only once the initiator has deleted the old.
                if c.after.is_some_and(|old| self.children.contains_key(&old)) || !seen.insert((c.peer.as_str(), c.child.as_str())) {
                    continue;
                }
                for sel in &c.out_sel {
                    let p = Policy { id: 0, priority: c.priority, dir: Direction::Outbound, sel: *sel, action: Action::Protect };
                    all.push((p, Some(c.out.clone())));
                }
            }
            all.extend(self.base.iter().cloned());
            for (i, (p, _)) in all.iter_mut().enumerate() {
                p.id = i as u32;
            }
            let sa_of: Vec<Option<Arc<SaEntry>>> = all.iter().map(|(_, sa)| sa.clone()).collect();
            let spd = Spd::new(all.into_iter().map(|(p, _)| p).collect()).expect("policies are validated");
            let out_sa = spd.policies().iter().map(|p| sa_of[p.id as usize].clone()).collect();
            self.spd = Some((Arc::new(spd), out_sa));
        }
        let (spd, out_sa) = self.spd.clone().expect("built above");
        let mut sad_in = SpiMap::default();
        for e in self.manual_in.iter().chain(self.children.values().map(|c| &c.inn)) {
            sad_in.insert(e.sa.spi(), e.clone());
        }
        Tables {
            spd_gen: self.spd_gen,
            spd,
            default_action: self.default_action,
            out_sa,
            sad_in,
            routes: self.routes.clone(),
            neighbors: self.neighbors.clone(),
            locals: self.locals.clone(),
            macs: self.macs.clone(),
        }
    }

    /// Installs a CHILD_SA that IKE brought up; its policies take effect in the next snapshot.
    pub fn install_child(&mut self, up: &ChildSaUp, priority: u32, replay_window: u32) -> Result<(), String> {
        let params = |k: &crate::ike::ChildKeys, tunnel: (IpAddr, IpAddr), encap: Option<UdpEncap>| SaParams {
            spi: k.spi,
            alg: match k.alg {
                EspAlg::AesGcm128 => AeadAlg::AesGcm128,
                EspAlg::AesGcm256 => AeadAlg::AesGcm256,
                EspAlg::ChaCha20Poly1305 => AeadAlg::ChaCha20Poly1305,
            },
            key: k.key.clone(),
            mode: Mode::Tunnel,
            tunnel: Some(tunnel),
            encap,
            esn: k.esn,
            replay_window,
            lifetime: Lifetime::default(),
        };
        let out_encap = up.encap.map(|(l, r)| UdpEncap { sport: l, dport: r });
        let in_encap = up.encap.map(|(l, r)| UdpEncap { sport: r, dport: l });
        let in_sel = pairs(&up.remote_ts, &up.local_ts);
        let out_sel = pairs(&up.local_ts, &up.remote_ts);
        if in_sel.is_empty() || out_sel.is_empty() {
            return Err("the negotiated traffic selectors pair no addresses of one family".into());
        }
        let name = format!("{}/{}", up.peer, up.child);
        let out = entry(name.clone(), params(&up.outbound, (up.local_addr, up.remote_addr), out_encap), vec![], self.workers)?;
        let inn = entry(name, params(&up.inbound, (up.remote_addr, up.local_addr), in_encap), in_sel, self.workers)?;
        self.seq += 1;
        self.children.insert(up.inbound.spi, Child { peer: up.peer.clone(), child: up.child.clone(), out, inn, out_sel, priority, seq: self.seq, after: up.replaces.filter(|_| !up.initiator) });
        self.spd = None;
        Ok(())
    }

    /// The peer moved (NAT rebinding, RFC 7296 2.23): its CHILD_SAs' outbound side now goes to
    /// `remote`. A new outbound SA object continues the old one's sequence numbers (no IV is
    /// reused); the inbound side needs no change, ESP in UDP is accepted from any port.
    pub fn rebind_child(&mut self, inbound_spi: u32, local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Result<(), String> {
        let Some(c) = self.children.get_mut(&inbound_spi) else { return Ok(()) };
        let mut p = c.out.sa.params().clone();
        p.tunnel = Some((local.ip(), remote.ip()));
        if p.encap.is_some() {
            p.encap = Some(UdpEncap { sport: local.port(), dport: remote.port() });
        }
        let sa = Sa::new(p).map_err(|e| e.to_string())?;
        sa.advance_seq(c.out.sa.last_seq() + 1).map_err(|e| format!("{e:?}"))?;
        c.out = Arc::new(SaEntry { name: c.out.name.clone(), sa, selectors: Default::default(), drops: SaDrops::new(self.workers) });
        self.spd = None;
        Ok(())
    }

    /// Removes a CHILD_SA by its inbound SPI; returns whether it was installed.
    pub fn remove_child(&mut self, inbound_spi: u32) -> bool {
        let had = self.children.remove(&inbound_spi).is_some();
        if had {
            self.spd = None;
        }
        had
    }

    pub fn learn(&mut self, port: u16, addr: IpAddr, mac: Mac) -> bool {
        let mut n = (*self.neighbors).clone();
        let changed = n.learn(port, addr, mac);
        if changed {
            self.neighbors = Arc::new(n);
        }
        changed
    }
}

/// Selectors for every (source, destination) pair of one family, each range split into prefixes.
fn pairs(src: &[TrafficSelector], dst: &[TrafficSelector]) -> Vec<Selector> {
    let mut out = Vec::new();
    for s in src {
        for d in dst {
            if s.start_addr.is_ipv4() != d.start_addr.is_ipv4() {
                continue;
            }
            let proto = (s.ip_proto != 0).then_some(s.ip_proto).or((d.ip_proto != 0).then_some(d.ip_proto));
            for sp in prefixes(s.start_addr, s.end_addr) {
                for dp in prefixes(d.start_addr, d.end_addr) {
                    out.push(Selector { src: sp, dst: dp, proto, sport: (s.start_port, s.end_port), dport: (d.start_port, d.end_port) });
                }
            }
        }
    }
    out
}

/// The fewest prefixes that cover exactly the address range [start, end].
fn prefixes(start: IpAddr, end: IpAddr) -> Vec<Prefix> {
    let (bits, lo, hi) = match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (32u32, u32::from(a) as u128, u32::from(b) as u128),
        (IpAddr::V6(a), IpAddr::V6(b)) => (128, u128::from(a), u128::from(b)),
        _ => return vec![],
    };
    let addr = |v: u128| if bits == 32 { IpAddr::V4((v as u32).into()) } else { IpAddr::V6(v.into()) };
    let max = if bits == 32 { u32::MAX as u128 } else { u128::MAX };
    if lo == 0 && hi == max {
        return vec![Prefix::new(addr(0), 0)];
    }
    let mut out = Vec::new();
    let mut cur = lo;
    while cur <= hi && out.len() < 64 {
        // The largest block that starts at `cur` and stays within the range.
        // (The whole space was handled above, so a block is at most half of it.)
        let mut size = if cur == 0 { bits - 1 } else { cur.trailing_zeros().min(bits - 1) };
        while size > 0 && cur + ((1u128 << size) - 1) > hi {
            size -= 1;
        }
        out.push(Prefix::new(addr(cur), (bits - size) as u8));
        let Some(next) = cur.checked_add(1u128 << size) else { break };
        cur = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_prefixes() {
        let p = |s: &str, e: &str| prefixes(s.parse().unwrap(), e.parse().unwrap()).iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(p("10.1.0.0", "10.1.0.255"), ["10.1.0.0/24"]);
        assert_eq!(p("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(p("10.0.0.1", "10.0.0.2"), ["10.0.0.1/32", "10.0.0.2/32"]);
        assert_eq!(p("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ["::/0"]);
        assert_eq!(p("fd01::", "fd01::ffff:ffff:ffff:ffff"), ["fd01::/64"]);
    }

    /// A rekey of `replaces` (or a first SA), inbound SPI `spi`, outbound `spi + 1`.
    fn up(spi: u32, replaces: Option<u32>, initiator: bool) -> ChildSaUp {
        let keys = |spi| crate::ike::ChildKeys { spi, alg: EspAlg::AesGcm128, key: vec![7; 20], esn: false };
        let ts = |a: &str, b: &str| TrafficSelector { ip_proto: 0, start_port: 0, end_port: 65535, start_addr: a.parse().unwrap(), end_addr: b.parse().unwrap() };
        ChildSaUp {
            peer: "datacenter".into(),
            child: "office".into(),
            ike_spi_i: 1,
            ike_spi_r: 2,
            inbound: keys(spi),
            outbound: keys(spi + 1),
            local_ts: vec![ts("192.168.50.0", "192.168.50.255")],
            remote_ts: vec![ts("172.16.0.0", "172.31.255.255")],
            encap: None,
            local_addr: "10.0.0.2".parse().unwrap(),
            remote_addr: "198.51.100.7".parse().unwrap(),
            replaces,
            initiator,
        }
    }

    /// The outbound SPI the child's traffic leaves on.
    fn sending_on(s: &mut State) -> u32 {
        let t = s.tables();
        let spis: Vec<u32> = t.out_sa.iter().flatten().map(|e| e.sa.spi()).collect();
        assert_eq!(spis.len(), 1, "{spis:x?}");
        spis[0]
    }

    #[test]
    fn rekey_switches_outbound_when_the_peer_can_decrypt() {
        let cfg = Config::parse(include_str!("../../configs/examples/behind-nat.json")).unwrap();
        for initiator in [true, false] {
            let mut s = State::new(&cfg, vec![[2, 0, 0, 0, 0, 1]; 2], 1).unwrap();
            s.install_child(&up(0x100, None, false), 10, 64).unwrap();
            assert_eq!(sending_on(&mut s), 0x101);
            s.install_child(&up(0x200, Some(0x100), initiator), 10, 64).unwrap();
            // Both inbound SAs take traffic.
            assert_eq!(s.tables().sad_in.len(), 2);
            // The initiator has the peer's answer, so the peer has the new inbound SA: it sends
            // on the new one at once. The responder waits for the old SA's Delete.
            assert_eq!(sending_on(&mut s), if initiator { 0x201 } else { 0x101 }, "initiator {initiator}");
            assert!(s.remove_child(0x100));
            assert_eq!(sending_on(&mut s), 0x201);
        }
    }
}
