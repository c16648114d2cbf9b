//! The Security Policy Database (RFC 4301 section 4.4.1): priority-ordered selectors over
//! addresses, protocol and ports, each with PROTECT, BYPASS or DISCARD. Built once into an
//! immutable decision structure (tuple-space search) so a lookup among 10,000 policies costs a
//! few hash probes, not a scan.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Action {
    Protect,
    Bypass,
    Discard,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Direction {
    Outbound = 0,
    Inbound = 1,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpdError {
    /// Not `addr/len` with a valid address and a length within the family's width.
    InvalidPrefix(String),
    /// A selector whose source and destination are of different address families.
    FamilyMismatch {
        id: u32,
    },
    /// A port range whose low end is above its high end.
    EmptyPortRange {
        id: u32,
    },
    DuplicateId {
        id: u32,
    },
    TooManyPolicies,
}

impl fmt::Display for SpdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpdError::InvalidPrefix(s) => write!(f, "invalid prefix {s:?}"),
            SpdError::FamilyMismatch { id } => {
                write!(f, "policy {id}: source and destination differ in address family")
            }
            SpdError::EmptyPortRange { id } => write!(f, "policy {id}: empty port range"),
            SpdError::DuplicateId { id } => write!(f, "duplicate policy id {id}"),
            SpdError::TooManyPolicies => write!(f, "too many policies"),
        }
    }
}

impl std::error::Error for SpdError {}

/// The address bits of either family as one u128, IPv4 in the top 32 bits, so one mask
/// (`u128::MAX << (128 - len)`) serves both families.
#[inline]
fn v4_bits(a: [u8; 4]) -> u128 {
    (u32::from_be_bytes(a) as u128) << 96
}

#[inline]
fn ip_bits(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => v4_bits(a.octets()),
        IpAddr::V6(a) => u128::from_be_bytes(a.octets()),
    }
}

/// The top `len` bits; any `len` past 128 is all of them.
#[inline]
fn mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128u32.saturating_sub(len as u32)).unwrap_or(0)
}

/// An address prefix. `new` and `parse` clear the host bits ("10.1.0.5/24" is 10.1.0.0/24);
/// matching masks them anyway, so a prefix written as a struct literal matches the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// For lengths already validated (config, routes, traffic selectors): a length past the
    /// family's width is a bug, caught in debug builds and clamped in release ones rather than
    /// taking the control thread down. Use `try_new` or `parse` for untrusted input.
    pub fn new(addr: IpAddr, len: u8) -> Prefix {
        debug_assert!(len <= Self::width(&addr), "prefix length {len} too long for {addr}");
        Self::normalized(addr, len.min(Self::width(&addr)))
    }

    pub fn try_new(addr: IpAddr, len: u8) -> Result<Prefix, SpdError> {
        if len > Self::width(&addr) {
            return Err(SpdError::InvalidPrefix(format!("{addr}/{len}")));
        }
        Ok(Self::normalized(addr, len))
    }

    fn width(addr: &IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    fn normalized(addr: IpAddr, len: u8) -> Prefix {
        let bits = ip_bits(&addr) & mask(len);
        let addr = match addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(((bits >> 96) as u32).to_be_bytes())),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits.to_be_bytes())),
        };
        Prefix { addr, len }
    }

    /// 0.0.0.0/0.
    pub fn any_v4() -> Prefix {
        Prefix { addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED), len: 0 }
    }

    /// ::/0.
    pub fn any_v6() -> Prefix {
        Prefix { addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED), len: 0 }
    }

    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// False for an address of the other family.
    pub fn contains(&self, a: &IpAddr) -> bool {
        self.addr.is_ipv6() == a.is_ipv6() && ip_bits(a) & mask(self.len) == self.bits()
    }

    /// The network bits in the layout `mask` expects.
    #[inline]
    fn bits(&self) -> u128 {
        ip_bits(&self.addr) & mask(self.len)
    }
}

impl FromStr for Prefix {
    type Err = SpdError;

