//! ESP (RFC 4303) encapsulation and decapsulation of one packet in place, in tunnel or
//! transport mode, optionally inside UDP (RFC 3948), with an AEAD transform.
//!
//! Outbound: `Sa::encap` takes an inner IP packet and leaves the complete outer packet.
//! Inbound: `esp_spi` peeks the SPI so the worker can find the `Sa`, then `Sa::decap`
//! checks replay before decrypting, moves the window only after the ICV verifies, and
//! leaves the inner IP packet. Neither allocates; both work inside the `PktBuf`.

use crate::buf::PktBuf;
use crate::crypto::{Aead, AeadAlg, EspAad, KeyError, ICV_LEN, IV_LEN};
use crate::replay::ReplayWindow;
use crate::wire::{checksum, ecn, ip_proto, ipv4, ipv6, udp};
use dpdk_sys::Cache;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

/// The last ESN sequence number used: 2^32 short of the u64 wrap, so that the counter,
/// which every worker may add to, stays far from 0.
pub const SEQ_MAX_ESN: u64 = u64::MAX - (1 << 32);

/// SPI and sequence number.
pub const ESP_HEADER_LEN: usize = 8;
/// What goes in front of the payload: the ESP header and the explicit IV.
const FRONT_LEN: usize = ESP_HEADER_LEN + IV_LEN;
/// TTL / hop limit of the outer header we build in tunnel mode.
pub const OUTER_TTL: u8 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Tunnel,
    Transport,
}

/// UDP encapsulation for NAT traversal (RFC 3948); the ports are usually 4500.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpEncap {
    pub sport: u16,
    pub dport: u16,
}

/// SA lifetimes (RFC 4301 4.4.2.1): soft raises `Sa::soft_expired` for the control plane
/// to rekey; hard makes the SA refuse packets. `None` = no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetime {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_packets: Option<u64>,
    pub hard_packets: Option<u64>,
}

/// Everything the control plane decides about one direction of a Child SA. The fields the
/// packet path reads come first and share one cache line (`Sa` starts with its parameters).
#[derive(Clone)]
#[repr(C)]
pub struct SaParams {
    pub spi: u32,
    /// Anti-replay window in packets: 0 (off) or a multiple of 64 in 64..=4096.
    pub replay_window: u32,
    pub alg: AeadAlg,
    pub mode: Mode,
    pub esn: bool,
    pub encap: Option<UdpEncap>,
    /// (local = outer source, remote = outer destination) in tunnel mode.
    pub tunnel: Option<(IpAddr, IpAddr)>,
    /// Key || salt (`alg.keymat_len()` bytes).
    pub key: Vec<u8>,
    pub lifetime: Lifetime,
}

impl core::fmt::Debug for SaParams {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SaParams")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("alg", &self.alg)
            .field("key", &"<redacted>")
            .field("mode", &self.mode)
            .field("tunnel", &self.tunnel)
            .field("encap", &self.encap)
            .field("esn", &self.esn)
            .field("replay_window", &self.replay_window)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Parameters `Sa::new` refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaError {
    /// SPIs 0..=255 are reserved (RFC 4303 2.1).
    ReservedSpi(u32),
    Key(KeyError),
    /// Tunnel mode needs both tunnel addresses, of one family; transport mode takes none.
    TunnelAddrs,
    /// Not 0 or a multiple of 64 in 64..=4096.
    ReplayWindow(u32),
    /// The outbound sequence number can only move forward.
    SeqBackwards,
}

impl core::fmt::Display for SaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SaError::ReservedSpi(s) => write!(f, "SPI {s} is reserved (RFC 4303 2.1)"),
            SaError::Key(e) => write!(f, "bad key: {e}"),
            SaError::TunnelAddrs => f.write_str(
                "tunnel mode needs local and remote addresses of one family; transport mode none",
            ),
            SaError::ReplayWindow(w) => write!(
                f,
                "replay window {w} is not 0 or a multiple of 64 in 64..=4096"
            ),
            SaError::SeqBackwards => {
                f.write_str("the outbound sequence number cannot move backwards")
            }
        }
    }
}

impl std::error::Error for SaError {}

/// Why a packet was dropped; each maps 1:1 to a drop counter (`reason`, `index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EspError {
    /// Headers or lengths that do not parse.
    Malformed,
    /// The packet's SPI is not this SA's (the caller looked up the wrong SA).
    SpiMismatch,
    /// Anti-replay: a duplicate or left of the window.
    Replay,
    /// The ICV did not verify.
    AuthFailed,
    /// Padding bytes not 1, 2, 3, ... or a pad length longer than the payload.
    BadPadding,
    /// Next header not 4/41 in tunnel mode.
    BadNextHeader,
    /// The decrypted inner packet does not parse or its lengths disagree.
    BadInner,
    /// A dummy packet (next header 59, RFC 4303 2.6): dropped silently, counted apart.
    DummyPacket,
    /// RFC 6040: outer CE over an inner Not-ECT packet must be dropped.
    EcnDrop,
    /// The sequence number would cycle (RFC 4303 3.3.3): rekey.
    SeqExhausted,
    /// The hard lifetime is reached.
    LifetimeExpired,
    /// Valid but not handled here: fragments, IPv6 extension headers in transport mode.
    Unsupported,
    /// The buffer lacks headroom or tailroom.
    NoRoom,
    /// The result would not fit the outer length field.
    TooBig,
    /// ESP in UDP for an SA that expects it raw, or the other way round.
    EncapMismatch,
}

impl EspError {
    pub const ALL: [EspError; 15] = [
        EspError::Malformed,
        EspError::SpiMismatch,
        EspError::Replay,
        EspError::AuthFailed,
        EspError::BadPadding,
        EspError::BadNextHeader,
        EspError::BadInner,
        EspError::DummyPacket,
        EspError::EcnDrop,
        EspError::SeqExhausted,
        EspError::LifetimeExpired,
        EspError::Unsupported,
        EspError::NoRoom,
        EspError::TooBig,
        EspError::EncapMismatch,
    ];

    /// The drop counter name.
    pub fn reason(&self) -> &'static str {
        match self {
            EspError::Malformed => "esp_malformed",
            EspError::SpiMismatch => "esp_spi_mismatch",
            EspError::Replay => "esp_replay",
            EspError::AuthFailed => "esp_auth_failed",
            EspError::BadPadding => "esp_bad_padding",
            EspError::BadNextHeader => "esp_bad_next_header",
            EspError::BadInner => "esp_bad_inner",
            EspError::DummyPacket => "esp_dummy_packet",
            EspError::EcnDrop => "esp_ecn_drop",
            EspError::SeqExhausted => "esp_seq_exhausted",
            EspError::LifetimeExpired => "esp_lifetime_expired",
            EspError::Unsupported => "esp_unsupported",
            EspError::NoRoom => "esp_no_room",
            EspError::TooBig => "esp_too_big",
            EspError::EncapMismatch => "esp_encap_mismatch",
        }
    }

    /// Position in `ALL`, for an array of counters.
    pub fn index(&self) -> usize {
        *self as usize
    }
}

