//! IKEv2 message codec (RFC 7296 section 3, RFC 7383 SKF): header, payload chain and every
//! payload the engine uses. Parsing is bounds-checked everywhere: bad bytes are an `Err`.

use std::net::IpAddr;

pub const HDR_LEN: usize = 28;
pub const GEN_HDR_LEN: usize = 4;

pub mod exchange {
    pub const IKE_SA_INIT: u8 = 34;
    pub const IKE_AUTH: u8 = 35;
    pub const CREATE_CHILD_SA: u8 = 36;
    pub const INFORMATIONAL: u8 = 37;
}

pub mod flags {
    pub const INITIATOR: u8 = 0x08;
    pub const VERSION: u8 = 0x10;
    pub const RESPONSE: u8 = 0x20;
}

pub mod ptype {
    pub const NONE: u8 = 0;
    pub const SA: u8 = 33;
    pub const KE: u8 = 34;
    pub const IDI: u8 = 35;
    pub const IDR: u8 = 36;
    pub const CERT: u8 = 37;
    pub const CERTREQ: u8 = 38;
    pub const AUTH: u8 = 39;
    pub const NONCE: u8 = 40;
    pub const NOTIFY: u8 = 41;
    pub const DELETE: u8 = 42;
    pub const VENDOR: u8 = 43;
    pub const TSI: u8 = 44;
    pub const TSR: u8 = 45;
    pub const SK: u8 = 46;
    pub const CP: u8 = 47;
    pub const EAP: u8 = 48;
    pub const SKF: u8 = 53;
}

/// Notify message types (IANA registry) the engine sends or understands.
pub mod notify {
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    pub const INVALID_IKE_SPI: u16 = 4;
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    pub const INVALID_SYNTAX: u16 = 7;
    pub const INVALID_MESSAGE_ID: u16 = 9;
    pub const INVALID_SPI: u16 = 11;
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    pub const AUTHENTICATION_FAILED: u16 = 24;
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    pub const INTERNAL_ADDRESS_FAILURE: u16 = 36;
    pub const FAILED_CP_REQUIRED: u16 = 37;
    pub const TS_UNACCEPTABLE: u16 = 38;
    pub const INVALID_SELECTORS: u16 = 39;
    pub const TEMPORARY_FAILURE: u16 = 43;
    pub const CHILD_SA_NOT_FOUND: u16 = 44;
    pub const INITIAL_CONTACT: u16 = 16384;
    pub const SET_WINDOW_SIZE: u16 = 16385;
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    pub const COOKIE: u16 = 16390;
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    pub const REKEY_SA: u16 = 16393;
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: u16 = 16394;
    pub const NON_FIRST_FRAGMENTS_ALSO: u16 = 16395;
    pub const IKEV2_FRAGMENTATION_SUPPORTED: u16 = 16430;
    pub const SIGNATURE_HASH_ALGORITHMS: u16 = 16431;
}

pub mod proto {
    pub const IKE: u8 = 1;
    pub const AH: u8 = 2;
    pub const ESP: u8 = 3;
}

pub mod ttype {
    pub const ENCR: u8 = 1;
    pub const PRF: u8 = 2;
    pub const INTEG: u8 = 3;
    pub const DH: u8 = 4;
    pub const ESN: u8 = 5;
}

pub const ATTR_KEY_LENGTH: u16 = 14;
pub const AUTH_SHARED_KEY_MIC: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Truncated,
    BadLength,
    BadVersion,
    /// A payload with the critical bit set that we do not understand (type given).
    UnsupportedCritical(u8),
    Malformed,
}

pub type Result<T> = std::result::Result<T, ParseError>;

fn be16(b: &[u8], at: usize) -> Result<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]])).ok_or(ParseError::Truncated)
}
fn be32(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(ParseError::Truncated)
}
fn be64(b: &[u8], at: usize) -> Result<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_be_bytes(s.try_into().unwrap()))
        .ok_or(ParseError::Truncated)
}

/// IKE header (RFC 7296 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: u8,
    pub version: u8,
    pub exchange: u8,
    pub flags: u8,
    pub msg_id: u32,
    pub length: u32,
}

