//! The tables the workers read: one immutable snapshot (SPD, SAD, routes, neighbours, own
//! addresses), built by the control thread and published by epoch swap (see `qsbr`).

use crate::counters::SaDrops;
use crate::esp::Sa;
use crate::l3::{Locals, Mac, Neighbors, Routes};
use crate::spd::{Action, Selectors, Spd};
use dpdk_sys::Cache;
use std::sync::Arc;

/// An installed SA with what the dataplane keeps beside it. The selectors follow the SA (whose
/// size is whole lines), so the lines their check reads start on a line boundary.
#[derive(Debug)]
#[repr(C)]
pub struct SaEntry {
    pub sa: Sa,
    /// Inbound only: the inner packet must match one of these (RFC 4301 5.2, step 4).
    pub selectors: Selectors,
    pub name: String,
    pub drops: SaDrops,
}

impl SaEntry {
    /// `Sa::prefetch_out`, for the worker's prefetch ahead.
    #[inline]
    pub fn prefetch_out(&self, to: Cache) {
        self.sa.prefetch_out(to);
    }

    /// `Sa::prefetch_in`, and the selectors' first lines (a single selector's pattern is on
    /// them; more are behind them).
    #[inline]
    pub fn prefetch_in(&self, to: Cache) {
        self.sa.prefetch_in(to);
        let at = (&self.selectors as *const Selectors).cast::<u8>();
        (0..Selectors::HOT_BYTES).step_by(64).for_each(|off| dpdk_sys::prefetch_to(at.wrapping_add(off), to));
    }
}

pub use crate::hash::SpiMap;

/// One published snapshot. Parts that did not change are shared with the previous snapshot.
#[derive(Clone)]
pub struct Tables {
    /// Bumped whenever the SPD changes; flow cache entries carry it, so a cached verdict never
    /// outlives the policy set it came from. SA changes do not bump it: the cache stores the
    /// policy, and the SA is looked up through `out_sa` in the current snapshot.
    pub spd_gen: u64,
    pub spd: Arc<Spd>,
    /// What transit traffic that matches no policy gets.
    pub default_action: Action,
    /// For each SPD policy index: the outbound SA that a PROTECT policy uses now.
    pub out_sa: Vec<Option<Arc<SaEntry>>>,
    /// Inbound SAs by SPI.
    pub sad_in: SpiMap<Arc<SaEntry>>,
    pub routes: Arc<Routes>,
    pub neighbors: Arc<Neighbors>,
    pub locals: Arc<Locals>,
    /// The MAC address of each port, by port index.
    pub macs: Arc<Vec<Mac>>,
}
