//! `rampart run`: the control thread. It starts the dataplane from the config, runs IKE over
//! the ports' exception path, installs what IKE negotiates, serves what the workers hand up
//! (neighbours, packets for the gateway itself), publishes table updates, reclaims old
//! snapshots, and prints counters on SIGUSR1 and at exit.

use crate::config::Config;
use crate::ctl::{self, metrics, Handler, Request};
use crate::ike::{DownReason, Engine, EngineConfig, Event};
use crate::state::State;
use crate::{ikeio, peers, report};
use mio::{Events, Poll, Token};
use serde_json::{json, Value};
use rampart_dataplane::crypto;
use rampart_dataplane::gateway::{Gateway, GatewaySpec};
use rampart_dataplane::worker::ToControl;
use crate::keys::KeyExport;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// The EAL arguments: the config's, plus what a gateway that must not clash with another
/// DPDK process on the same machine needs when the config does not say: no shared files,
/// and on hugepages `--in-memory`, which also unlinks the hugepage files once mapped, so
/// that the pages go back to the system when the gateway exits, even when it is killed.
/// (EAL refuses `--in-memory` with `--no-huge`, whose memory is anonymous anyway.)
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let mut args = cfg.eal.clone();
    let has = |args: &[String], flag: &str| args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if !has(&args, "--file-prefix") {
        let private = if has(&args, "--no-huge") { "--no-shconf" } else { "--in-memory" };
        args.extend(["--file-prefix".into(), format!("rampart-{}", std::process::id()), private.into()]);
    }
    if !has(&args, "--telemetry") && !has(&args, "--no-telemetry") {
        args.push("--no-telemetry".into());
    }
    if !has(&args, "-l") && !has(&args, "--lcores") && !has(&args, "-c") {
        // The main lcore is the control thread; workers are pinned by us and registered.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let main = (0..cpus).find(|c| !cfg.cores.contains(c)).unwrap_or(0);
        args.extend(["-l".into(), main.to_string()]);
    }
    args
}

pub fn spec(cfg: &Config) -> GatewaySpec {
    GatewaySpec {
        eal_args: eal_args(cfg),
        ports: cfg.ports.iter().map(|p| p.devargs.clone()).collect(),
        cores: cfg.cores.clone(),
        mbufs: 16383,
        idle_sleep: Duration::from_micros(cfg.idle_sleep_us),
        flow_cache: cfg.flow_cache_entries,
    }
}

/// The running gateway: dataplane, what it should hold, and IKE.
pub struct Daemon {
    pub cfg: Config,
    /// The config file, for `reload`, and its JSON as last loaded (to tell what changed).
    path: PathBuf,
    raw: Value,
    /// The debugging key export, when the config asks for one.
    keys: Option<KeyExport>,
    pub gw: Gateway,
    pub state: State,
    pub ike: Engine,
    pub started: Instant,
    dirty: bool,
    last_traffic_note: Instant,
    last_keepalive: Instant,
    /// Peers to initiate again after a failed attempt: when, and the back-off after that.
    retry: std::collections::HashMap<String, (Instant, Duration)>,
}