impl Header {
    pub fn parse(b: &[u8]) -> Result<Header> {
        if b.len() < HDR_LEN {
            return Err(ParseError::Truncated);
        }
        let h = Header {
            spi_i: be64(b, 0)?,
            spi_r: be64(b, 8)?,
            next_payload: b[16],
            version: b[17],
            exchange: b[18],
            flags: b[19],
            msg_id: be32(b, 20)?,
            length: be32(b, 24)?,
        };
        if h.version >> 4 != 2 {
            return Err(ParseError::BadVersion);
        }
        if (h.length as usize) < HDR_LEN || h.length as usize > b.len() {
            return Err(ParseError::BadLength);
        }
        Ok(h)
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.push(self.next_payload);
        out.push(self.version);
        out.push(self.exchange);
        out.push(self.flags);
        out.extend_from_slice(&self.msg_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }

    pub fn is_response(&self) -> bool {
        self.flags & flags::RESPONSE != 0
    }
    pub fn from_initiator(&self) -> bool {
        self.flags & flags::INITIATOR != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub ttype: u8,
    pub id: u16,
    pub key_len: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub num: u8,
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

impl Proposal {
    pub fn of_type(&self, t: u8) -> impl Iterator<Item = &Transform> {
        self.transforms.iter().filter(move |x| x.ttype == t)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub ntype: u16,
    pub data: Vec<u8>,
}

impl Notify {
    pub fn new(ntype: u16, data: Vec<u8>) -> Notify {
        Notify { protocol: 0, spi: Vec::new(), ntype, data }
    }
    pub fn is_error(&self) -> bool {
        self.ntype < 16384
    }
}

/// Traffic selector (RFC 7296 3.13.1); addresses are both v4 or both v6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub ip_proto: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start_addr: IpAddr,
    pub end_addr: IpAddr,
}

impl TrafficSelector {
    pub const TS_IPV4_ADDR_RANGE: u8 = 7;
    pub const TS_IPV6_ADDR_RANGE: u8 = 8;

    /// Any protocol, any port, the given prefix.
    pub fn from_prefix(addr: IpAddr, prefix: u8) -> TrafficSelector {
        let (start, end) = match addr {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix.min(32)) };
                (IpAddr::V4((a & mask).into()), IpAddr::V4((a | !mask).into()))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix.min(128)) };
                (IpAddr::V6((a & mask).into()), IpAddr::V6((a | !mask).into()))
            }
        };
        TrafficSelector { ip_proto: 0, start_port: 0, end_port: 65535, start_addr: start, end_addr: end }
    }

    fn addr_key(a: IpAddr) -> (u8, u128) {
        match a {
            IpAddr::V4(v) => (4, u32::from(v) as u128),
            IpAddr::V6(v) => (6, u128::from(v)),
        }
    }

    /// Intersection of two selectors (RFC 7296 2.9 narrowing), `None` when empty.
    pub fn intersect(&self, o: &TrafficSelector) -> Option<TrafficSelector> {
        let (fa, s1) = Self::addr_key(self.start_addr);
        let (_, e1) = Self::addr_key(self.end_addr);
        let (fb, s2) = Self::addr_key(o.start_addr);
        let (_, e2) = Self::addr_key(o.end_addr);
        if fa != fb {
            return None;
        }
        let proto = match (self.ip_proto, o.ip_proto) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let (s, e) = (s1.max(s2), e1.min(e2));
        let (sp, ep) = (self.start_port.max(o.start_port), self.end_port.min(o.end_port));
        if s > e || sp > ep {
            return None;
        }
        let mk = |v: u128| -> IpAddr {
            if fa == 4 {
                IpAddr::V4((v as u32).into())
            } else {
                IpAddr::V6(v.into())
            }
        };
        Some(TrafficSelector { ip_proto: proto, start_port: sp, end_port: ep, start_addr: mk(s), end_addr: mk(e) })
    }

    fn parse(b: &[u8]) -> Result<(TrafficSelector, usize)> {
        let ts_type = *b.first().ok_or(ParseError::Truncated)?;
        let ip_proto = *b.get(1).ok_or(ParseError::Truncated)?;
        let len = be16(b, 2)? as usize;
        let alen = match ts_type {
            Self::TS_IPV4_ADDR_RANGE => 4,
            Self::TS_IPV6_ADDR_RANGE => 16,
            _ => return Err(ParseError::Malformed),
        };
        if len != 8 + 2 * alen || b.len() < len {
            return Err(ParseError::BadLength);
        }
        let addr = |at: usize| -> IpAddr {
            if alen == 4 {
                IpAddr::V4(<[u8; 4]>::try_from(&b[at..at + 4]).unwrap().into())
            } else {
                IpAddr::V6(<[u8; 16]>::try_from(&b[at..at + 16]).unwrap().into())
            }
        };
        Ok((
            TrafficSelector {
                ip_proto,
                start_port: be16(b, 4)?,
                end_port: be16(b, 6)?,
                start_addr: addr(8),
                end_addr: addr(8 + alen),
            },
            len,
        ))
    }

    fn emit(&self, out: &mut Vec<u8>) {
        let v4 = self.start_addr.is_ipv4();
        out.push(if v4 { Self::TS_IPV4_ADDR_RANGE } else { Self::TS_IPV6_ADDR_RANGE });
        out.push(self.ip_proto);
        out.extend_from_slice(&(if v4 { 16u16 } else { 40 }).to_be_bytes());
        out.extend_from_slice(&self.start_port.to_be_bytes());
        out.extend_from_slice(&self.end_port.to_be_bytes());
        for a in [self.start_addr, self.end_addr] {
            match a {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
    }
}

/// A decoded payload. The SK and SKF payloads are not in this enum: they are located by
/// [`parse_message`] and decrypted by the crypto layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<Proposal>),
    Ke { group: u16, data: Vec<u8> },
    IdI { id_type: u8, data: Vec<u8> },
    IdR { id_type: u8, data: Vec<u8> },
    Auth { method: u8, data: Vec<u8> },
    Nonce(Vec<u8>),
    Notify(Notify),
    Delete { protocol: u8, spis: Vec<u32> },
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    VendorId(Vec<u8>),
    /// CERT, CERTREQ, CP, EAP and unknown non-critical payloads: kept as opaque bytes.
    Other { ptype: u8, data: Vec<u8> },
}

