//! Packet counters kept by the workers and read by the control thread: each counter has one
//! writer (its worker), so updates are plain load/store on atomics, never a shared RMW.

use crate::esp::EspError;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a packet was dropped. Every drop on the packet path has exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DropReason {
    NoSa,
    Replay,
    AuthFailed,
    Malformed,
    PolicyMismatch,
    NoRoute,
    NoNeighbor,
    Discard,
    TtlExceeded,
    LifetimeExpired,
    SeqExhausted,
    BadPadding,
    Dummy,
    Unsupported,
    NoRoom,
    TxFull,
    ExceptionFull,
    NatKeepalive,
    EcnDrop,
    TooBig,
}

impl DropReason {
    pub const ALL: [DropReason; 20] = [
        DropReason::NoSa,
        DropReason::Replay,
        DropReason::AuthFailed,
        DropReason::Malformed,
        DropReason::PolicyMismatch,
        DropReason::NoRoute,
        DropReason::NoNeighbor,
        DropReason::Discard,
        DropReason::TtlExceeded,
        DropReason::LifetimeExpired,
        DropReason::SeqExhausted,
        DropReason::BadPadding,
        DropReason::Dummy,
        DropReason::Unsupported,
        DropReason::NoRoom,
        DropReason::TxFull,
        DropReason::ExceptionFull,
        DropReason::NatKeepalive,
        DropReason::EcnDrop,
        DropReason::TooBig,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            DropReason::NoSa => "no_sa",
            DropReason::Replay => "replay",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Malformed => "malformed",
            DropReason::PolicyMismatch => "policy_mismatch",
            DropReason::NoRoute => "no_route",
            DropReason::NoNeighbor => "no_neighbor",
            DropReason::Discard => "policy_discard",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::LifetimeExpired => "lifetime_expired",
            DropReason::SeqExhausted => "seq_exhausted",
            DropReason::BadPadding => "bad_padding",
            DropReason::Dummy => "dummy",
            DropReason::Unsupported => "unsupported",
            DropReason::NoRoom => "no_room",
            DropReason::TxFull => "tx_full",
            DropReason::ExceptionFull => "exception_full",
            DropReason::NatKeepalive => "nat_keepalive",
            DropReason::EcnDrop => "ecn_ce_on_not_ect",
            DropReason::TooBig => "too_big",
        }
    }
}

impl From<EspError> for DropReason {
    fn from(e: EspError) -> Self {
        match e {
            EspError::Malformed | EspError::BadNextHeader | EspError::BadInner => DropReason::Malformed,
            EspError::SpiMismatch => DropReason::NoSa,
            EspError::Replay => DropReason::Replay,
            EspError::AuthFailed => DropReason::AuthFailed,
            EspError::BadPadding => DropReason::BadPadding,
            EspError::DummyPacket => DropReason::Dummy,
            EspError::EcnDrop => DropReason::EcnDrop,
            EspError::SeqExhausted => DropReason::SeqExhausted,
            EspError::LifetimeExpired => DropReason::LifetimeExpired,
            EspError::Unsupported => DropReason::Unsupported,
            EspError::NoRoom => DropReason::NoRoom,
            EspError::TooBig => DropReason::TooBig,
            EspError::EncapMismatch => DropReason::PolicyMismatch,
        }
    }
}

/// A counter with a single writer.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Drops by reason.
#[derive(Default, Debug)]
pub struct Drops([Counter; DropReason::COUNT]);

impl Drops {
    #[inline]
    pub fn add(&self, r: DropReason, n: u64) {
        self.0[r as usize].add(n);
    }
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize].get()
    }
    pub fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }
    /// The non-zero reasons, for reports.
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL.iter().map(|&r| (r.name(), self.get(r))).filter(|&(_, n)| n > 0).collect()
    }
}

/// What one worker has done, on its own cache lines.
#[derive(Default, Debug)]
#[repr(align(64))]
pub struct WorkerCounters {
    pub rx_packets: Counter,
    pub tx_packets: Counter,
    pub encrypted: Counter,
    pub decrypted: Counter,
    pub bypassed: Counter,
    pub local: Counter,
    pub exceptions: Counter,
    pub iterations: Counter,
    pub flow_hits: Counter,
    pub flow_misses: Counter,
    /// Flows that pushed a live one out of the flow cache: it is too small for the flows.
    pub flow_evictions: Counter,
    pub drops: Drops,
}

/// Per-SA drops that happen after the SA is known, one slot per worker so each has one writer.
#[derive(Debug)]
pub struct SaDrops {
    per_worker: Box<[Drops]>,
}

impl SaDrops {
    pub fn new(workers: usize) -> Self {
        SaDrops { per_worker: (0..workers.max(1)).map(|_| Drops::default()).collect() }
    }
    #[inline]
    pub fn add(&self, worker: usize, r: DropReason) {
        if let Some(d) = self.per_worker.get(worker) {
            d.add(r, 1);
        }
    }
    pub fn get(&self, r: DropReason) -> u64 {
        self.per_worker.iter().map(|d| d.get(r)).sum()
    }
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL.iter().map(|&r| (r.name(), self.get(r))).filter(|&(_, n)| n > 0).collect()
    }
}