impl Daemon {
    pub fn start(cfg: Config, file: &Path) -> Result<Daemon, String> {
        let named = |(f, m): (String, String)| format!("{}: {f}: {m}", file.display());
        let peers = cfg.peers.iter().enumerate().map(|(i, p)| peers::peer(p).map_err(|(f, m)| (format!("peers[{i}].{f}"), m))).collect::<Result<Vec<_>, _>>().map_err(named)?;
        let raw: Value = std::fs::read_to_string(file).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
        let keys = match &cfg.key_export {
            Some(k) => Some(KeyExport::open(&k.dir).map_err(|e| format!("{}: {e}", file.display()))?),
            None => None,
        };
        // Before any SA is built (keys stay on the engine they were made with), and before
        // the EAL starts, so that an engine this machine cannot run stops nothing half-way.
        let asked = cfg.crypto_engine.engine();
        let engine = crypto::select_engine(asked).map_err(|e| format!("{}: crypto_engine: {e}", file.display()))?;
        match crypto::resolve(crypto::Engine::IpsecMb) {
            Err(why) if asked == crypto::Engine::Auto => info!(target: "dataplane", asked = asked.as_str(), engine, "crypto engine ({why})"),
            _ => info!(target: "dataplane", asked = asked.as_str(), engine, "crypto engine"),
        }
        let mut gw = Gateway::open(spec(&cfg)).map_err(|e| e.to_string())?;
        let mut state = State::new(&cfg, gw.macs(), cfg.cores.len()).map_err(named)?;
        state.set_raw(&raw);
        if let Some(k) = &keys {
            warn!(target: "dataplane", dir = %k.dir().display(), "key export is on: every SA's keys are written to disk in clear (debugging only)");
            for sc in &cfg.sas {
                let p = crate::build::sa_params(sc).map_err(|m| format!("{}: sas: {m}", file.display()))?;
                k.esp(&p, &p.key);
            }
        }
        gw.start(state.tables()).map_err(|e| e.to_string())?;
        let now = Instant::now();
        let mut ike = Engine::new(EngineConfig::default(), peers);
        ike.set_key_export(keys.is_some());
        ike.start(now);
        info!(target: "dataplane", ports = cfg.ports.len(), workers = cfg.cores.len(), sas = cfg.sas.len(), policies = cfg.policies.len(), peers = cfg.peers.len(), "rampart up");
        Ok(Daemon {
            cfg,
            path: file.to_owned(),
            raw,
            keys,
            gw,
            state,
            ike,
            started: now,
            dirty: false,
            last_traffic_note: now, last_keepalive: now,
            retry: Default::default(),
        })
    }