impl core::fmt::Display for EspError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for EspError {}

/// What `decap` learned beyond the inner packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecapInfo {
    /// The full (ESN-inferred) sequence number.
    pub seq: u64,
    /// The ESP next header: 4/41 in tunnel mode, the upper protocol in transport mode.
    pub next_header: u8,
}

/// Counters of one SA, for the control plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaStats {
    pub packets: u64,
    /// Bytes of inner (plaintext) packets.
    pub bytes: u64,
    pub dummy_packets: u64,
}

/// One direction of a Child SA, ready for the packet path. `Sync`: it sits in an `Arc`
/// shared by the workers. Outbound, several workers may encap on it at once (the sequence
/// number is a fetch-add); inbound, one worker owns it (see `replay`).
///
/// Laid out for many SAs, each cold: a short packet reads the first line (parameters), the
/// `Live` line and a few lines of the key, all at fixed offsets, so that a worker can
/// prefetch them from the SA's address alone (`prefetch_out`).
#[derive(Debug)]
#[repr(C)]
pub struct Sa {
    /// The parameters with `key` emptied: the key lives only inside `aead`.
    params: SaParams,
    /// What every packet sent writes, on a cache line of its own: workers sharing an
    /// outbound SA then contend on this line only, never on the parameters and key.
    live: Live,
    aead: Aead,
    replay: ReplayWindow,
    dummy_packets: AtomicU64,
}

/// The counters, and the lifetime's limits they are checked against (`u64::MAX`: none).
#[derive(Debug)]
#[repr(C, align(64))]
struct Live {
    /// The last sequence number sent (0 = none yet).
    seq: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    soft_packets: u64,
    soft_bytes: u64,
    hard_packets: u64,
    hard_bytes: u64,
    soft_expired: AtomicBool,
}

impl Live {
    fn new(lt: &Lifetime) -> Live {
        let limit = |l: Option<u64>| l.unwrap_or(u64::MAX);
        Live {
            seq: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            soft_packets: limit(lt.soft_packets),
            soft_bytes: limit(lt.soft_bytes),
            hard_packets: limit(lt.hard_packets),
            hard_bytes: limit(lt.hard_bytes),
            soft_expired: AtomicBool::new(false),
        }
    }
}

impl Sa {
    pub fn new(mut params: SaParams) -> Result<Sa, SaError> {
        if params.spi < 256 {
            return Err(SaError::ReservedSpi(params.spi));
        }
        let aead = Aead::new(params.alg, &params.key).map_err(SaError::Key)?;
        params.key.iter_mut().for_each(|b| *b = 0);
        params.key = Vec::new();
        match (params.mode, params.tunnel) {
            (Mode::Tunnel, Some((a, b))) if a.is_ipv4() == b.is_ipv4() => {}
            (Mode::Transport, None) => {}
            _ => return Err(SaError::TunnelAddrs),
        }
        let replay = ReplayWindow::new(params.replay_window, params.esn)
            .map_err(|_| SaError::ReplayWindow(params.replay_window))?;
        Ok(Sa {
            live: Live::new(&params.lifetime),
            params,
            aead,
            replay,
            dummy_packets: AtomicU64::new(0),
        })
    }

    /// The parameters (the key is not kept here).
    pub fn params(&self) -> &SaParams {
        &self.params
    }

    pub fn spi(&self) -> u32 {
        self.params.spi
    }

    pub fn replay(&self) -> &ReplayWindow {
        &self.replay
    }

    /// Set once a soft lifetime is passed; the control plane polls it to start a rekey.
    pub fn soft_expired(&self) -> bool {
        self.live.soft_expired.load(Relaxed)
    }

    pub fn stats(&self) -> SaStats {
        SaStats {
            packets: self.live.packets.load(Relaxed),
            bytes: self.live.bytes.load(Relaxed),
            dummy_packets: self.dummy_packets.load(Relaxed),
        }
    }

    /// The last outbound sequence number used (0 before the first packet).
    pub fn last_seq(&self) -> u64 {
        self.live.seq.load(Relaxed)
    }

    /// Makes the next outbound packet use `next`, for state taken over from another node
    /// (HA) and for tests. Forward only: a number, and so an IV, is never reused.
    pub fn advance_seq(&self, next: u64) -> Result<(), SaError> {
        let last = next.checked_sub(1).ok_or(SaError::SeqBackwards)?.min(SEQ_MAX_ESN);
        if self.live.seq.fetch_max(last, Relaxed) > last {
            return Err(SaError::SeqBackwards);
        }
        Ok(())
    }

    /// Takes the next sequence number; never cycles (RFC 4303 3.3.3).
    /// Takes `n` consecutive sequence numbers and returns the first: a burst for one SA pays
    /// one atomic add (workers may share an outbound SA). Past the last number nothing is
    /// sent and the counter is put back to just past it, so that no number of refused
    /// packets can carry it round to 0 and reuse an IV.
    pub fn reserve_seq(&self, n: u64) -> Result<u64, EspError> {
        let max = if self.params.esn { SEQ_MAX_ESN } else { u32::MAX as u64 };
        let last = self.live.seq.fetch_add(n, Relaxed) + n;
        if last > max {
            self.live.seq.store(max + 1, Relaxed);
            return Err(EspError::SeqExhausted);
        }
        Ok(last + 1 - n)
    }

    /// Refuses once the hard lifetime is reached. Workers share an outbound SA, so a
    /// limit can be overrun by a packet per worker: lifetimes are approximate anyway.
    fn check_hard(&self, len: usize) -> Result<(), EspError> {
        let l = &self.live;
        let (p, b) = (l.packets.load(Relaxed), l.bytes.load(Relaxed));
        if p >= l.hard_packets || b.saturating_add(len as u64) > l.hard_bytes {
            return Err(EspError::LifetimeExpired);
        }
        Ok(())
    }

    /// Plain load and store, no locked add: exact when one worker carries the SA (inbound
    /// always, by RSS on the outer header); when workers share an outbound SA a count may
    /// be lost now and then, and the sequence number stays the exact packet count.
    fn count(&self, len: usize) {
        self.count_many(1, len as u64);
    }

    /// Counts `packets` sent or received, of `bytes` in all: a burst's worth at once, so
    /// that workers sharing an outbound SA write its line once a burst, not once a packet.
    pub fn count_many(&self, packets: u64, bytes: u64) {
        let p = self.live.packets.load(Relaxed) + packets;
        let b = self.live.bytes.load(Relaxed) + bytes;
        self.live.packets.store(p, Relaxed);
        self.live.bytes.store(b, Relaxed);
        if p >= self.live.soft_packets || b >= self.live.soft_bytes {
            self.live.soft_expired.store(true, Relaxed);
        }
    }

