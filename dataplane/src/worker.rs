//! The poll-mode worker: one per core, pinned. Each loop polls its RX queue on every port,
//! sorts the burst into arrays (encrypt, decrypt, forward, local, exception, drop), runs ESP
//! over each array, routes, and transmits in bursts; then reports a quiescent state.

use crate::buf::PktBuf;
use crate::counters::{DropReason, WorkerCounters};
use crate::flowcache::FlowCache;
use crate::gateway::GatewaySpec;
use crate::l3::{Mac, NextHop};
use crate::local;
use crate::mbuf::BURST;
use crate::qsbr::Reader;
use crate::spd::{Action, Direction, FlowKey};
use crate::tables::{SaEntry, Tables};
use crate::ip::{self, IpView};
use crate::wire::ethernet;
use crossbeam_queue::ArrayQueue;
use dpdk_sys::{ArrayVec, Cache, Mbuf, Mempool, Port};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a worker hands to the control thread.
#[derive(Debug)]
pub enum ToControl {
    /// A packet for the gateway itself that the worker does not serve (IKE, ...), from `port`,
    /// starting at its IP header.
    Packet { port: u16, mbuf: Mbuf },
    /// A neighbour seen in ARP or NDP.
    Neighbor { port: u16, addr: IpAddr, mac: Mac },
    /// Traffic hit a PROTECT policy that has no SA: IKE may start one (start action "trap").
    Acquire { key: FlowKey },
}

/// The parts of a worker that the control thread sees.
#[derive(Debug)]
pub struct WorkerShared {
    pub counters: WorkerCounters,
    pub to_control: ArrayQueue<ToControl>,
    /// IP packets from the control thread, routed and sent by the worker.
    pub to_worker: ArrayQueue<Mbuf>,
}

impl WorkerShared {
    pub fn new() -> Self {
        WorkerShared { counters: WorkerCounters::default(), to_control: ArrayQueue::new(1024), to_worker: ArrayQueue::new(1024) }
    }
}

impl Default for WorkerShared {
    fn default() -> Self {
        Self::new()
    }
}

// The verdict for a flow, as kept in the flow cache: the kind in the top two bits, the SPD
// policy index below.
const V_ENCRYPT: u32 = 0;
const V_FORWARD: u32 = 1 << 30;
const V_DISCARD: u32 = 2 << 30;
const V_MISMATCH: u32 = 3 << 30;
const V_KIND: u32 = 3 << 30;

/// The worker's own state, apart from its table reader.
pub struct Path {
    pub id: usize,
    pub queue: u16,
    pub ports: Vec<Port>,
    pub pool: Mempool,
    pub shared: Arc<WorkerShared>,
    pub flows: FlowCache,
    tx: Vec<Burst<Mbuf>>,
    /// TSC of the last neighbour solicitation, to send at most a few per millisecond.
    last_solicit: u64,
    solicit_gap: u64,
    /// TSC of the last acquire sent to the control thread (at most one a millisecond).
    last_acquire: u64,
    /// Packets waiting for a neighbour to answer, as a kernel's ARP queue holds them.
    parked: [Option<Parked>; PARKED],
    nparked: usize,
    /// Destinations routed lately, with their port and next hop's MAC, direct-mapped; an
    /// entry answers only under the tables epoch it was filled in.
    routed: Box<[Routed; ROUTED]>,
    /// The epoch of the snapshot being worked on.
    epoch: u64,
    /// The address of the SA last prefetched into L2 at classification.
    l2_sa: usize,
}

const ROUTED: usize = 1024;

#[derive(Clone, Copy)]
struct Routed {
    epoch: u64,
    dst: IpAddr,
    port: u16,
    mac: Mac,
}

/// Where a routed packet goes next.
#[derive(Clone, Copy)]
enum Hop {
    /// Out of this port to this neighbour.
    Known(u16, Mac),
    /// A neighbour not yet resolved: solicit it and park the packet.
    Unknown(NextHop),
    NoRoute,
}

#[inline]
fn routed_slot(dst: IpAddr) -> usize {
    let x = match dst {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let b = u128::from(a);
            (b ^ (b >> 64) ^ (b >> 32)) as u32
        }
    };
    // The low bits first: hosts of one subnet never collide.
    (x ^ (x >> 10) ^ (x >> 20)) as usize % ROUTED
}