    /// `reload`: reads the config file again and validates it whole; a bad one changes
    /// nothing. Then policies, manual SAs and routes are rebuilt (manual SAs whose JSON did not
    /// change keep their state), and peers are diffed by their JSON: removed ones are deleted,
    /// changed ones deleted and added again, added ones added; unchanged peers' SAs are left
    /// alone. The next turn publishes the result once.
    pub fn reload(&mut self, now: Instant) -> Result<Value, String> {
        let file = self.path.clone();
        let cfg = Config::load(&file).map_err(|e| e.to_string())?;
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&file).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        // What the running dataplane and sockets were built from cannot change in place.
        for f in ["cores", "eal", "idle_sleep_us", "crypto_engine", "ports", "control", "metrics", "key_export"] {
            if raw.get(f) != self.raw.get(f) {
                return Err(format!("{}: {f}: changed; this needs a restart, not a reload", file.display()));
            }
        }
        let mut new_peers = Vec::new();
        for (i, p) in cfg.peers.iter().enumerate() {
            new_peers.push(peers::peer(p).map_err(|(f, m)| format!("{}: peers[{i}].{f}: {m}", file.display()))?);
        }
        let peer_json = |raw: &Value, name: &str| {
            raw.get("peers").and_then(Value::as_array).and_then(|a| a.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(name))).cloned()
        };
        // Everything is validated: from here on, nothing fails.
        let fresh = self.state.reload(&cfg, &raw).map_err(|(f, m)| format!("{}: {f}: {m}", file.display()))?;
        if let Some(k) = &self.keys {
            for p in cfg.sas.iter().filter(|s| fresh.iter().any(|e| e.name == s.name)).filter_map(|s| crate::build::sa_params(s).ok()) {
                k.esp(&p, &p.key);
            }
        }
        let (mut added, mut removed, mut changed, mut unchanged) = (vec![], vec![], vec![], vec![]);
        for old in &self.cfg.peers {
            if !cfg.peers.iter().any(|p| p.name == old.name) {
                self.ike.remove_peer(now, &old.name);
                self.retry.remove(&old.name);
                removed.push(old.name.clone());
            }
        }
        for (p, pc) in cfg.peers.iter().zip(new_peers) {
            let before = peer_json(&self.raw, &p.name);
            if before.is_none() {
                self.ike.add_peer(pc);
                added.push(p.name.clone());
            } else if before != peer_json(&raw, &p.name) {
                self.ike.remove_peer(now, &p.name);
                self.retry.remove(&p.name);
                self.ike.add_peer(pc);
                changed.push(p.name.clone());
            } else {
                unchanged.push(p.name.clone());
                continue;
            }
            if p.start_action == "start" {
                self.ike.initiate(now, &p.name);
            }
        }
        self.cfg = cfg;
        self.raw = raw;
        // The removed children go out of the tables in the same snapshot as the new policies.
        self.ike_events(now);
        self.dirty = true;
        let summary = json!({"added": added, "removed": removed, "changed": changed, "unchanged": unchanged});
        info!(target: "dataplane", file = %file.display(), added = ?added, removed = ?removed, changed = ?changed, unchanged = ?unchanged, manual_sas_rekeyed = fresh.len(), "config reloaded");
        Ok(summary)
    }

    /// One turn of the control loop: the workers' messages, IKE, table publication.
    pub fn turn(&mut self) {
        let now = Instant::now();
        self.serve_workers(now);
        if self.ike.poll_timeout().is_some_and(|t| t <= now) {
            self.ike.handle_timeout(now);
        }
        if now.duration_since(self.last_keepalive) >= NAT_KEEPALIVE {
            self.last_keepalive = now;
            self.nat_keepalives();
        }
        if now.duration_since(self.last_traffic_note) >= Duration::from_secs(1) {
            self.last_traffic_note = now;
            for (spi, c) in &self.state.children {
                self.ike.note_child_traffic(now, *spi, c.inn.sa.stats().packets);
            }
        }
        self.ike_events(now);
        self.retry_peers(now);
        self.ike_transmit();
        if std::mem::take(&mut self.dirty) {
            let t = self.state.tables();
            self.gw.publisher().publish(t);
        }
        self.gw.publisher().reclaim();
    }

    fn serve_workers(&mut self, now: Instant) {
        for shared in self.gw.shared.clone() {
            while let Some(msg) = shared.to_control.pop() {
                match msg {
                    ToControl::Neighbor { port, addr, mac } => {
                        if self.state.learn(port, addr, mac) {
                            info!(target: "dataplane", port, %addr, mac = %report::mac(&mac), "neighbour learned");
                            self.dirty = true;
                        }
                    }
                    ToControl::Acquire { key } => self.acquire(now, &key),
                    ToControl::Packet { port, mbuf } => match ikeio::datagram(mbuf.data()) {
                        Some((local, remote, payload)) if [500, 4500].contains(&local.port()) => {
                            self.ike.handle_datagram(now, local, remote, payload);
                        }
                        _ => {
                            debug!(target: "dataplane", port, len = mbuf.len(), "packet for the gateway with no local service");
                        }
                    },
                }
            }
        }
    }

    /// Start action "trap": the first packet for a child's selectors brings the child up.
    fn acquire(&mut self, now: Instant, key: &rampart_dataplane::spd::FlowKey) {
        for p in self.cfg.peers.iter().filter(|p| p.start_action == "trap") {
            for c in &p.children {
                let covers = |list: &[String], a: std::net::IpAddr| {
                    list.iter().filter_map(|s| crate::config::parse_prefix(s).ok()).any(|(n, l)| rampart_dataplane::spd::Prefix::new(n, l).contains(&a))
                };
                if covers(&c.local_ts, key.src()) && covers(&c.remote_ts, key.dst()) && self.ike.acquire(now, &p.name, &c.name) {
                    info!(target: "ike", peer = %p.name, child = %c.name, "traffic for the child: negotiating it");
                }
            }
        }
    }

    /// RFC 3948 NAT keepalives (one 0xFF byte) on every path that carries ESP in UDP, so
    /// that a NAT on the way keeps its mapping while the tunnel is quiet.
    fn nat_keepalives(&mut self) {
        let mut paths: Vec<(std::net::SocketAddr, std::net::SocketAddr)> = Vec::new();
        for c in self.state.children.values() {
            let p = c.out.sa.params();
            if let (Some((l, r)), Some(e)) = (p.tunnel, p.encap) {
                paths.push((std::net::SocketAddr::new(l, e.sport), std::net::SocketAddr::new(r, e.dport)));
            }
        }
        paths.sort();
        paths.dedup();
        for (from, to) in paths {
            self.send_udp(from, to, &[0xff]);
        }
    }

    /// Sends one UDP datagram from the gateway: the first worker routes it (and runs it
    /// through the SPD) with its own traffic.
    fn send_udp(&mut self, from: std::net::SocketAddr, to: std::net::SocketAddr, payload: &[u8]) {
        let Some(mut m) = self.gw.pool.alloc() else {
            warn!(target: "control", "no mbuf for a datagram to {to}");
            return;
        };
        if !ikeio::build(&mut m, from, to, payload) {
            warn!(target: "control", len = payload.len(), "datagram to {to} does not fit a packet");
            return;
        }
        if self.gw.shared[0].to_worker.push(m).is_err() {
            warn!(target: "control", "worker queue full: datagram to {to} dropped");
        }
    }

    fn ike_transmit(&mut self) {
        while let Some(t) = self.ike.poll_transmit() {
            self.send_udp(t.local, t.remote, &t.bytes);
        }
    }

    /// A peer that should be up (started at start-up, or restarted after it died) is tried
    /// again, with back-off, until it answers.
    fn retry_peers(&mut self, now: Instant) {
        let due: Vec<String> = self.retry.iter().filter(|(_, (at, _))| *at <= now).map(|(p, _)| p.clone()).collect();
        for peer in due {
            if self.ike.ike_sas(&peer).is_empty() {
                info!(target: "ike", %peer, "initiating again");
                self.ike.initiate(now, &peer);
            }
            if let Some((at, backoff)) = self.retry.get_mut(&peer) {
                *at = now + *backoff;
                *backoff = (*backoff * 2).min(Duration::from_secs(60));
            }
        }
    }

    fn wants_up(&self, peer: &str) -> bool {
        self.cfg.peers.iter().any(|p| p.name == peer && p.remote_addr.is_some() && (p.start_action == "start" || p.dpd_action == "restart"))
    }

    fn ike_events(&mut self, now: Instant) {
        while let Some(ev) = self.ike.poll_event() {
            match ev {
                Event::ChildSaUp(up) => {
                    let (prio, window) = self.child_settings(&up.peer, &up.child);
                    match self.state.install_child(&up, prio, window) {
                        Ok(()) => {
                            self.dirty = true;
                            if let (Some(k), Some(c)) = (&self.keys, self.state.children.get(&up.inbound.spi)) {
                                k.esp(c.inn.sa.params(), &up.inbound.key);
                                k.esp(c.out.sa.params(), &up.outbound.key);
                            }
                            info!(target: "ike", peer = %up.peer, child = %up.child, spi_in = format_args!("{:#010x}", up.inbound.spi),
                                spi_out = format_args!("{:#010x}", up.outbound.spi), alg = ?up.inbound.alg, encap = ?up.encap,
                                rekey_of = ?up.replaces.map(|s| format!("{s:#010x}")), "CHILD_SA up");
                        }
                        Err(e) => warn!(target: "ike", peer = %up.peer, child = %up.child, "CHILD_SA not installed: {e}"),
                    }
                }
                Event::ChildSaDown { peer, child, inbound_spi, reason, .. } => {
                    if self.state.remove_child(inbound_spi) {
                        self.dirty = true;
                    }
                    info!(target: "ike", %peer, %child, spi_in = format_args!("{inbound_spi:#010x}"), ?reason, "CHILD_SA down");
                }
                Event::IkeSaUp { peer, remote, remote_id, ike_spi_i, ike_spi_r, .. } => {
                    self.retry.remove(&peer);
                    self.export_ike(ike_spi_i, ike_spi_r);
                    info!(target: "ike", %peer, %remote, %remote_id, "IKE_SA up")
                }
                Event::IkeSaDown { peer, reason, .. } => {
                    if matches!(reason, DownReason::Failed | DownReason::DeadPeer) && self.wants_up(&peer) {
                        self.retry.entry(peer.clone()).or_insert((now + Duration::from_secs(2), Duration::from_secs(4)));
                    }
                    info!(target: "ike", %peer, ?reason, "IKE_SA down")
                }
                Event::IkeSaRekeyed { peer, new, .. } => {
                    self.export_ike(new.0, new.1);
                    info!(target: "ike", %peer, "IKE_SA rekeyed")
                }
                Event::ChildSaFailed { peer, child, notify } => warn!(target: "ike", %peer, %child, notify, "CHILD_SA failed"),
                Event::AuthFailed { peer_id, remote } => {
                    warn!(target: "ike", peer_id = %peer_id.map(|i| i.to_string()).unwrap_or_else(|| "?".into()), %remote, "authentication failed")
                }
                // TODO(lead): move the listed CHILD_SAs' outer addresses and encap ports.
                Event::PeerAddressChanged { peer, local, remote, children, .. } => {
                    for (spi_in, _) in children {
                        if let Err(e) = self.state.rebind_child(spi_in, local, remote) {
                            warn!(target: "ike", %peer, "CHILD_SA {spi_in:#010x} not moved: {e}");
                        }
                    }
                    self.dirty = true;
                    info!(target: "ike", %peer, %remote, "peer address changed; CHILD_SAs follow")
                }
            }
        }
    }

    fn export_ike(&self, spi_i: u64, spi_r: u64) {
        if let (Some(k), Some(keys)) = (&self.keys, self.ike.ike_sa_keys(spi_i, spi_r)) {
            k.ike(&keys);
        }
    }

    fn child_settings(&self, peer: &str, child: &str) -> (u32, u32) {
        self.cfg
            .peers
            .iter()
            .find(|p| p.name == peer)
            .and_then(|p| p.children.iter().find(|c| c.name == child))
            .map_or((100, 1024), |c| (c.priority, c.replay_window))
    }

    pub fn stop(&mut self) {
        info!(target: "dataplane", "stopping");
        self.gw.stop();
    }
}