    /// Starts loading what `encap_seq` reads and writes for a short packet (the parameters'
    /// line, the `Live` line, the key's lines), for a worker that knows the SA a few packets
    /// ahead: with many SAs, each is cold. By address only: nothing here waits for memory.
    #[inline]
    pub fn prefetch_out(&self, to: Cache) {
        dpdk_sys::prefetch_to((self as *const Sa).cast(), to);
        dpdk_sys::prefetch_to((&self.live as *const Live).cast(), to);
        self.aead.prefetch(to);
    }

    /// `prefetch_out` for `decap`: the same lines and the anti-replay window's.
    #[inline]
    pub fn prefetch_in(&self, to: Cache) {
        self.prefetch_out(to);
        dpdk_sys::prefetch_to((&self.replay as *const ReplayWindow).cast(), to);
    }

    /// Encapsulates the IP packet in `pkt` (starting at its IP header) into ESP. On success
    /// `pkt` holds the outer packet, starting at the outer IP header.
    pub fn encap<P: PktBuf>(&self, pkt: &mut P) -> Result<(), EspError> {
        let seq = self.reserve_seq(1)?;
        let len = self.encap_seq(pkt, seq)?;
        self.count(len);
        Ok(())
    }

    /// `encap` with a sequence number taken by `reserve_seq`, not counted: returns the inner
    /// packet's length for `count_many`. Numbers reserved for packets that then fail are
    /// skipped, never reused.
    pub fn encap_seq<P: PktBuf>(&self, pkt: &mut P, seq: u64) -> Result<usize, EspError> {
        let inner = IpHdr::parse(pkt.data()).map_err(|_| EspError::Malformed)?;
        // Anything past the IP length (Ethernet minimum-frame padding) is not the packet.
        pkt.trim(pkt.len() - inner.len);
        let tunnel = match self.params.mode {
            Mode::Tunnel => self.params.tunnel,
            Mode::Transport => None,
        };
        // The part that stays in front of ESP, and the next header ESP announces.
        let (keep, next_header) = match tunnel {
            Some(_) => (
                0,
                if inner.v6 {
                    ip_proto::IPV6
                } else {
                    ip_proto::IPIP
                },
            ),
            None if inner.frag => return Err(EspError::Unsupported),
            None if inner.v6 && ip_proto::is_ipv6_ext(inner.proto) => {
                return Err(EspError::Unsupported)
            }
            None => (inner.hl, inner.proto),
        };
        let outer_hl = match tunnel {
            Some((IpAddr::V4(_), _)) => ipv4::MIN_HEADER_LEN,
            Some((IpAddr::V6(_), _)) => ipv6::HEADER_LEN,
            None => inner.hl,
        };
        let outer_v6 = match tunnel {
            Some((src, _)) => src.is_ipv6(),
            None => inner.v6,
        };
        let udp_len = if self.params.encap.is_some() {
            udp::HEADER_LEN
        } else {
            0
        };
        let payload_len = inner.len - keep;
        // RFC 4303 2.4: the trailer ends on a 4-byte boundary; padding is 1, 2, 3, ...
        let pad = (4 - (payload_len + 2) % 4) % 4;
        let esp_off = outer_hl + udp_len;
        let total = esp_off + FRONT_LEN + payload_len + pad + 2 + ICV_LEN;
        let too_big = if outer_v6 {
            total - ipv6::HEADER_LEN > 0xffff
        } else {
            total > 0xffff
        };
        if too_big {
            return Err(EspError::TooBig);
        }
        self.check_hard(inner.len)?;

        let tail = pkt.append(pad + 2 + ICV_LEN).ok_or(EspError::NoRoom)?;
        for (i, b) in tail[..pad].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        tail[pad] = pad as u8;
        tail[pad + 1] = next_header;
        let front = esp_off + FRONT_LEN - keep;
        if pkt.prepend(front).is_none() {
            pkt.trim(pad + 2 + ICV_LEN);
            return Err(EspError::NoRoom);
        }
        let d = pkt.data_mut();
        debug_assert_eq!(d.len(), total);
        // Transport mode: slide the original IP header to the front.
        if keep > 0 {
            d.copy_within(front..front + keep, 0);
        }
        d[esp_off..esp_off + 4].copy_from_slice(&self.params.spi.to_be_bytes());
        d[esp_off + 4..esp_off + 8].copy_from_slice(&(seq as u32).to_be_bytes());
        // The IV is the 64-bit sequence number: unique per key, as GCM and ChaCha need.
        let iv = seq.to_be_bytes();
        d[esp_off + 8..esp_off + FRONT_LEN].copy_from_slice(&iv);
        let l4_proto = if udp_len > 0 {
            ip_proto::UDP
        } else {
            ip_proto::ESP
        };
        match tunnel {
            Some((IpAddr::V4(src), IpAddr::V4(dst))) => {
                let mut h = ipv4::Packet::new_unchecked(&mut d[..outer_hl]);
                h.set_version_header_len(ipv4::MIN_HEADER_LEN);
                // DSCP copied, ECN copied (RFC 6040 normal mode).
                h.set_tos(inner.tos);
                h.set_total_len(total as u16);
                // Unique per SA over 65,536 packets, as reassembly needs, without a shared counter.
                h.set_ident(seq as u16);
                h.set_frag(inner.df, false, 0);
                h.set_ttl(OUTER_TTL);
                h.set_protocol(l4_proto);
                h.set_src_addr(src);
                h.set_dst_addr(dst);
                // From the field values, not read back from the header just written (that
                // read stalls on store forwarding).
                let word = |a: [u8; 4]| u16::from_be_bytes([a[0], a[1]]) as u32 + u16::from_be_bytes([a[2], a[3]]) as u32;
                let sum = 0x4500
                    + inner.tos as u32
                    + total as u32
                    + (seq as u16) as u32
                    + if inner.df { 0x4000 } else { 0 }
                    + ((OUTER_TTL as u32) << 8 | l4_proto as u32)
                    + word(src.octets())
                    + word(dst.octets());
                h.set_checksum(!checksum::fold(sum));
            }
            Some((IpAddr::V6(src), IpAddr::V6(dst))) => {
                let mut h = ipv6::Packet::new_unchecked(&mut d[..outer_hl]);
                h.set_version_tc_flow(inner.tos, 0);
                h.set_payload_len((total - outer_hl) as u16);
                h.set_next_header(l4_proto);
                h.set_hop_limit(OUTER_TTL);
                h.set_src_addr(src);
                h.set_dst_addr(dst);
            }
            Some(_) => return Err(EspError::Malformed), // excluded by Sa::new
            None if inner.v6 => {
                let mut h = ipv6::Packet::new_unchecked(&mut d[..outer_hl]);
                h.set_payload_len((total - outer_hl) as u16);
                h.set_next_header(l4_proto);
            }
            None => {
                let mut h = ipv4::Packet::new_unchecked(&mut d[..outer_hl]);
                h.set_total_len(total as u16);
                h.set_protocol(l4_proto);
                h.fill_checksum();
            }
        }
        let aad = EspAad::new(self.params.spi, seq, self.params.esn);
        let (body, icv) =
            d[esp_off + FRONT_LEN..].split_at_mut(total - ICV_LEN - esp_off - FRONT_LEN);
        let icv: &mut [u8; ICV_LEN] = icv.try_into().map_err(|_| EspError::Malformed)?;
        self.aead
            .seal_detached(iv, aad.as_slice(), body, icv)
            .map_err(|_| EspError::TooBig)?;
        if let Some(e) = self.params.encap {
            let (ip, rest) = d.split_at_mut(outer_hl);
            let mut u = udp::Packet::new_unchecked(&mut rest[..]);
            u.set_src_port(e.sport);
            u.set_dst_port(e.dport);
            u.set_len((total - outer_hl) as u16);
            u.set_checksum(0);
            // RFC 3948: zero over IPv4; IPv6 needs a real checksum (RFC 8200 8.1).
            if outer_v6 {
                let h = ipv6::Packet::new_unchecked(&ip[..]);
                u.fill_checksum(&h.src_addr().into(), &h.dst_addr().into());
            }
        }
        Ok(inner.len)
    }