impl Payload {
    pub fn ptype(&self) -> u8 {
        match self {
            Payload::Sa(_) => ptype::SA,
            Payload::Ke { .. } => ptype::KE,
            Payload::IdI { .. } => ptype::IDI,
            Payload::IdR { .. } => ptype::IDR,
            Payload::Auth { .. } => ptype::AUTH,
            Payload::Nonce(_) => ptype::NONCE,
            Payload::Notify(_) => ptype::NOTIFY,
            Payload::Delete { .. } => ptype::DELETE,
            Payload::TsI(_) => ptype::TSI,
            Payload::TsR(_) => ptype::TSR,
            Payload::VendorId(_) => ptype::VENDOR,
            Payload::Other { ptype, .. } => *ptype,
        }
    }

    fn parse(pt: u8, body: &[u8]) -> Result<Option<Payload>> {
        Ok(Some(match pt {
            ptype::SA => Payload::Sa(parse_sa(body)?),
            ptype::KE => {
                if body.len() < 4 {
                    return Err(ParseError::Truncated);
                }
                Payload::Ke { group: be16(body, 0)?, data: body[4..].to_vec() }
            }
            ptype::IDI | ptype::IDR => {
                if body.len() < 4 {
                    return Err(ParseError::Truncated);
                }
                let (id_type, data) = (body[0], body[4..].to_vec());
                if pt == ptype::IDI {
                    Payload::IdI { id_type, data }
                } else {
                    Payload::IdR { id_type, data }
                }
            }
            ptype::AUTH => {
                if body.len() < 4 {
                    return Err(ParseError::Truncated);
                }
                Payload::Auth { method: body[0], data: body[4..].to_vec() }
            }
            ptype::NONCE => {
                if body.len() < 16 || body.len() > 256 {
                    return Err(ParseError::BadLength);
                }
                Payload::Nonce(body.to_vec())
            }
            ptype::NOTIFY => {
                if body.len() < 4 {
                    return Err(ParseError::Truncated);
                }
                let spi_len = body[1] as usize;
                let spi = body.get(4..4 + spi_len).ok_or(ParseError::Truncated)?.to_vec();
                Payload::Notify(Notify {
                    protocol: body[0],
                    spi,
                    ntype: be16(body, 2)?,
                    data: body[4 + spi_len..].to_vec(),
                })
            }
            ptype::DELETE => {
                if body.len() < 4 {
                    return Err(ParseError::Truncated);
                }
                let (protocol, spi_size, n) = (body[0], body[1] as usize, be16(body, 2)? as usize);
                let mut spis = Vec::new();
                match (protocol, spi_size) {
                    (proto::IKE, 0) if n == 0 => {}
                    (proto::ESP | proto::AH, 4) => {
                        if body.len() != 4 + 4 * n {
                            return Err(ParseError::BadLength);
                        }
                        for i in 0..n {
                            spis.push(be32(body, 4 + 4 * i)?);
                        }
                    }
                    _ => return Err(ParseError::Malformed),
                }
                Payload::Delete { protocol, spis }
            }
            ptype::TSI | ptype::TSR => {
                if body.len() < 4 {
                    return Err(ParseError::Truncated);
                }
                let n = body[0] as usize;
                let mut v = Vec::with_capacity(n.min(16));
                let mut off = 4;
                for _ in 0..n {
                    let (ts, l) = TrafficSelector::parse(&body[off..])?;
                    v.push(ts);
                    off += l;
                }
                if off != body.len() || n == 0 {
                    return Err(ParseError::BadLength);
                }
                if pt == ptype::TSI {
                    Payload::TsI(v)
                } else {
                    Payload::TsR(v)
                }
            }
            ptype::VENDOR => Payload::VendorId(body.to_vec()),
            ptype::CERT | ptype::CERTREQ | ptype::CP | ptype::EAP => {
                Payload::Other { ptype: pt, data: body.to_vec() }
            }
            _ => return Ok(None),
        }))
    }