    /// `addr/len`, or a bare address for a host prefix.
    fn from_str(s: &str) -> Result<Prefix, SpdError> {
        let bad = || SpdError::InvalidPrefix(s.to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                (a.parse::<IpAddr>().map_err(|_| bad())?, Some(l.parse::<u8>().map_err(|_| bad())?))
            }
            None => (s.parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let len = len.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        Prefix::try_new(addr, len).map_err(|_| bad())
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// What a policy matches. Port ranges are inclusive; `(0, 65535)` is any port. Packets of
/// protocols without ports carry port 0 in their `FlowKey`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    pub src: Prefix,
    pub dst: Prefix,
    /// `None` is any protocol.
    pub proto: Option<u8>,
    pub sport: (u16, u16),
    pub dport: (u16, u16),
}

impl Selector {
    /// Any protocol and port between `src` and `dst`.
    pub fn new(src: Prefix, dst: Prefix) -> Selector {
        Selector { src, dst, proto: None, sport: (0, u16::MAX), dport: (0, u16::MAX) }
    }

    /// The reference semantics; `Spd::lookup` agrees with a priority-ordered scan of this.
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        Pattern::new(self).matches(key)
    }
}

/// A selector in `FlowKey`'s own layout: a key matches when its words agree with `net`
/// wherever `mask` has bits and its ports are in range. Built once for an inbound SA's
/// selector, it checks each decrypted packet with no conversion of either side.
#[derive(Clone, Copy, Debug)]
struct Pattern {
    net: [u64; 5],
    mask: [u64; 5],
    /// (low, high - low): a port is in range when `port - low` (wrapping) is at most the second.
    sport: (u16, u16),
    dport: (u16, u16),
}

impl Pattern {
    fn new(s: &Selector) -> Pattern {
        let (sn, sm) = prefix_words(&s.src);
        let (dn, dm) = prefix_words(&s.dst);
        // A selector no packet can match (families differ, a port range is empty) asks for
        // family 0xff, which no key has.
        let empty = s.src.is_ipv6() != s.dst.is_ipv6() || s.sport.0 > s.sport.1 || s.dport.0 > s.dport.1;
        let family = if empty { 0xff } else if s.src.is_ipv6() { 6 } else { 4 };
        let (proto, proto_mask) = s.proto.map_or((0, 0), |p| (p, 0xff));
        Pattern {
            net: [sn[0], sn[1], dn[0], dn[1], tail(proto, 0, 0, family)],
            mask: [sm[0], sm[1], dm[0], dm[1], tail(proto_mask, 0, 0, 0xff)],
            sport: (s.sport.0, s.sport.1.wrapping_sub(s.sport.0)),
            dport: (s.dport.0, s.dport.1.wrapping_sub(s.dport.0)),
        }
    }

    #[inline]
    fn matches(&self, key: &FlowKey) -> bool {
        let miss = (0..5).fold(0, |m, i| m | (key.w[i] ^ self.net[i]) & self.mask[i]);
        miss == 0
            && key.sport().wrapping_sub(self.sport.0) <= self.sport.1
            && key.dport().wrapping_sub(self.dport.0) <= self.dport.1
    }
}

/// A prefix's network bits as the two words a `FlowKey` keeps its address in, and their mask.
fn prefix_words(p: &Prefix) -> ([u64; 2], [u64; 2]) {
    let m = mask(p.len);
    let (a, m) = match p.addr {
        IpAddr::V4(a) => ([word4(a.octets()), 0], [word4(((m >> 96) as u32).to_be_bytes()), 0]),
        IpAddr::V6(a) => {
            let ((a0, a1), (m0, m1)) = (words16(&a.octets()), words16(&m.to_be_bytes()));
            ([a0, a1], [m0, m1])
        }
    };
    ([a[0] & m[0], a[1] & m[1]], m)
}

/// What an inbound SA may carry (RFC 4301 5.2, step 4): a decrypted packet must match one
/// of these. A few are tried in turn; more are classified as the SPD classifies its
/// policies, so that a tunnel with thousands of subnets costs a packet what one with a
/// single subnet does (a scan of 100,000 took 0.17 ms a packet).
#[derive(Clone, Default)]
#[repr(C)]
pub struct Selectors {
    /// One selector (the common case: a tunnel between two subnets) as a pattern, first, so
    /// that the check reads only the lines `SaEntry::prefetch_in` fetched.
    one: Option<Pattern>,
    list: Vec<Selector>,
    /// The same selectors as inbound policies, when there are more than `SCAN_MAX`.
    index: Option<Arc<Spd>>,
}

/// Up to this many selectors, a scan is cheaper than the classifier's hash probes.
const SCAN_MAX: usize = 8;

impl Selectors {
    /// How many bytes from its start the one-selector check reads.
    pub const HOT_BYTES: usize = std::mem::size_of::<Option<Pattern>>();