    /// Decapsulates the ESP packet in `pkt` (starting at the outer IP header, with a UDP
    /// header if the SA uses encapsulation). On success `pkt` holds the inner IP packet.
    pub fn decap<P: PktBuf>(&self, pkt: &mut P) -> Result<DecapInfo, EspError> {
        let outer = Outer::parse(pkt.data(), self.params.encap.is_some())?;
        pkt.trim(pkt.len() - outer.total);
        let esp_off = outer.esp_off;
        // The ciphertext holds at least the pad length and next header.
        if outer.total < esp_off + FRONT_LEN + 2 + ICV_LEN {
            return Err(EspError::Malformed);
        }
        if outer.spi != self.params.spi {
            return Err(EspError::SpiMismatch);
        }
        self.check_hard(1)?;
        let d = pkt.data_mut();
        let seq_low = u32::from_be_bytes([
            d[esp_off + 4],
            d[esp_off + 5],
            d[esp_off + 6],
            d[esp_off + 7],
        ]);
        // Before decryption: a replayed packet costs no crypto (RFC 4303 3.4.3).
        let seq = self.replay.check(seq_low).map_err(|_| EspError::Replay)?;
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&d[esp_off + 8..esp_off + FRONT_LEN]);
        let aad = EspAad::new(self.params.spi, seq, self.params.esn);
        let body = &mut d[esp_off + FRONT_LEN..];
        let n = self
            .aead
            .open_in_place(iv, aad.as_slice(), body)
            .map_err(|_| EspError::AuthFailed)?;
        // Only an authentic packet moves the window.
        self.replay.update(seq).map_err(|_| EspError::Replay)?;
        let pt = &body[..n];
        let next_header = pt[n - 1];
        let pad = pt[n - 2] as usize;
        let inner_len = n.checked_sub(pad + 2).ok_or(EspError::BadPadding)?;
        if pt[inner_len..n - 2]
            .iter()
            .enumerate()
            .any(|(i, &b)| b as usize != i + 1)
        {
            return Err(EspError::BadPadding);
        }
        if next_header == ip_proto::NO_NEXT {
            self.dummy_packets.fetch_add(1, Relaxed);
            return Err(EspError::DummyPacket);
        }
        let strip_tail = pad + 2 + ICV_LEN;
        match self.params.mode {
            Mode::Tunnel => {
                let want_v6 = match next_header {
                    ip_proto::IPIP => false,
                    ip_proto::IPV6 => true,
                    _ => return Err(EspError::BadNextHeader),
                };
                pkt.adj(esp_off + FRONT_LEN);
                pkt.trim(strip_tail);
                let inner = IpHdr::parse(pkt.data()).map_err(|_| EspError::BadInner)?;
                let checksum_ok = || ipv4::Packet::new_unchecked(pkt.data()).verify_checksum();
                if inner.v6 != want_v6 || (!inner.v6 && !checksum_ok()) {
                    return Err(EspError::BadInner);
                }
                // Shorter than what decrypted: TFC padding (RFC 4303 2.7) follows it.
                pkt.trim(pkt.len() - inner.len);
                let new_ecn = ecn_decap(outer.ecn, inner.tos & 0b11).ok_or(EspError::EcnDrop)?;
                if new_ecn != inner.tos & 0b11 {
                    let d = pkt.data_mut();
                    if inner.v6 {
                        ipv6::Packet::new_unchecked(&mut d[..]).set_ecn(new_ecn);
                    } else {
                        let mut h = ipv4::Packet::new_unchecked(&mut d[..]);
                        h.set_ecn(new_ecn);
                        h.fill_checksum();
                    }
                }
                self.count(inner.len);
            }
            Mode::Transport => {
                let hl = outer.l3_hl;
                let shift = esp_off + FRONT_LEN - hl;
                let d = pkt.data_mut();
                d.copy_within(0..hl, shift);
                pkt.adj(shift);
                pkt.trim(strip_tail);
                let len = pkt.len();
                let d = pkt.data_mut();
                if outer.v6 {
                    let mut h = ipv6::Packet::new_unchecked(&mut d[..]);
                    h.set_payload_len((len - hl) as u16);
                    h.set_next_header(next_header);
                } else {
                    let mut h = ipv4::Packet::new_unchecked(&mut d[..]);
                    h.set_total_len(len as u16);
                    h.set_protocol(next_header);
                    h.fill_checksum();
                }
                self.count(len);
            }
        }
        Ok(DecapInfo { seq, next_header })
    }
}

/// RFC 6040 (Figure 4) decapsulation: the inner ECN field to forward, or `None` to drop.
/// Rows are the inner field, columns the outer.
pub fn ecn_decap(outer: u8, inner: u8) -> Option<u8> {
    match (inner, outer) {
        (ecn::NOT_ECT, ecn::CE) => None,
        (ecn::NOT_ECT, _) => Some(ecn::NOT_ECT),
        (_, ecn::CE) => Some(ecn::CE),
        (ecn::ECT0, ecn::ECT1) => Some(ecn::ECT1),
        (inner, _) => Some(inner),
    }
}

/// Reads the SPI of an inbound ESP packet (starting at the outer IP header) so that the
/// worker can look the SA up before `decap`. SPI 0 is the RFC 3948 non-ESP marker (IKE
/// on port 4500), which is not ESP.
pub fn esp_spi(l3: &[u8], udp_encap: bool) -> Result<u32, EspError> {
    Outer::parse(l3, udp_encap).map(|o| o.spi)
}