const PARKED: usize = 16;

/// With many SAs each is cold: the worker prefetches the SA this many packets before it
/// works on it, so that its lines arrive spread over the burst. (Prefetched when packets
/// were classified, a burst's SAs at once filled the core's miss buffers and stalled there.)
const AHEAD: usize = 3;

/// Prefetches (`fetch`) the SA of `burst[j]` unless it is the one prefetched `last`.
fn prefetch_sa(burst: &[(Mbuf, &SaEntry)], j: usize, last: &mut usize, fetch: fn(&SaEntry)) {
    if let Some((_, sa)) = burst.get(j) {
        prefetch_once(sa, last, fetch);
    }
}

/// Prefetches (`fetch`) `sa` unless it is the SA at address `last`, and remembers it: a run
/// of one SA's packets asks once.
#[inline]
fn prefetch_once(sa: &SaEntry, last: &mut usize, fetch: fn(&SaEntry)) {
    let at = sa as *const SaEntry as usize;
    if at != *last {
        fetch(sa);
        *last = at;
    }
}

/// A packet, with its Ethernet room, waiting for `nh` to be resolved since `since` (TSC).
struct Parked {
    nh: NextHop,
    since: u64,
    m: Mbuf,
}

/// Up to a burst of packets, owned: a fixed array and a count (no per-slot `Option` to test).
type Burst<T> = ArrayVec<T, BURST>;

pub struct Worker {
    pub path: Path,
    pub reader: Reader<Tables>,
    pub stop: Arc<AtomicBool>,
    /// Sleep this long after an empty poll: 0 for pure polling (the default on a dedicated core).
    pub idle_sleep: Duration,
}

impl Worker {
    pub fn new(
        id: usize,
        ports: Vec<Port>,
        pool: Mempool,
        shared: Arc<WorkerShared>,
        reader: Reader<Tables>,
        stop: Arc<AtomicBool>,
        spec: &GatewaySpec,
    ) -> Self {
        let tx = ports.iter().map(|_| Burst::new()).collect();
        let path = Path {
            id,
            queue: id as u16,
            ports,
            pool,
            shared,
            flows: FlowCache::new(spec.flow_cache),
            tx,
            last_solicit: 0,
            solicit_gap: dpdk_sys::tsc_hz() / 1000,
            last_acquire: 0,
            parked: [const { None }; PARKED],
            nparked: 0,
            routed: Box::new([Routed { epoch: u64::MAX, dst: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port: 0, mac: [0; 6] }; ROUTED]),
            epoch: u64::MAX,
            l2_sa: 0,
        };
        Worker { path, reader, stop, idle_sleep: spec.idle_sleep }
    }

    /// The poll loop; returns when `stop` is set.
    pub fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            let got = self.poll_once();
            if got == 0 && !self.idle_sleep.is_zero() {
                self.reader.offline();
                std::thread::sleep(self.idle_sleep);
                self.reader.online();
            }
        }
        self.reader.offline();
    }

    /// One iteration: every port once, then the control thread's packets, then TX.
    pub fn poll_once(&mut self) -> usize {
        let t = self.reader.snapshot();
        self.path.epoch = self.reader.epoch();
        let mut got = 0;
        for p in 0..self.path.ports.len() {
            got += self.path.poll_port(t, p as u16);
        }
        while let Some(m) = self.path.shared.to_worker.pop() {
            self.path.originate(t, m);
        }
        if self.path.nparked > 0 {
            self.path.unpark(t);
        }
        self.path.flush();
        self.path.shared.counters.iterations.add(1);
        self.reader.quiescent();
        got
    }
}

enum Class<'t> {
    Encrypt(&'t SaEntry),
    /// ESP to one of our addresses, by SPI: its SA is looked up once the burst is classified,
    /// its SAD slot prefetched meanwhile (with many SAs each slot is cold).
    Esp(u32),
    /// Transit in clear (BYPASS): decrement TTL and route.
    Forward,
    /// Rewritten in place into an answer; route it (IP) or send it back out `port` (ARP).
    Reply,
    ReplyOn(u16),
    /// Served here (a neighbour advertisement, ARP for someone else): nothing to send.
    Consumed,
    Exception,
    Drop(DropReason),
}