    fn emit_body(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(props) => emit_sa(props, out),
            Payload::Ke { group, data } => {
                out.extend_from_slice(&group.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(data);
            }
            Payload::IdI { id_type, data } | Payload::IdR { id_type, data } => {
                out.extend_from_slice(&[*id_type, 0, 0, 0]);
                out.extend_from_slice(data);
            }
            Payload::Auth { method, data } => {
                out.extend_from_slice(&[*method, 0, 0, 0]);
                out.extend_from_slice(data);
            }
            Payload::Nonce(n) => out.extend_from_slice(n),
            Payload::Notify(n) => {
                out.push(n.protocol);
                out.push(n.spi.len() as u8);
                out.extend_from_slice(&n.ntype.to_be_bytes());
                out.extend_from_slice(&n.spi);
                out.extend_from_slice(&n.data);
            }
            Payload::Delete { protocol, spis } => {
                out.push(*protocol);
                out.push(if *protocol == proto::IKE { 0 } else { 4 });
                out.extend_from_slice(&(spis.len() as u16).to_be_bytes());
                for s in spis {
                    out.extend_from_slice(&s.to_be_bytes());
                }
            }
            Payload::TsI(ts) | Payload::TsR(ts) => {
                out.extend_from_slice(&[ts.len() as u8, 0, 0, 0]);
                for t in ts {
                    t.emit(out);
                }
            }
            Payload::VendorId(d) | Payload::Other { data: d, .. } => out.extend_from_slice(d),
        }
    }
}

fn parse_sa(b: &[u8]) -> Result<Vec<Proposal>> {
    let mut props = Vec::new();
    let mut off = 0;
    loop {
        let p = b.get(off..).ok_or(ParseError::Truncated)?;
        if p.len() < 8 {
            return Err(ParseError::Truncated);
        }
        let last = p[0];
        let plen = be16(p, 2)? as usize;
        if plen < 8 || plen > p.len() {
            return Err(ParseError::BadLength);
        }
        let p = &p[..plen];
        let (num, protocol, spi_size, ntrans) = (p[4], p[5], p[6] as usize, p[7] as usize);
        let spi = p.get(8..8 + spi_size).ok_or(ParseError::Truncated)?.to_vec();
        let mut toff = 8 + spi_size;
        let mut transforms = Vec::with_capacity(ntrans.min(32));
        for _ in 0..ntrans {
            let t = p.get(toff..).ok_or(ParseError::Truncated)?;
            if t.len() < 8 {
                return Err(ParseError::Truncated);
            }
            let tlen = be16(t, 2)? as usize;
            if tlen < 8 || tlen > t.len() {
                return Err(ParseError::BadLength);
            }
            let mut key_len = None;
            let mut aoff = 8;
            while aoff < tlen {
                let a = &t[aoff..tlen];
                let atype = be16(a, 0)?;
                if atype & 0x8000 != 0 {
                    if atype & 0x7fff == ATTR_KEY_LENGTH {
                        key_len = Some(be16(a, 2)?);
                    }
                    aoff += 4;
                } else {
                    let alen = be16(a, 2)? as usize;
                    aoff += 4 + alen;
                }
            }
            if aoff != tlen {
                return Err(ParseError::BadLength);
            }
            transforms.push(Transform { ttype: t[4], id: be16(t, 6)?, key_len });
            toff += tlen;
        }
        if toff != plen {
            return Err(ParseError::BadLength);
        }
        props.push(Proposal { num, protocol, spi, transforms });
        off += plen;
        match last {
            0 => break,
            2 => continue,
            _ => return Err(ParseError::Malformed),
        }
    }
    if off != b.len() {
        return Err(ParseError::BadLength);
    }
    Ok(props)
}