/// The outer headers of an inbound ESP packet.
struct Outer {
    v6: bool,
    l3_hl: usize,
    esp_off: usize,
    /// Outer IP length: bytes past it are link padding.
    total: usize,
    ecn: u8,
    spi: u32,
}

impl Outer {
    fn parse(l3: &[u8], udp_encap: bool) -> Result<Outer, EspError> {
        let want = if udp_encap {
            ip_proto::UDP
        } else {
            ip_proto::ESP
        };
        let (v6, l3_hl, total, proto, ecn) = match l3.first().map(|b| b >> 4) {
            Some(4) => {
                let h = ipv4::Packet::new_checked(l3).map_err(|_| EspError::Malformed)?;
                // Reassembly happens before ESP (RFC 4303 3.4.1), not here.
                if h.is_fragment() {
                    return Err(EspError::Unsupported);
                }
                (
                    false,
                    h.header_len(),
                    h.total_len() as usize,
                    h.protocol(),
                    h.ecn(),
                )
            }
            Some(6) => {
                let h = ipv6::Packet::new_checked(l3).map_err(|_| EspError::Malformed)?;
                let nh = h.next_header();
                if nh != want && ip_proto::is_ipv6_ext(nh) {
                    return Err(EspError::Unsupported);
                }
                (true, ipv6::HEADER_LEN, h.total_len(), nh, h.ecn())
            }
            _ => return Err(EspError::Malformed),
        };
        if proto != want {
            return Err(match proto {
                ip_proto::UDP | ip_proto::ESP => EspError::EncapMismatch,
                _ => EspError::Malformed,
            });
        }
        let mut esp_off = l3_hl;
        if udp_encap {
            // The UDP checksum is not checked: the ICV covers everything that matters.
            let u = udp::Packet::new_checked(&l3[l3_hl..total]).map_err(|_| EspError::Malformed)?;
            if u.len() as usize != total - l3_hl {
                return Err(EspError::Malformed);
            }
            esp_off += udp::HEADER_LEN;
        }
        let spi = l3
            .get(esp_off..esp_off + 4)
            .filter(|_| esp_off + ESP_HEADER_LEN <= total)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(EspError::Malformed)?;
        if spi == 0 {
            return Err(EspError::Malformed);
        }
        Ok(Outer {
            v6,
            l3_hl,
            esp_off,
            total,
            ecn,
            spi,
        })
    }
}

/// The facts about an IP header that ESP needs.
struct IpHdr {
    v6: bool,
    /// The packet length its header announces.
    len: usize,
    hl: usize,
    tos: u8,
    df: bool,
    frag: bool,
    proto: u8,
}