    pub fn new(list: Vec<Selector>) -> Selectors {
        let index = if list.len() > SCAN_MAX {
            let policies = list
                .iter()
                .enumerate()
                .map(|(i, &sel)| Policy { id: i as u32, priority: 0, dir: Direction::Inbound, sel, action: Action::Protect })
                .collect();
            // Refused only for selectors no packet can match (mixed families, empty port
            // ranges): the scan then decides, exactly as before.
            Spd::new(policies).ok().map(Arc::new)
        } else {
            None
        };
        let one = match list[..] {
            [one] => Some(Pattern::new(&one)),
            _ => None,
        };
        Selectors { one, list, index }
    }

    pub fn as_slice(&self) -> &[Selector] {
        &self.list
    }

    /// Whether `key` matches any of the selectors.
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        match (&self.one, &self.index) {
            (Some(p), _) => p.matches(key),
            (None, Some(spd)) => spd.lookup(Direction::Inbound, key).is_some(),
            (None, None) => self.list.iter().any(|s| s.matches(key)),
        }
    }
}

impl From<Vec<Selector>> for Selectors {
    fn from(list: Vec<Selector>) -> Selectors {
        Selectors::new(list)
    }
}

impl fmt::Debug for Selectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selectors").field("list", &self.as_slice()).field("indexed", &self.index.is_some()).finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub id: u32,
    /// Lower is tried first; ties go to the policy given first.
    pub priority: u32,
    pub dir: Direction,
    pub sel: Selector,
    pub action: Action,
}

/// A packet's 5-tuple as five machine words: each address as two words of its 16 bytes
/// (IPv4 zero-padded), then ports, protocol and family. Built and read a word at a time, so
/// hashing and comparing a key just built never stall on store forwarding.
#[derive(Clone, Copy, Debug, Eq)]
pub struct FlowKey {
    /// src[0..8], src[8..16], dst[0..8], dst[8..16] in native order; sport << 48 | dport << 32 |
    /// proto << 8 | family (4 or 6).
    w: [u64; 5],
}

impl PartialEq for FlowKey {
    /// Branch-free over the five words (a derived `==` on the array calls `memcmp`).
    #[inline]
    fn eq(&self, o: &FlowKey) -> bool {
        let (a, b) = (&self.w, &o.w);
        (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) == 0
    }
}

impl std::hash::Hash for FlowKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.w.iter().for_each(|&x| h.write_u64(x));
    }
}

#[inline]
fn words16(b: &[u8; 16]) -> (u64, u64) {
    (
        u64::from_ne_bytes(b[..8].try_into().unwrap()),
        u64::from_ne_bytes(b[8..].try_into().unwrap()),
    )
}

#[inline]
fn word4(b: [u8; 4]) -> u64 {
    u64::from_ne_bytes([b[0], b[1], b[2], b[3], 0, 0, 0, 0])
}

#[inline]
fn tail(proto: u8, sport: u16, dport: u16, family: u8) -> u64 {
    (sport as u64) << 48 | (dport as u64) << 32 | (proto as u64) << 8 | family as u64
}

impl FlowKey {
    /// All zero: a placeholder, matching no real packet (family 0).
    pub const ZERO: FlowKey = FlowKey { w: [0; 5] };