fn emit_sa(props: &[Proposal], out: &mut Vec<u8>) {
    for (i, p) in props.iter().enumerate() {
        let start = out.len();
        out.extend_from_slice(&[if i + 1 == props.len() { 0 } else { 2 }, 0, 0, 0]);
        out.extend_from_slice(&[p.num, p.protocol, p.spi.len() as u8, p.transforms.len() as u8]);
        out.extend_from_slice(&p.spi);
        for (j, t) in p.transforms.iter().enumerate() {
            let last = j + 1 == p.transforms.len();
            let tlen: u16 = if t.key_len.is_some() { 12 } else { 8 };
            out.extend_from_slice(&[if last { 0 } else { 3 }, 0]);
            out.extend_from_slice(&tlen.to_be_bytes());
            out.extend_from_slice(&[t.ttype, 0]);
            out.extend_from_slice(&t.id.to_be_bytes());
            if let Some(k) = t.key_len {
                out.extend_from_slice(&(0x8000 | ATTR_KEY_LENGTH).to_be_bytes());
                out.extend_from_slice(&k.to_be_bytes());
            }
        }
        let len = (out.len() - start) as u16;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// Emit a chain of payloads; returns the type of the first (for the previous next-payload
/// field). `last_next` is the next-payload value of the last payload (0 except before SK).
pub fn emit_chain(payloads: &[Payload], out: &mut Vec<u8>) -> u8 {
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads.get(i + 1).map_or(0, |n| n.ptype());
        let start = out.len();
        out.extend_from_slice(&[next, 0, 0, 0]);
        p.emit_body(out);
        let len = (out.len() - start) as u16;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    payloads.first().map_or(0, |p| p.ptype())
}

/// Where the SK or SKF payload sits in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedRef {
    /// `SK` or `SKF`.
    pub ptype: u8,
    /// Next-payload field of the SK/SKF header: the first inner payload.
    pub first_inner: u8,
    /// Offset of the SK/SKF generic header in the message.
    pub offset: usize,
    /// Payload length including its generic header.
    pub len: usize,
}

/// Result of parsing the outer (unencrypted) part of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub header: Header,
    pub payloads: Vec<Payload>,
    pub encrypted: Option<EncryptedRef>,
}

/// Parse a payload chain starting with type `first`. When `allow_sk`, an SK/SKF payload ends
/// the chain and its position (relative to `base_off`) is returned.
pub fn parse_chain(
    first: u8,
    b: &[u8],
    base_off: usize,
    allow_sk: bool,
) -> Result<(Vec<Payload>, Option<EncryptedRef>)> {
    let mut out = Vec::new();
    let mut next = first;
    let mut off = 0;
    while next != ptype::NONE {
        let g = b.get(off..).ok_or(ParseError::Truncated)?;
        if g.len() < GEN_HDR_LEN {
            return Err(ParseError::Truncated);
        }
        let (np, critical, plen) = (g[0], g[1] & 0x80 != 0, be16(g, 2)? as usize);
        if plen < GEN_HDR_LEN || plen > g.len() {
            return Err(ParseError::BadLength);
        }
        if allow_sk && (next == ptype::SK || next == ptype::SKF) {
            if off + plen != b.len() {
                return Err(ParseError::BadLength);
            }
            let r = EncryptedRef { ptype: next, first_inner: np, offset: base_off + off, len: plen };
            return Ok((out, Some(r)));
        }
        match Payload::parse(next, &g[GEN_HDR_LEN..plen])? {
            Some(p) => out.push(p),
            None if critical => return Err(ParseError::UnsupportedCritical(next)),
            None => {}
        }
        if out.len() > 64 {
            return Err(ParseError::Malformed);
        }
        off += plen;
        next = np;
    }
    Ok((out, None))
}

/// Parse a whole datagram (without the non-ESP marker).
pub fn parse_message(b: &[u8]) -> Result<Parsed> {
    let header = Header::parse(b)?;
    let b = &b[..header.length as usize];
    let (payloads, encrypted) = parse_chain(header.next_payload, &b[HDR_LEN..], HDR_LEN, true)?;
    Ok(Parsed { header, payloads, encrypted })
}