impl Daemon {
    /// Counters, as the control socket, the metrics listener and SIGUSR1 all see them.
    pub fn metrics(&self) -> metrics::MetricsSnapshot {
        let names: Vec<String> = self.cfg.ports.iter().map(|p| p.name.clone()).collect();
        metrics::snapshot(&self.gw, &names, self.started)
    }

    fn list_sas(&self) -> Value {
        let ike: Vec<Value> = self
            .cfg
            .peers
            .iter()
            .flat_map(|p| self.ike.ike_sas(&p.name).into_iter().map(move |(i, r)| json!({"peer": p.name, "spi_i": format!("{i:016x}"), "spi_r": format!("{r:016x}"), "state": "established"})))
            .collect();
        let children: Vec<Value> = self
            .state
            .children
            .iter()
            .map(|(spi, c)| {
                let (i, o) = (c.inn.sa.stats(), c.out.sa.stats());
                let now = Instant::now();
                let secs = |t: Instant| t.saturating_duration_since(now).as_secs();
                let (rekey_in, expires_in) = match self.ike.child_lifetime(*spi) {
                    Some((r, e)) => (r.map(secs), Some(secs(e))),
                    None => (None, None),
                };
                let ts = |v: &[rampart_dataplane::spd::Selector]| v.iter().map(|s| format!("{}=>{}", s.src, s.dst)).collect::<Vec<_>>().join(",");
                json!({
                    "peer": c.peer, "child": c.child,
                    "spi_in": format!("{:#010x}", c.inn.sa.spi()), "spi_out": format!("{:#010x}", c.out.sa.spi()),
                    "alg": format!("{:?}", c.inn.sa.params().alg), "esn": c.inn.sa.params().esn,
                    "encap": c.inn.sa.params().encap.is_some(),
                    "ts": ts(&c.out_sel),
                    "in_packets": i.packets, "in_bytes": i.bytes, "out_packets": o.packets, "out_bytes": o.bytes,
                    "rekey_in_s": rekey_in, "expires_in_s": expires_in,
                })
            })
            .collect();
        let manual: Vec<Value> = self
            .cfg
            .sas
            .iter()
            .map(|s| json!({"name": s.name, "direction": format!("{:?}", s.direction).to_lowercase(), "spi": format!("{:#010x}", s.spi.get()), "alg": format!("{:?}", s.alg)}))
            .collect();
        json!({"ike_sas": ike, "child_sas": children, "manual_sas": manual})
    }