    #[inline]
    pub fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.set_v4(src, dst, proto, sport, dport);
        k
    }

    /// Sets an IPv4 key word by word, in place.
    #[inline]
    pub fn set_v4(&mut self, src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) {
        self.w[0] = word4(src);
        self.w[1] = 0;
        self.w[2] = word4(dst);
        self.w[3] = 0;
        self.w[4] = tail(proto, sport, dport, 4);
    }

    #[inline]
    pub fn v6(src: [u8; 16], dst: [u8; 16], proto: u8, sport: u16, dport: u16) -> FlowKey {
        let ((s0, s1), (d0, d1)) = (words16(&src), words16(&dst));
        FlowKey { w: [s0, s1, d0, d1, tail(proto, sport, dport, 6)] }
    }

    /// `None` when `src` and `dst` are of different families.
    pub fn new(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> Option<FlowKey> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                Some(FlowKey::v4(s.octets(), d.octets(), proto, sport, dport))
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                Some(FlowKey::v6(s.octets(), d.octets(), proto, sport, dport))
            }
            _ => None,
        }
    }

    #[inline]
    pub fn is_ipv6(&self) -> bool {
        self.w[4] as u8 == 6
    }

    pub fn src(&self) -> IpAddr {
        self.addr(0)
    }

    pub fn dst(&self) -> IpAddr {
        self.addr(2)
    }

    #[inline]
    pub fn proto(&self) -> u8 {
        (self.w[4] >> 8) as u8
    }

    #[inline]
    pub fn sport(&self) -> u16 {
        (self.w[4] >> 48) as u16
    }

    #[inline]
    pub fn dport(&self) -> u16 {
        (self.w[4] >> 32) as u16
    }

    /// The address whose words start at `i`, as a big-endian number.
    #[inline]
    fn addr_bits(&self, i: usize) -> u128 {
        (u64::from_be(self.w[i]) as u128) << 64 | u64::from_be(self.w[i + 1]) as u128
    }

    fn addr(&self, i: usize) -> IpAddr {
        let b = self.addr_bits(i);
        if self.is_ipv6() {
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            IpAddr::V4(Ipv4Addr::from((b >> 96) as u32))
        }
    }

    /// (src, dst) in the layout `mask` expects: IPv4 in the top 32 bits, as `v4_bits` puts it.
    #[inline]
    fn bits(&self) -> (u128, u128) {
        (self.addr_bits(0), self.addr_bits(2))
    }

    /// A fast 32-bit hash for when the NIC gave no RSS hash: the words rotated apart and
    /// folded, then one multiply (the flow cache takes its bucket from the high bits). Not
    /// keyed: the flow cache it feeds is per worker and bounded, so colliding flows only slow
    /// each other.
    #[inline]
    pub fn hash32(&self) -> u32 {
        let [a, b, c, d, e] = self.w;
        let x = a ^ b.rotate_left(13) ^ c.rotate_left(29) ^ d.rotate_left(43) ^ e.rotate_left(53);
        let h = (x ^ (x >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 32) as u32
    }
}