impl IpHdr {
    fn parse(d: &[u8]) -> Result<IpHdr, ()> {
        match d.first().map(|b| b >> 4) {
            Some(4) => {
                let h = ipv4::Packet::new_checked(d).map_err(|_| ())?;
                Ok(IpHdr {
                    v6: false,
                    len: h.total_len() as usize,
                    hl: h.header_len(),
                    tos: h.tos(),
                    df: h.dont_frag(),
                    frag: h.is_fragment(),
                    proto: h.protocol(),
                })
            }
            Some(6) => {
                let h = ipv6::Packet::new_checked(d).map_err(|_| ())?;
                Ok(IpHdr {
                    v6: true,
                    len: h.total_len(),
                    hl: ipv6::HEADER_LEN,
                    tos: h.traffic_class(),
                    df: false,
                    frag: false,
                    proto: h.next_header(),
                })
            }
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::wire::udp;

    const SPI: u32 = 0x1234_5678;

    /// What `prefetch_out` assumes: the packet path's parameters in the SA's first line, and
    /// the counters with their limits in one line of their own.
    #[test]
    fn hot_fields_share_the_first_line() {
        use std::mem::{offset_of, size_of};
        assert_eq!(offset_of!(Sa, params), 0);
        assert!(offset_of!(SaParams, tunnel) + size_of::<Option<(IpAddr, IpAddr)>>() <= 64);
        assert!(offset_of!(SaParams, encap) + size_of::<Option<UdpEncap>>() <= 64);
        assert_eq!(size_of::<Live>(), 64);
        assert_eq!(offset_of!(Sa, live) % 64, 0);
    }

    const ALGS: [AeadAlg; 3] = [
        AeadAlg::AesGcm128,
        AeadAlg::AesGcm256,
        AeadAlg::ChaCha20Poly1305,
    ];

    fn params(alg: AeadAlg, mode: Mode, outer_v6: bool) -> SaParams {
        let tunnel = (mode == Mode::Tunnel).then(|| {
            if outer_v6 {
                (
                    "2001:db8::1".parse().unwrap(),
                    "2001:db8::2".parse().unwrap(),
                )
            } else {
                (
                    "192.0.2.1".parse().unwrap(),
                    "198.51.100.2".parse().unwrap(),
                )
            }
        });
        SaParams {
            spi: SPI,
            alg,
            key: (0..alg.keymat_len() as u8).collect(),
            mode,
            tunnel,
            encap: None,
            esn: false,
            replay_window: 64,
            lifetime: Lifetime::default(),
        }
    }

    /// An IPv4 or IPv6 UDP packet with `n` payload bytes, DSCP AF41 and ECT(0).
    fn inner(v6: bool, n: usize) -> Vec<u8> {
        let l4 = udp::HEADER_LEN + n;
        let mut p = vec![0u8; if v6 { 40 } else { 20 } + l4];
        let (src, dst): (IpAddr, IpAddr);
        let hl = if v6 {
            let mut h = ipv6::Packet::new_unchecked(&mut p[..]);
            h.set_version_tc_flow((34 << 2) | ecn::ECT0, 0);
            h.set_payload_len(l4 as u16);
            h.set_next_header(ip_proto::UDP);
            h.set_hop_limit(63);
            h.set_src_addr("fd00::10".parse().unwrap());
            h.set_dst_addr("fd00:1::20".parse().unwrap());
            (src, dst) = (h.src_addr().into(), h.dst_addr().into());
            40
        } else {
            let mut h = ipv4::Packet::new_unchecked(&mut p[..]);
            h.set_version_header_len(20);
            h.set_tos((34 << 2) | ecn::ECT0);
            h.set_total_len((20 + l4) as u16);
            h.set_frag(true, false, 0);
            h.set_ttl(63);
            h.set_protocol(ip_proto::UDP);
            h.set_src_addr("10.0.0.10".parse().unwrap());
            h.set_dst_addr("10.1.0.20".parse().unwrap());
            h.fill_checksum();
            (src, dst) = (h.src_addr().into(), h.dst_addr().into());
            20
        };
        let mut u = udp::Packet::new_unchecked(&mut p[hl..]);
        u.set_src_port(1000);
        u.set_dst_port(2000);
        u.set_len(l4 as u16);
        for (i, b) in u.payload_mut().iter_mut().enumerate() {
            *b = i as u8;
        }
        u.fill_checksum(&src, &dst);
        p
    }

    fn pair(p: &SaParams) -> (Sa, Sa) {
        (Sa::new(p.clone()).unwrap(), Sa::new(p.clone()).unwrap())
    }

    #[test]
    fn roundtrip_every_mode_family_alg_encap_esn() {
        for alg in ALGS {
            for mode in [Mode::Tunnel, Mode::Transport] {
                for outer_v6 in [false, true] {
                    for inner_v6 in [false, true] {
                        if mode == Mode::Transport && inner_v6 != outer_v6 {
                            continue;
                        }
                        for encap in [
                            None,
                            Some(UdpEncap {
                                sport: 4500,
                                dport: 4501,
                            }),
                        ] {
                            for esn in [false, true] {
                                let mut p = params(alg, mode, outer_v6);
                                p.encap = encap;
                                p.esn = esn;
                                let (out, inb) = pair(&p);
                                for n in 0..6 {
                                    let orig = inner(inner_v6, n);
                                    let mut b = VecBuf::new(&orig);
                                    out.encap(&mut b).unwrap();
                                    let d = b.data();
                                    assert_eq!(d[0] >> 4, if outer_v6 { 6 } else { 4 });
                                    assert_eq!(esp_spi(d, encap.is_some()), Ok(SPI));
                                    let esp_len = d.len()
                                        - if outer_v6 { 40 } else { 20 }
                                        - if encap.is_some() { 8 } else { 0 };
                                    assert_eq!(esp_len % 4, 0, "ESP payload is 4-byte aligned");
                                    if let (Some(_), false) = (encap, outer_v6) {
                                        assert_eq!(
                                            udp::Packet::new_checked(&d[20..]).unwrap().checksum(),
                                            0
                                        );
                                    }
                                    if let (Some(_), true) = (encap, outer_v6) {
                                        let h = ipv6::Packet::new_checked(d).unwrap();
                                        let u = udp::Packet::new_checked(&d[40..]).unwrap();
                                        assert!(u.verify_checksum(
                                            &h.src_addr().into(),
                                            &h.dst_addr().into()
                                        ));
                                    }
                                    if !outer_v6 {
                                        assert!(ipv4::Packet::new_checked(d)
                                            .unwrap()
                                            .verify_checksum());
                                    }
                                    let info = inb.decap(&mut b).unwrap();
                                    assert_eq!(b.data(), &orig[..], "{alg:?} {mode:?} v6={outer_v6}/{inner_v6} {encap:?} esn={esn} n={n}");
                                    assert_eq!(info.seq, n as u64 + 1);
                                }
                                assert_eq!(out.stats().packets, 6);
                                assert_eq!(inb.stats(), out.stats());
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tunnel_outer_header_fields() {
        let (out, _) = pair(&params(AeadAlg::AesGcm128, Mode::Tunnel, false));
        let mut b = VecBuf::new(&inner(false, 10));
        out.encap(&mut b).unwrap();
        let h = ipv4::Packet::new_checked(b.data()).unwrap();
        assert_eq!(
            (h.ttl(), h.protocol(), h.dscp(), h.ecn(), h.dont_frag()),
            (64, 50, 34, ecn::ECT0, true)
        );
        assert_eq!(
            h.src_addr(),
            "192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()
        );
        let ident = h.ident();
        let mut b = VecBuf::new(&inner(true, 10));
        out.encap(&mut b).unwrap();
        let h2 = ipv4::Packet::new_checked(b.data()).unwrap();
        assert_eq!(h2.ident(), ident.wrapping_add(1));
        assert!(!h2.dont_frag());
        let (out6, _) = pair(&params(AeadAlg::AesGcm128, Mode::Tunnel, true));
        let mut b = VecBuf::new(&inner(false, 10));
        out6.encap(&mut b).unwrap();
        let h = ipv6::Packet::new_checked(b.data()).unwrap();
        assert_eq!(
            (h.hop_limit(), h.next_header(), h.dscp(), h.ecn()),
            (64, 50, 34, ecn::ECT0)
        );
        // The IV is the sequence number.
        assert_eq!(&b.data()[44..56], &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn icv_flip_fails_and_does_not_move_the_window() {
        let (out, inb) = pair(&params(AeadAlg::AesGcm256, Mode::Tunnel, false));
        let mut b = VecBuf::new(&inner(false, 20));
        out.encap(&mut b).unwrap();
        let good = b.data().to_vec();
        for at in [20 + 8, 20 + 16, good.len() - 1, 20 + 4 /* seq: AAD */] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert_eq!(
                inb.decap(&mut VecBuf::new(&bad)),
                Err(EspError::AuthFailed),
                "flip at {at}"
            );
            assert_eq!(inb.replay().top(), 0);
        }
        assert_eq!(inb.stats().packets, 0);
        assert!(inb.decap(&mut VecBuf::new(&good)).is_ok());
        assert_eq!(inb.decap(&mut VecBuf::new(&good)), Err(EspError::Replay));
    }

    /// Seals `pt` (already carrying its trailer) as seq `seq` of an SA, IPv4 tunnel, no UDP.
    fn handmade(p: &SaParams, seq: u64, pt: &[u8]) -> Vec<u8> {
        let a = Aead::new(p.alg, &p.key).unwrap();
        let total = 20 + 16 + pt.len() + 16;
        let mut d = vec![0u8; total];
        let mut h = ipv4::Packet::new_unchecked(&mut d[..]);
        h.set_version_header_len(20);
        h.set_total_len(total as u16);
        h.set_ttl(64);
        h.set_protocol(50);
        h.fill_checksum();
        d[20..24].copy_from_slice(&p.spi.to_be_bytes());
        d[24..28].copy_from_slice(&(seq as u32).to_be_bytes());
        d[28..36].copy_from_slice(&seq.to_be_bytes());
        d[36..36 + pt.len()].copy_from_slice(pt);
        let tag = a
            .seal_in_place(
                seq.to_be_bytes(),
                EspAad::new(p.spi, seq, p.esn).as_slice(),
                &mut d[36..36 + pt.len()],
            )
            .unwrap();
        d[36 + pt.len()..].copy_from_slice(&tag);
        d
    }

    #[test]
    fn padding_next_header_and_dummy() {
        let p = params(AeadAlg::ChaCha20Poly1305, Mode::Tunnel, false);
        let sa = Sa::new(p.clone()).unwrap();
        let mut pt = inner(false, 1); // 29 bytes
        pt.extend_from_slice(&[1, 2, 3, 3, 4]);
        assert!(sa.decap(&mut VecBuf::new(&handmade(&p, 1, &pt))).is_ok());
        // Padding bytes must be 1, 2, 3 (RFC 4303 2.4); the ICV verified, so the window moved.
        let mut bad = pt.clone();
        bad[30] = 9;
        assert_eq!(
            sa.decap(&mut VecBuf::new(&handmade(&p, 2, &bad))),
            Err(EspError::BadPadding)
        );
        assert_eq!(sa.replay().top(), 2);
        // A pad length longer than the payload.
        assert_eq!(
            sa.decap(&mut VecBuf::new(&handmade(&p, 3, &[0, 0, 200, 4]))),
            Err(EspError::BadPadding)
        );
        // Next header 17 in tunnel mode.
        let mut nh = pt.clone();
        *nh.last_mut().unwrap() = 17;
        assert_eq!(
            sa.decap(&mut VecBuf::new(&handmade(&p, 4, &nh))),
            Err(EspError::BadNextHeader)
        );
        // Next header 4 over an IPv6 packet.
        let mut v6 = inner(true, 2);
        v6.extend_from_slice(&[0, 4]);
        assert_eq!(
            sa.decap(&mut VecBuf::new(&handmade(&p, 5, &v6))),
            Err(EspError::BadInner)
        );
        // A dummy packet (RFC 4303 2.6) is counted apart.
        assert_eq!(
            sa.decap(&mut VecBuf::new(&handmade(&p, 6, &[0xde, 0xad, 0, 59]))),
            Err(EspError::DummyPacket)
        );
        assert_eq!(sa.stats().dummy_packets, 1);
        assert_eq!(sa.stats().packets, 1);
        // TFC padding after the inner packet (RFC 4303 2.7) is removed.
        let mut tfc = inner(false, 3);
        let orig = tfc.clone();
        tfc.extend_from_slice(&[0xee; 7]);
        tfc.extend_from_slice(&[1, 2, 2, 4]);
        let mut b = VecBuf::new(&handmade(&p, 7, &tfc));
        sa.decap(&mut b).unwrap();
        assert_eq!(b.data(), &orig[..]);
        // Inner length longer than what decrypted.
        let mut long = inner(false, 3);
        long.truncate(long.len() - 1);
        long.extend_from_slice(&[1, 2, 2, 4]);
        assert_eq!(
            sa.decap(&mut VecBuf::new(&handmade(&p, 8, &long))),
            Err(EspError::BadInner)
        );
    }

    #[test]
    fn sequence_numbers_never_cycle() {
        let p = params(AeadAlg::AesGcm128, Mode::Tunnel, false);
        let sa = Sa::new(p.clone()).unwrap();
        sa.advance_seq(u32::MAX as u64).unwrap();
        assert_eq!(sa.advance_seq(5), Err(SaError::SeqBackwards));
        assert!(sa.encap(&mut VecBuf::new(&inner(false, 1))).is_ok());
        assert_eq!(sa.last_seq(), u32::MAX as u64);
        let orig = inner(false, 1);
        let mut b = VecBuf::new(&orig);
        assert_eq!(sa.encap(&mut b), Err(EspError::SeqExhausted));
        assert_eq!(b.data(), &orig[..], "a refused packet is left as it was");
        let mut p = p;
        p.esn = true;
        let sa = Sa::new(p.clone()).unwrap();
        sa.advance_seq(u32::MAX as u64 + 1).unwrap();
        let mut b = VecBuf::new(&inner(false, 1));
        sa.encap(&mut b).unwrap();
        // ESN: the low half on the wire is 0, the IV carries all 64 bits.
        assert_eq!(&b.data()[24..36], &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        let rx = Sa::new(p).unwrap();
        rx.replay().reset_to(u32::MAX as u64 - 3);
        assert_eq!(rx.decap(&mut b).unwrap().seq, 1 << 32);
        sa.advance_seq(SEQ_MAX_ESN).unwrap();
        assert!(sa.encap(&mut VecBuf::new(&inner(false, 1))).is_ok());
        assert_eq!(
            sa.encap(&mut VecBuf::new(&inner(false, 1))),
            Err(EspError::SeqExhausted)
        );
    }

    #[test]
    fn lifetimes_soft_and_hard() {
        let mut p = params(AeadAlg::AesGcm128, Mode::Transport, false);
        p.lifetime = Lifetime {
            soft_packets: Some(2),
            hard_packets: Some(3),
            ..Lifetime::default()
        };
        let (out, inb) = pair(&p);
        let mut sent = vec![];
        for i in 0..3 {
            let mut b = VecBuf::new(&inner(false, 4));
            out.encap(&mut b).unwrap();
            assert_eq!(out.soft_expired(), i >= 1);
            sent.push(b);
        }
        assert_eq!(
            out.encap(&mut VecBuf::new(&inner(false, 4))),
            Err(EspError::LifetimeExpired)
        );
        for b in &mut sent {
            inb.decap(b).unwrap();
        }
        assert!(inb.soft_expired());
        let mut p = params(AeadAlg::AesGcm128, Mode::Tunnel, false);
        let len = inner(false, 4).len() as u64;
        p.lifetime = Lifetime {
            soft_bytes: Some(len),
            hard_bytes: Some(2 * len),
            ..Lifetime::default()
        };
        let sa = Sa::new(p).unwrap();
        sa.encap(&mut VecBuf::new(&inner(false, 4))).unwrap();
        assert!(sa.soft_expired());
        sa.encap(&mut VecBuf::new(&inner(false, 4))).unwrap();
        assert_eq!(
            sa.encap(&mut VecBuf::new(&inner(false, 0))),
            Err(EspError::LifetimeExpired)
        );
        assert_eq!(sa.stats().bytes, 2 * len);
    }

    #[test]
    fn rfc6040_decap_table() {
        use ecn::*;
        // Figure 4 of RFC 6040: rows inner, columns outer Not-ECT, ECT(0), ECT(1), CE.
        let table = [
            (NOT_ECT, [Some(NOT_ECT), Some(NOT_ECT), Some(NOT_ECT), None]),
            (ECT0, [Some(ECT0), Some(ECT0), Some(ECT1), Some(CE)]),
            (ECT1, [Some(ECT1), Some(ECT1), Some(ECT1), Some(CE)]),
            (CE, [Some(CE), Some(CE), Some(CE), Some(CE)]),
        ];
        for (inner, row) in table {
            for (outer, want) in [NOT_ECT, ECT0, ECT1, CE].into_iter().zip(row) {
                assert_eq!(ecn_decap(outer, inner), want, "inner {inner} outer {outer}");
            }
        }
    }

    #[test]
    fn decap_applies_rfc6040() {
        for v6 in [false, true] {
            let (out, inb) = pair(&params(AeadAlg::AesGcm128, Mode::Tunnel, v6));
            let set_outer_ce = |d: &mut [u8]| {
                if v6 {
                    ipv6::Packet::new_unchecked(d).set_ecn(ecn::CE);
                } else {
                    let mut h = ipv4::Packet::new_unchecked(d);
                    h.set_ecn(ecn::CE);
                    h.fill_checksum();
                }
            };
            // Inner ECT(0) under a CE-marked outer comes out CE, with DSCP untouched.
            let mut b = VecBuf::new(&inner(false, 8));
            out.encap(&mut b).unwrap();
            set_outer_ce(b.data_mut());
            inb.decap(&mut b).unwrap();
            let h = ipv4::Packet::new_checked(b.data()).unwrap();
            assert_eq!((h.ecn(), h.dscp()), (ecn::CE, 34));
            assert!(h.verify_checksum());
            // Inner Not-ECT under CE is dropped.
            let mut pkt = inner(true, 8);
            ipv6::Packet::new_unchecked(&mut pkt[..]).set_ecn(ecn::NOT_ECT);
            let mut b = VecBuf::new(&pkt);
            out.encap(&mut b).unwrap();
            set_outer_ce(b.data_mut());
            assert_eq!(inb.decap(&mut b), Err(EspError::EcnDrop));
        }
    }

    #[test]
    fn refuses_what_it_does_not_handle() {
        let (out, _) = pair(&params(AeadAlg::AesGcm128, Mode::Transport, true));
        let mut pkt = inner(true, 8);
        pkt[6] = ip_proto::IPV6_OPTS;
        assert_eq!(
            out.encap(&mut VecBuf::new(&pkt)),
            Err(EspError::Unsupported)
        );
        let (out, _) = pair(&params(AeadAlg::AesGcm128, Mode::Transport, false));
        let mut pkt = inner(false, 8);
        ipv4::Packet::new_unchecked(&mut pkt[..]).set_frag(false, true, 0);
        assert_eq!(
            out.encap(&mut VecBuf::new(&pkt)),
            Err(EspError::Unsupported)
        );
        assert_eq!(
            out.encap(&mut VecBuf::new(&pkt[..10])),
            Err(EspError::Malformed)
        );
        assert_eq!(
            out.encap(&mut VecBuf::with_room(&inner(false, 8), 8, 64)),
            Err(EspError::NoRoom)
        );
        assert_eq!(
            out.encap(&mut VecBuf::with_room(&inner(false, 8), 64, 8)),
            Err(EspError::NoRoom)
        );
        let (out, inb) = pair(&params(AeadAlg::AesGcm128, Mode::Tunnel, false));
        let big = VecBuf::with_room(&inner(false, 65_500 - 28), 128, 128);
        assert_eq!(out.encap(&mut big.clone()), Err(EspError::TooBig));
        // Fragments of ESP packets are reassembled before decap.
        let mut b = VecBuf::new(&inner(false, 8));
        out.encap(&mut b).unwrap();
        ipv4::Packet::new_unchecked(b.data_mut()).set_frag(false, true, 0);
        assert_eq!(inb.decap(&mut b), Err(EspError::Unsupported));
        // Another SA's packet.
        let mut p = params(AeadAlg::AesGcm128, Mode::Tunnel, false);
        p.spi += 1;
        let mut b = VecBuf::new(&inner(false, 8));
        Sa::new(p).unwrap().encap(&mut b).unwrap();
        assert_eq!(inb.decap(&mut b), Err(EspError::SpiMismatch));
    }

    #[test]
    fn sa_new_validates() {
        let ok = params(AeadAlg::AesGcm128, Mode::Tunnel, false);
        let mut p = ok.clone();
        p.spi = 255;
        assert_eq!(Sa::new(p).unwrap_err(), SaError::ReservedSpi(255));
        let mut p = ok.clone();
        p.key.pop();
        assert!(matches!(Sa::new(p).unwrap_err(), SaError::Key(_)));
        let mut p = ok.clone();
        p.tunnel = Some(("192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()));
        assert_eq!(Sa::new(p).unwrap_err(), SaError::TunnelAddrs);
        let mut p = ok.clone();
        p.tunnel = None;
        assert_eq!(Sa::new(p).unwrap_err(), SaError::TunnelAddrs);
        let mut p = ok.clone();
        p.mode = Mode::Transport;
        assert_eq!(Sa::new(p).unwrap_err(), SaError::TunnelAddrs);
        for w in [0, 64, 4096] {
            let mut p = ok.clone();
            p.replay_window = w;
            assert!(Sa::new(p).is_ok());
        }
        for w in [1, 96, 8192] {
            let mut p = ok.clone();
            p.replay_window = w;
            assert_eq!(Sa::new(p).unwrap_err(), SaError::ReplayWindow(w));
        }
    }

    #[test]
    fn keys_never_in_debug() {
        let mut p = params(AeadAlg::AesGcm256, Mode::Tunnel, false);
        p.key = vec![0x5a; 36];
        let s = format!("{p:?} {:?}", Sa::new(p.clone()).unwrap());
        assert!(s.contains("redacted"));
        assert!(
            !s.contains("90") && !s.contains("5a") && !s.contains("5A"),
            "{s}"
        );
        assert!(Sa::new(p).unwrap().params().key.is_empty());
    }

    #[test]
    fn esp_spi_peeks_and_rejects_non_esp() {
        let mut p = params(AeadAlg::AesGcm128, Mode::Tunnel, false);
        p.encap = Some(UdpEncap {
            sport: 4500,
            dport: 4500,
        });
        let (out, _) = pair(&p);
        let mut b = VecBuf::new(&inner(false, 8));
        out.encap(&mut b).unwrap();
        assert_eq!(esp_spi(b.data(), true), Ok(SPI));
        assert_eq!(esp_spi(b.data(), false), Err(EspError::EncapMismatch));
        // An SA that expects raw ESP refuses it in UDP, counted as a policy mismatch.
        let mut raw = p.clone();
        raw.encap = None;
        let (_, inb_raw) = pair(&raw);
        assert_eq!(inb_raw.decap(&mut VecBuf::new(b.data())).map(|_| ()), Err(EspError::EncapMismatch));
        assert_eq!(crate::counters::DropReason::from(EspError::EncapMismatch), crate::counters::DropReason::PolicyMismatch);
        // The RFC 3948 non-ESP marker (IKE on 4500) is not ESP.
        let mut ike = b.data().to_vec();
        ike[28..32].fill(0);
        assert_eq!(esp_spi(&ike, true), Err(EspError::Malformed));
        assert_eq!(esp_spi(&b.data()[..30], true), Err(EspError::Malformed));
        assert_eq!(esp_spi(&[], false), Err(EspError::Malformed));
    }

    #[test]
    fn sa_is_shareable_across_workers() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Sa>();
        assert_send_sync::<std::sync::Arc<Sa>>();
    }

    #[test]
    fn error_reasons_are_distinct_and_indexed() {
        let mut names: Vec<_> = EspError::ALL.iter().map(|e| e.reason()).collect();
        for (i, e) in EspError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EspError::ALL.len());
    }
}