    fn list_policies(&self) -> Value {
        let t = self.gw.publisher.as_ref().map(|p| p.current());
        let Some(t) = t else { return json!([]) };
        let rows: Vec<Value> = t
            .spd
            .policies()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({
                    "id": i, "priority": p.priority, "dir": format!("{:?}", p.dir).to_lowercase(),
                    "src": p.sel.src.to_string(), "dst": p.sel.dst.to_string(),
                    "proto": p.sel.proto.map_or("any".to_string(), |x| x.to_string()),
                    "sport": format!("{}-{}", p.sel.sport.0, p.sel.sport.1), "dport": format!("{}-{}", p.sel.dport.0, p.sel.dport.1),
                    "action": format!("{:?}", p.action).to_lowercase(),
                    "sa": t.out_sa.get(i).and_then(|s| s.as_ref()).map_or("-".to_string(), |s| s.name.clone()),
                })
            })
            .collect();
        Value::Array(rows)
    }

    fn known_peer(&self, peer: &str) -> Result<(), String> {
        self.cfg.peers.iter().any(|p| p.name == peer).then_some(()).ok_or_else(|| format!("no peer named `{peer}`"))
    }
}

impl Handler for Daemon {
    fn handle(&mut self, req: Request) -> Result<Value, String> {
        let now = Instant::now();
        match req {
            Request::Version => {
                let mut v = ctl::proto::version();
                v["uptime_seconds"] = json!(self.started.elapsed().as_secs_f64());
                Ok(v)
            }
            Request::ListSas => Ok(self.list_sas()),
            Request::ListPolicies => Ok(self.list_policies()),
            Request::Counters => serde_json::to_value(self.metrics()).map_err(|e| e.to_string()),
            Request::Initiate { peer } => {
                self.known_peer(&peer)?;
                let ok = self.ike.initiate(now, &peer);
                Ok(json!({"peer": peer, "initiating": ok}))
            }
            Request::Terminate { peer } => {
                self.known_peer(&peer)?;
                self.ike.terminate(now, &peer);
                Ok(json!({"peer": peer, "terminating": true}))
            }
            Request::Rekey { peer, child, ike } => {
                let peer = peer.ok_or("rekey needs a peer")?;
                self.known_peer(&peer)?;
                if ike {
                    return Ok(json!({"peer": peer, "ike_rekey": self.ike.rekey_ike(now, &peer)}));
                }
                let spis: Vec<u32> = self
                    .state
                    .children
                    .iter()
                    .filter(|(_, c)| c.peer == peer && child.as_ref().is_none_or(|n| &c.child == n))
                    .map(|(s, _)| *s)
                    .collect();
                if spis.is_empty() {
                    return Err(format!("peer `{peer}` has no CHILD_SA{}", child.map(|c| format!(" named `{c}`")).unwrap_or_default()));
                }
                let started: Vec<String> = spis.into_iter().filter(|s| self.ike.rekey_child(now, *s)).map(|s| format!("{s:#010x}")).collect();
                Ok(json!({"peer": peer, "child_rekeys": started}))
            }
            Request::Reload => self.reload(now).inspect_err(|e| warn!(target: "dataplane", "reload refused: {e}")),
        }
    }
}