/// Multiply-rotate absorption with a murmur3 finalizer: fast on the few words we hash, and the
/// finalizer spreads the IPv4 bits (which sit high in the u128) into the low bits hashbrown uses.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }

    #[inline]
    fn write_u128(&mut self, x: u128) {
        self.write_u64(x as u64);
        self.write_u64((x >> 64) as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Masked (dst, src) of one tuple.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Masked {
    dst: u128,
    src: u128,
}

impl Hash for Masked {
    /// Folds the four words into one before mixing: one multiply chain instead of four on the
    /// lookup path (a few ns a probe). The rotation puts an IPv4 source (bits 96..128) and
    /// destination in disjoint halves, so IPv4 pairs never collide before the mix.
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        let w = |x: u128, r: u32| (x as u64) ^ ((x >> 64) as u64).rotate_left(r);
        h.write_u64(w(self.dst, 0) ^ w(self.src, 32));
    }
}

/// The part of a policy left to check once its addresses matched.
#[derive(Clone, Copy)]
struct Cand {
    /// priority << 32 | input index: the order policies are tried in.
    order: u64,
    /// 256 is any protocol.
    proto: u16,
    sport: (u16, u16),
    dport: (u16, u16),
}

impl Cand {
    #[inline]
    fn matches(&self, key: &FlowKey) -> bool {
        (self.proto == 256 || self.proto == key.proto() as u16)
            && self.sport.0 <= key.sport()
            && key.sport() <= self.sport.1
            && self.dport.0 <= key.dport()
            && key.dport() <= self.dport.1
    }
}

/// All policies of one (dst length, src length) pair: the masked key addresses pick the one
/// list of candidates whose addresses match, ordered as they are tried.
struct Tuple {
    dst_mask: u128,
    src_mask: u128,
    /// The smallest `order` in this tuple: once a match beats it, the tuple cannot do better.
    first: u64,
    lists: HashMap<Masked, (u32, u32), BuildHasherDefault<Mix>>,
}

/// While building: (dst len, src len) -> masked addresses -> candidates in input order.
type Groups = HashMap<(u8, u8), HashMap<Masked, Vec<Cand>>>;

/// One direction and family.
#[derive(Default)]
struct Table {
    /// Sorted by `first`, so a lookup stops at the first tuple that cannot beat its match.
    tuples: Vec<Tuple>,
    cands: Vec<Cand>,
}

/// The policies, immutable once built.
pub struct Spd {
    policies: Vec<Policy>,
    /// [direction][is_ipv6]
    tables: [[Table; 2]; 2],
}

impl Spd {
    pub fn new(policies: Vec<Policy>) -> Result<Spd, SpdError> {
        if policies.len() >= u32::MAX as usize {
            return Err(SpdError::TooManyPolicies);
        }
        let mut ids = std::collections::HashSet::new();
        // [dir][v6]
        let mut groups: [[Groups; 2]; 2] = Default::default();
        for (i, p) in policies.iter().enumerate() {
            let s = &p.sel;
            if s.src.is_ipv6() != s.dst.is_ipv6() {
                return Err(SpdError::FamilyMismatch { id: p.id });
            }
            if s.sport.0 > s.sport.1 || s.dport.0 > s.dport.1 {
                return Err(SpdError::EmptyPortRange { id: p.id });
            }
            if !ids.insert(p.id) {
                return Err(SpdError::DuplicateId { id: p.id });
            }
            let cand = Cand {
                order: (p.priority as u64) << 32 | i as u64,
                proto: s.proto.map_or(256, u16::from),
                sport: s.sport,
                dport: s.dport,
            };
            let masked = Masked { dst: s.dst.bits(), src: s.src.bits() };
            groups[p.dir as usize][s.dst.is_ipv6() as usize]
                .entry((s.dst.len, s.src.len))
                .or_default()
                .entry(masked)
                .or_default()
                .push(cand);
        }
        let tables = groups.map(|fams| fams.map(Table::build));
        Ok(Spd { policies, tables })
    }

    /// The policy that decides `key`: of those that match, the lowest priority value, then
    /// the first given. Returns its index in `policies()` too.
    #[inline]
    pub fn lookup(&self, dir: Direction, key: &FlowKey) -> Option<(u32, &Policy)> {
        let t = &self.tables[dir as usize][key.is_ipv6() as usize];
        let (src, dst) = key.bits();
        let mut best = u64::MAX;
        for tu in &t.tuples {
            if tu.first >= best {
                break;
            }
            if let Some(&(start, len)) =
                tu.lists.get(&Masked { dst: dst & tu.dst_mask, src: src & tu.src_mask })
            {
                for c in &t.cands[start as usize..(start + len) as usize] {
                    if c.order >= best {
                        break;
                    }
                    if c.matches(key) {
                        best = c.order;
                        break;
                    }
                }
            }
        }
        (best != u64::MAX).then(|| {
            let i = best as u32;
            (i, &self.policies[i as usize])
        })
    }

    /// The policies in the order given.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

impl Table {
    fn build(groups: Groups) -> Table {
        let mut t = Table::default();
        for ((dst_len, src_len), lists) in groups {
            let mut tu = Tuple {
                dst_mask: mask(dst_len),
                src_mask: mask(src_len),
                first: u64::MAX,
                lists: HashMap::with_capacity_and_hasher(lists.len(), Default::default()),
            };
            for (masked, mut cands) in lists {
                cands.sort_by_key(|c| c.order);
                tu.first = tu.first.min(cands[0].order);
                tu.lists.insert(masked, (t.cands.len() as u32, cands.len() as u32));
                t.cands.extend(cands);
            }
            t.tuples.push(tu);
        }
        t.tuples.sort_by_key(|tu| tu.first);
        t
    }
}