/// A burst's packets for ESP, with their SAs.
struct Sorted<'t> {
    enc: Burst<(Mbuf, &'t SaEntry)>,
    dec: Burst<(Mbuf, &'t SaEntry)>,
}

impl Path {
    fn poll_port(&mut self, t: &Tables, port: u16) -> usize {
        let mut rx = Burst::new();
        let n = self.ports[port as usize].rx_burst(self.queue, &mut rx);
        if n == 0 {
            return 0;
        }
        self.shared.counters.rx_packets.add(n as u64);
        let mut sorted = Sorted { enc: Burst::new(), dec: Burst::new() };
        // The burst's headers are not in this core's cache yet: ask for all of them, then
        // for each packet's data one packet ahead of the one being parsed. The first pass
        // settles what it can at once and keeps transit packets aside, with their flow key
        // and hash, while their flow cache buckets are fetched; the second looks them up.
        // (Keys are written in place and classes acted on at once: values built on the stack
        // and copied stall on store forwarding.)
        rx.iter().for_each(Mbuf::prefetch_header);
        if let Some(m) = rx.first() {
            m.prefetch_data();
        }
        let mut transit = Burst::new();
        let mut esp = Burst::new();
        let mut keys = [FlowKey::ZERO; BURST];
        let mut hashes = [0u32; BURST];
        let mut rx = rx.into_iter();
        while let Some(mut m) = rx.next() {
            if let Some(next) = rx.as_slice().first() {
                next.prefetch_data();
            }
            let j = transit.len();
            match self.parse(t, port, &mut m, &mut keys[j]) {
                Some(Class::Esp(spi)) => {
                    t.sad_in.prefetch(spi);
                    esp.push((m, spi));
                }
                Some(class) => self.act(t, port, m, class, &mut sorted),
                None => {
                    hashes[j] = keys[j].hash32();
                    self.flows.prefetch(hashes[j]);
                    transit.push(m);
                }
            }
        }
        for (j, mut m) in transit.into_iter().enumerate() {
            let class = self.transit(t, &keys[j], hashes[j], &mut m);
            self.act(t, port, m, class, &mut sorted);
        }
        for (m, spi) in esp {
            self.act(t, port, m, Class::Esp(spi), &mut sorted);
        }
        self.encrypt(t, sorted.enc);
        self.decrypt(t, sorted.dec);
        n
    }

    /// Does what `class` says with a packet from `port`; ESP work is gathered in `sorted`.
    #[inline]
    fn act<'t>(&mut self, t: &'t Tables, port: u16, m: Mbuf, class: Class<'t>, sorted: &mut Sorted<'t>) {
        match class {
            Class::Encrypt(sa) => sorted.enc.push((m, sa)),
            Class::Esp(spi) => match t.sad_in.get(&spi) {
                Some(sa) => sorted.dec.push((m, sa)),
                None => self.drop(DropReason::NoSa, 1),
            },
            Class::Forward => {
                self.shared.counters.bypassed.add(1);
                self.route_out(t, m)
            }
            Class::Reply => {
                self.shared.counters.local.add(1);
                self.originate(t, m)
            }
            Class::ReplyOn(p) => {
                self.shared.counters.local.add(1);
                self.send(p, m)
            }
            Class::Consumed => self.shared.counters.local.add(1),
            Class::Exception => {
                self.shared.counters.exceptions.add(1);
                if self.shared.to_control.push(ToControl::Packet { port, mbuf: m }).is_err() {
                    self.drop(DropReason::ExceptionFull, 1);
                }
            }
            Class::Drop(r) => self.drop(r, 1),
        }
    }

    #[inline]
    fn drop(&self, r: DropReason, n: u64) {
        self.shared.counters.drops.add(r, n);
    }

    /// Decides what a frame is, up to the flow lookup: `None` for transit traffic, whose flow
    /// key is then in `key`. On return, IP packets start at their IP header (the Ethernet
    /// header is gone) and are trimmed to the IP length (no Ethernet padding).
    fn parse<'t>(&mut self, t: &'t Tables, port: u16, m: &mut Mbuf, key: &mut FlowKey) -> Option<Class<'t>> {
        if !m.is_contiguous() {
            return Some(Class::Drop(DropReason::Unsupported));
        }
        let Ok(eth) = ethernet::Frame::new_checked(m.data()) else {
            return Some(Class::Drop(DropReason::Malformed));
        };
        match eth.ethertype() {
            ethernet::ethertype::ARP => return Some(self.arp(t, port, m)),
            ethernet::ethertype::IPV4 | ethernet::ethertype::IPV6 => {}
            _ => return Some(Class::Drop(DropReason::Unsupported)),
        }
        PktBuf::adj(m, ethernet::HEADER_LEN);
        let (ip_len, dst, hops) = match IpView::parse(m.data()) {
            Ok(ip) => (ip.total_len(), ip.dst(), ip.hop_limit()),
            Err(_) => return Some(Class::Drop(DropReason::Malformed)),
        };
        if m.len() > ip_len {
            PktBuf::trim(m, m.len() - ip_len);
        }
        if t.locals.is_local(dst) || dst.is_multicast() {
            return Some(self.local(t, port, m));
        }
        if hops <= 1 {
            return Some(Class::Drop(DropReason::TtlExceeded));
        }
        match FlowKey::extract_into(m.data(), key) {
            Ok(()) => None,
            Err(_) => Some(Class::Drop(DropReason::Malformed)),
        }
    }

    /// What transit traffic gets: its flow's verdict (the flow cache, else the SPD).
    fn transit<'t>(&mut self, t: &'t Tables, key: &FlowKey, hash: u32, m: &mut Mbuf) -> Class<'t> {
        let v = self.verdict(t, key, hash);
        match v & V_KIND {
            V_ENCRYPT => match t.out_sa.get((v & !V_KIND) as usize) {
                Some(Some(sa)) => {
                    // Into L2 now, into L1 a few packets before `encrypt` seals it: with many
                    // SAs each is cold, and fetching its lines while the rest of the burst is
                    // classified leaves the seal waiting less.
                    prefetch_once(sa, &mut self.l2_sa, |s| s.prefetch_out(Cache::L2));
                    ip::decrement_ttl(m.data_mut());
                    Class::Encrypt(sa)
                }
                // PROTECT with no usable SA: never in clear; IKE may be asked for one.
                _ => {
                    let now = dpdk_sys::rdtsc();
                    if now.wrapping_sub(self.last_acquire) >= self.solicit_gap {
                        self.last_acquire = now;
                        let _ = self.shared.to_control.push(ToControl::Acquire { key: *key });
                    }
                    Class::Drop(DropReason::NoSa)
                }
            },
            V_FORWARD => {
                ip::decrement_ttl(m.data_mut());
                Class::Forward
            }
            V_DISCARD => Class::Drop(DropReason::Discard),
            _ => Class::Drop(DropReason::PolicyMismatch),
        }
    }

    /// The flow's verdict, from the flow cache when it holds one for this SPD generation.
    #[inline]
    fn verdict(&mut self, t: &Tables, key: &FlowKey, hash: u32) -> u32 {
        if let Some(v) = self.flows.lookup(key, hash, t.spd_gen) {
            self.shared.counters.flow_hits.add(1);
            return v;
        }
        self.shared.counters.flow_misses.add(1);
        let v = match t.spd.lookup(Direction::Outbound, key) {
            Some((i, p)) => match p.action {
                Action::Protect => V_ENCRYPT | i,
                Action::Discard => V_DISCARD,
                Action::Bypass => self.inbound_verdict(t, key),
            },
            None => match t.default_action {
                Action::Discard => V_DISCARD,
                _ => self.inbound_verdict(t, key),
            },
        };
        if self.flows.insert(key, hash, t.spd_gen, v) {
            self.shared.counters.flow_evictions.add(1);
        }
        v
    }

    /// Clear traffic that an inbound PROTECT policy covers should have come through a tunnel.
    fn inbound_verdict(&self, t: &Tables, key: &FlowKey) -> u32 {
        match t.spd.lookup(Direction::Inbound, key) {
            Some((_, p)) if p.action == Action::Protect => V_MISMATCH,
            Some((_, p)) if p.action == Action::Discard => V_DISCARD,
            _ => V_FORWARD,
        }
    }

    /// A packet for one of our addresses: ESP to decrypt, a ping to answer, or for the control plane.
    fn local<'t>(&mut self, t: &'t Tables, port: u16, m: &mut Mbuf) -> Class<'t> {
        match local::classify(m.data()) {
            // Looked up by SPI once the burst is classified (`Class::Esp`); the SA itself is
            // read only in `decrypt`, which prefetches it (with many SAs each is cold), and
            // `decap` refuses ESP in the wrong encapsulation (`EncapMismatch`).
            local::Kind::Esp { spi } => Class::Esp(spi),
            local::Kind::NatKeepalive => Class::Drop(DropReason::NatKeepalive),
            local::Kind::EchoRequest => {
                if local::echo_reply(m.data_mut()) {
                    Class::Reply
                } else {
                    Class::Drop(DropReason::Malformed)
                }
            }
            local::Kind::NeighborSolicit { target, src_mac } => {
                if let (Some(mac), Some(src)) = (src_mac, IpView::parse(m.data()).ok().map(|ip| ip.src())) {
                    self.learn(t, port, src, mac);
                }
                if t.locals.owns_on(port, target) && local::neighbor_advert(m.data_mut(), t.macs[port as usize]) {
                    Class::Reply
                } else {
                    Class::Consumed
                }
            }
            local::Kind::NeighborAdvert { target, mac } => {
                self.learn(t, port, target, mac);
                Class::Consumed
            }
            local::Kind::Other => Class::Exception,
            local::Kind::Malformed => Class::Drop(DropReason::Malformed),
        }
    }

    fn arp<'t>(&mut self, t: &'t Tables, port: u16, m: &mut Mbuf) -> Class<'t> {
        let Some(arp) = local::arp(m.data()) else {
            return Class::Drop(DropReason::Malformed);
        };
        self.learn(t, port, IpAddr::V4(arp.sender_ip), arp.sender_mac);
        if arp.is_request && t.locals.owns_on(port, IpAddr::V4(arp.target_ip)) {
            local::arp_reply(m.data_mut(), t.macs[port as usize]);
            return Class::ReplyOn(port);
        }
        Class::Consumed
    }

    fn learn(&self, t: &Tables, port: u16, addr: IpAddr, mac: Mac) {
        if t.neighbors.get(port, addr) != Some(&mac) {
            let _ = self.shared.to_control.push(ToControl::Neighbor { port, addr, mac });
        }
    }

    /// Encrypts a burst; each run of packets for one SA takes its sequence numbers at once.
    fn encrypt(&mut self, t: &Tables, burst: Burst<(Mbuf, &SaEntry)>) {
        let mut last = 0;
        (0..AHEAD).for_each(|j| prefetch_sa(&burst, j, &mut last, |s| s.prefetch_out(Cache::L1)));
        let mut burst = burst.into_iter();
        while let Some(&(_, sa)) = burst.as_slice().first() {
            let run = burst.as_slice().iter().take_while(|(_, s)| std::ptr::eq(*s, sa)).count();
            let first = sa.sa.reserve_seq(run as u64);
            let (mut sealed, mut bytes) = (0, 0);
            // A tunnel's packets all go to its remote end: routed once for the run.
            let tunnel = sa.sa.params().tunnel.map(|(_, remote)| (remote, self.next_hop(t, remote)));
            for k in 0..run {
                prefetch_sa(burst.as_slice(), AHEAD, &mut last, |s| s.prefetch_out(Cache::L1));
                let Some((mut m, _)) = burst.next() else { break };
                match first.and_then(|s| sa.sa.encap_seq(&mut m, s + k as u64)) {
                    Ok(len) => {
                        (sealed, bytes) = (sealed + 1, bytes + len as u64);
                        match tunnel {
                            Some((remote, Hop::Known(port, mac))) => self.send_eth(t, port, mac, remote.is_ipv4(), m),
                            Some((remote, _)) => self.route_to(t, m, remote),
                            None => self.route_out(t, m),
                        }
                    }
                    Err(e) => self.sa_drop(sa, DropReason::from(e)),
                }
            }
            sa.sa.count_many(sealed, bytes);
            self.shared.counters.encrypted.add(sealed);
        }
    }

    fn decrypt(&mut self, t: &Tables, burst: Burst<(Mbuf, &SaEntry)>) {
        let mut last = 0;
        (0..AHEAD).for_each(|j| prefetch_sa(&burst, j, &mut last, |s| s.prefetch_in(Cache::L1)));
        let mut burst = burst.into_iter();
        let mut decrypted = 0;
        while let Some((mut m, sa)) = burst.next() {
            prefetch_sa(burst.as_slice(), AHEAD - 1, &mut last, |s| s.prefetch_in(Cache::L1));
            if let Err(e) = sa.sa.decap(&mut m) {
                self.sa_drop(sa, DropReason::from(e));
                continue;
            }
            // Delivered only if the inner packet is one this SA may carry (RFC 4301 5.2).
            // The key is read where it was written (a copy of it out of a `Result` would
            // wait on store forwarding: a fifth of this loop's time at 64 B).
            let mut k = FlowKey::ZERO;
            let dst = match FlowKey::extract_into(m.data(), &mut k) {
                Ok(()) if sa.selectors.matches(&k) => k.dst(),
                _ => {
                    self.sa_drop(sa, DropReason::PolicyMismatch);
                    continue;
                }
            };
            decrypted += 1;
            if t.locals.is_local(dst) {
                // A ping to the gateway through the tunnel: answered like any other, and the
                // answer goes back through the SPD, so into the tunnel.
                match self.local(t, u16::MAX, &mut m) {
                    Class::Reply => self.originate(t, m),
                    Class::Drop(r) => self.drop(r, 1),
                    _ => self.shared.counters.local.add(1),
                }
                continue;
            }
            // The header is sound: `decap` checked it and the key was taken from it.
            if ip::hop_limit(m.data()) <= 1 {
                self.drop(DropReason::TtlExceeded, 1);
                continue;
            }
            ip::decrement_ttl(m.data_mut());
            self.route_to(t, m, dst);
        }
        self.shared.counters.decrypted.add(decrypted);
    }

    /// A packet of `sa` dropped for `r`: counted for the SA and the worker.
    fn sa_drop(&self, sa: &SaEntry, r: DropReason) {
        sa.drops.add(self.id, r);
        self.drop(r, 1);
    }

    /// Sends a packet the gateway itself originates (an echo reply, IKE) through the
    /// outbound SPD as transit traffic goes, so that nothing a policy protects leaves in
    /// clear. No policy: it is sent (the default action is for transit traffic).
    fn originate(&mut self, t: &Tables, mut m: Mbuf) {
        let Ok(key) = FlowKey::extract(m.data()) else {
            return self.drop(DropReason::Malformed, 1);
        };
        match t.spd.lookup(Direction::Outbound, &key) {
            Some((i, p)) if p.action == Action::Protect => {
                let Some(Some(sa)) = t.out_sa.get(i as usize) else {
                    return self.drop(DropReason::NoSa, 1);
                };
                match sa.sa.encap(&mut m) {
                    Ok(()) => {
                        self.shared.counters.encrypted.add(1);
                        self.route_out(t, m);
                    }
                    Err(e) => self.drop(DropReason::from(e), 1),
                }
            }
            Some((_, p)) if p.action == Action::Discard => self.drop(DropReason::Discard, 1),
            _ => self.route_out(t, m),
        }
    }

    /// Routes an IP packet, adds its Ethernet header and queues it for TX.
    fn route_out(&mut self, t: &Tables, m: Mbuf) {
        match IpView::parse(m.data()).map(|ip| ip.dst()) {
            Ok(dst) => self.route_to(t, m, dst),
            Err(_) => self.drop(DropReason::Malformed, 1),
        }
    }

    /// `route_out` for a packet whose destination the caller has at hand (it wrote or
    /// checked the header): the header just written is not read back.
    fn route_to(&mut self, t: &Tables, m: Mbuf, dst: IpAddr) {
        match self.next_hop(t, dst) {
            Hop::Known(port, mac) => self.send_eth(t, port, mac, dst.is_ipv4(), m),
            Hop::Unknown(nh) => {
                self.solicit(t, nh);
                self.park(nh, m)
            }
            Hop::NoRoute => self.drop(DropReason::NoRoute, 1),
        }
    }

    /// Where packets to `dst` go: from the cache of routed destinations (per tables epoch),
    /// else from the routes and neighbours.
    #[inline(always)]
    fn next_hop(&mut self, t: &Tables, dst: IpAddr) -> Hop {
        let slot = routed_slot(dst);
        let r = self.routed[slot];
        if r.epoch == self.epoch && r.dst == dst {
            return Hop::Known(r.port, r.mac);
        }
        let Some(nh) = t.routes.lookup(dst) else { return Hop::NoRoute };
        let Some(&mac) = t.neighbors.get(nh.port, nh.addr) else { return Hop::Unknown(nh) };
        self.routed[slot] = Routed { epoch: self.epoch, dst, port: nh.port, mac };
        Hop::Known(nh.port, mac)
    }

    /// Adds the Ethernet header for neighbour `mac` on `port` and queues the packet for TX.
    #[inline]
    fn send_eth(&mut self, t: &Tables, port: u16, mac: Mac, ipv4: bool, mut m: Mbuf) {
        let ethertype = if ipv4 { ethernet::ethertype::IPV4 } else { ethernet::ethertype::IPV6 };
        let Some(h) = PktBuf::prepend(&mut m, ethernet::HEADER_LEN) else {
            return self.drop(DropReason::NoRoom, 1);
        };
        local::write_eth(h, mac, t.macs[port as usize], ethertype);
        self.send(port, m);
    }

    fn park(&mut self, nh: NextHop, m: Mbuf) {
        match self.parked.iter_mut().find(|p| p.is_none()) {
            Some(slot) => {
                *slot = Some(Parked { nh, since: dpdk_sys::rdtsc(), m });
                self.nparked += 1;
            }
            None => self.drop(DropReason::NoNeighbor, 1),
        }
    }

    /// Sends the parked packets whose neighbour is now known; drops those waiting over a second.
    fn unpark(&mut self, t: &Tables) {
        let now = dpdk_sys::rdtsc();
        for i in 0..PARKED {
            let Some(p) = &self.parked[i] else { continue };
            let known = t.neighbors.get(p.nh.port, p.nh.addr).is_some();
            if !known && now.wrapping_sub(p.since) < self.solicit_gap * 1000 {
                continue;
            }
            let p = self.parked[i].take().expect("checked");
            self.nparked -= 1;
            if known {
                self.route_out(t, p.m);
            } else {
                self.drop(DropReason::NoNeighbor, 1);
            }
        }
    }

    /// Asks who has `nh` (ARP or NDP), a few times per millisecond at most.
    fn solicit(&mut self, t: &Tables, nh: NextHop) {
        let now = dpdk_sys::rdtsc();
        if now.wrapping_sub(self.last_solicit) < self.solicit_gap {
            return;
        }
        self.last_solicit = now;
        let Some(src) = t.locals.source_for(nh.port, nh.addr) else { return };
        let Some(mut m) = self.pool.alloc() else { return };
        if local::solicitation(&mut m, t.macs[nh.port as usize], src, nh.addr) {
            self.send(nh.port, m);
        }
    }

    fn send(&mut self, port: u16, m: Mbuf) {
        let q = &mut self.tx[port as usize];
        q.push(m);
        if q.is_full() {
            self.flush_port(port);
        }
    }

    fn flush(&mut self) {
        for p in 0..self.tx.len() {
            self.flush_port(p as u16);
        }
    }

    fn flush_port(&mut self, port: u16) {
        let q = &mut self.tx[port as usize];
        if q.is_empty() {
            return;
        }
        let sent = self.ports[port as usize].tx_burst(self.queue, q);
        let unsent = q.len();
        q.clear();
        self.shared.counters.tx_packets.add(sent as u64);
        if unsent > 0 {
            self.drop(DropReason::TxFull, unsent as u64);
        }
    }
}