const CTL_TOKEN: usize = 1;
/// RFC 3948 section 4: a keepalive every 20 seconds by default.
const NAT_KEEPALIVE: Duration = Duration::from_secs(20);

pub fn run(path: &Path) -> Result<(), String> {
    let cfg = Config::load(path).map_err(|e| e.to_string())?;
    crate::logging::init(&cfg.logging.level);
    let term = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone()).map_err(|e| e.to_string())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, usr1.clone()).map_err(|e| e.to_string())?;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut ctl = ctl::Server::bind(&cfg.control.socket).map_err(|e| format!("control socket: {e}"))?;
    ctl.register(poll.registry(), Token(CTL_TOKEN)).map_err(|e| e.to_string())?;
    let mut http = match cfg.metrics {
        Some(a) => Some(metrics::HttpServer::bind(a).map_err(|e| format!("metrics listener {a}: {e}"))?),
        None => None,
    };
    if let Some(h) = http.as_mut() {
        h.register(poll.registry(), Token(CTL_TOKEN + ctl::Server::TOKENS)).map_err(|e| e.to_string())?;
    }
    let mut d = Daemon::start(cfg, path)?;
    let mut events = Events::with_capacity(256);
    while !term.load(Ordering::Relaxed) {
        if usr1.swap(false, Ordering::Relaxed) {
            println!("{}", report::text(&d.metrics()));
        }
        d.turn();
        // The workers' queues are polled, so the loop wakes at least every millisecond.
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(1))) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("poll: {e}"));
            }
        }
        for ev in events.iter() {
            if ctl.owns(ev.token()) {
                ctl.handle_event(ev, &mut d);
            } else if let Some(h) = http.as_mut().filter(|h| h.owns(ev.token())) {
                h.handle_event(ev, &mut || metrics::render(&d.metrics()));
            }
        }
        ctl.poll_idle(&mut d);
        if let Some(h) = http.as_mut() {
            h.poll_idle(Instant::now());
        }
    }
    d.stop();
    println!("{}", report::text(&d.metrics()));
    Ok(())
}