/// Emit an unencrypted message (IKE_SA_INIT).
pub fn emit_plain(mut header: Header, payloads: &[Payload]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    header.next_payload = payloads.first().map_or(0, |p| p.ptype());
    header.emit(&mut out);
    emit_chain(payloads, &mut out);
    let len = out.len() as u32;
    out[24..28].copy_from_slice(&len.to_be_bytes());
    out
}

pub fn find_notify(payloads: &[Payload], ntype: u16) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ntype == ntype => Some(n),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Payload> {
        vec![
            Payload::Sa(vec![Proposal {
                num: 1,
                protocol: proto::IKE,
                spi: vec![],
                transforms: vec![
                    Transform { ttype: ttype::ENCR, id: 20, key_len: Some(128) },
                    Transform { ttype: ttype::PRF, id: 5, key_len: None },
                    Transform { ttype: ttype::DH, id: 31, key_len: None },
                ],
            }]),
            Payload::Ke { group: 31, data: vec![7; 32] },
            Payload::Nonce(vec![1; 32]),
            Payload::Notify(Notify::new(notify::NAT_DETECTION_SOURCE_IP, vec![2; 20])),
            Payload::Delete { protocol: proto::ESP, spis: vec![1, 2] },
            Payload::TsI(vec![TrafficSelector::from_prefix("10.1.0.0".parse().unwrap(), 24)]),
            Payload::TsR(vec![TrafficSelector::from_prefix("2001:db8::".parse().unwrap(), 32)]),
            Payload::IdI { id_type: 2, data: b"left.interop.test".to_vec() },
            Payload::Auth { method: 2, data: vec![9; 32] },
            Payload::VendorId(b"rampart".to_vec()),
        ]
    }

    #[test]
    fn roundtrip() {
        let h = Header {
            spi_i: 0x1122334455667788,
            spi_r: 0,
            next_payload: 0,
            version: 0x20,
            exchange: exchange::IKE_SA_INIT,
            flags: flags::INITIATOR,
            msg_id: 0,
            length: 0,
        };
        let bytes = emit_plain(h, &sample());
        let p = parse_message(&bytes).unwrap();
        assert_eq!(p.payloads, sample());
        assert_eq!(p.header.length as usize, bytes.len());
        assert!(p.encrypted.is_none());
    }

    #[test]
    fn unknown_payloads() {
        let h = Header { spi_i: 1, spi_r: 0, next_payload: 0, version: 0x20, exchange: 34, flags: 8, msg_id: 0, length: 0 };
        let mut bytes = emit_plain(h, &[Payload::Nonce(vec![1; 16])]);
        // Append an unknown payload type 200, non-critical: skipped.
        bytes[HDR_LEN] = 200;
        bytes.extend_from_slice(&[0, 0, 0, 6, 0xaa, 0xbb]);
        let len = bytes.len() as u32;
        bytes[24..28].copy_from_slice(&len.to_be_bytes());
        assert_eq!(parse_message(&bytes).unwrap().payloads.len(), 1);
        // Same, critical: rejected with the type.
        let at = bytes.len() - 6 + 1;
        bytes[at] = 0x80;
        assert_eq!(parse_message(&bytes), Err(ParseError::UnsupportedCritical(200)));
    }

    #[test]
    fn ts_intersection() {
        let a = TrafficSelector::from_prefix("10.0.0.0".parse().unwrap(), 8);
        let b = TrafficSelector::from_prefix("10.2.0.0".parse().unwrap(), 24);
        assert_eq!(a.intersect(&b), Some(b));
        let c = TrafficSelector::from_prefix("192.168.0.0".parse().unwrap(), 16);
        assert_eq!(a.intersect(&c), None);
        let v6 = TrafficSelector::from_prefix("::".parse().unwrap(), 0);
        assert_eq!(a.intersect(&v6), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_message(&bytes);
            let _ = parse_chain(bytes.first().copied().unwrap_or(0), &bytes, 0, true);
            let _ = parse_sa(&bytes);
        }

        #[test]
        fn parse_mutated_never_panics(idx in 0usize..400, val in any::<u8>(), cut in 0usize..400) {
            let h = Header { spi_i: 1, spi_r: 2, next_payload: 0, version: 0x20, exchange: 34, flags: 8, msg_id: 0, length: 0 };
            let mut bytes = emit_plain(h, &sample());
            let i = idx % bytes.len();
            bytes[i] = val;
            bytes.truncate(cut.max(HDR_LEN).min(bytes.len()));
            let _ = parse_message(&bytes);
        }
    }
}
