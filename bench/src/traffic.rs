//! The generator and the sink, in one thread on the core the worker does not use: the
//! generator fills mbufs from pre-built frames (one memcpy, a timestamp in the mbuf's user
//! field) and keeps each injection ring topped up; the sink drains the output rings, records
//! latency from the timestamps and returns the mbufs to the pool, from whose per-lcore cache
//! the generator takes them again. Open loop: as fast as the worker takes frames, or paced
//! to a set rate (`rate_pps`) for latency below saturation.

use dpdk_sys::{ArrayVec, Mbuf, Mempool, Ring};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Keep at most this many frames queued on an injection ring: enough that the worker never
/// finds it empty even when this thread loses its core for a scheduler slice. Latency at
/// saturation is mostly this queue; it is an open-loop test.
const TOP_UP: usize = 4096;

/// Paced, at most this many frames owed are sent at once.
const MAX_CREDIT: u64 = 32;

#[derive(Default)]
pub struct TrafficStats {
    pub stop: AtomicBool,
    /// Set first when stopping: no more frames are sent, what is in flight is still drained.
    pub stop_sending: AtomicBool,
    /// Frames a second to send, all injection rings together; 0 for as fast as they are taken.
    pub rate_pps: AtomicU64,
    /// Set by the main thread for the measured window; the sink records latency only then.
    pub measuring: AtomicBool,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// While measuring: times this thread lost its core for over `STALL_NS` (a gap between
    /// two turns of its loop), and the time lost, in ns. Latency includes what these delay.
    pub stalls: AtomicU64,
    pub stalled_ns: AtomicU64,
}

/// A gap in the generator's loop longer than this is counted as a stall.
const STALL_NS: u64 = 20_000;

pub struct Traffic {
    pub pool: Mempool,
    pub frames: Vec<Vec<u8>>,
    /// (ring, first template index) per injection queue.
    pub inject: Vec<Ring>,
    pub drain: Vec<Ring>,
    pub stats: Arc<TrafficStats>,
    /// The core to pin to (not a worker's).
    pub core: Option<usize>,
}

impl Traffic {
    /// Runs until `stats.stop`; returns the latency histogram of the measured window (ns).
    pub fn run(self) -> Histogram<u64> {
        if let Some(c) = self.core {
            core_affinity::set_for_current(core_affinity::CoreId { id: c });
        }
        let _lcore = dpdk_sys::register_thread();
        let ns_per_tick = 1e9 / dpdk_sys::tsc_hz() as f64;
        let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("histogram");
        let mut was_measuring = false;
        let mut next = 0usize;
        let (mut sent, mut recv) = (0u64, 0u64);
        let mut burst = ArrayVec::<Mbuf, 32>::new();
        let hz = dpdk_sys::tsc_hz() as f64;
        // Pacing: frames allowed = rate * time since the rate was set, less those sent since.
        let (mut paced_rate, mut paced_from, mut paced_sent) = (0u64, 0u64, 0u64);
        let mut turn = dpdk_sys::rdtsc();
        while !self.stats.stop.load(Relaxed) {
            let now = dpdk_sys::rdtsc();
            let gap = (now.wrapping_sub(turn) as f64 * ns_per_tick) as u64;
            turn = now;
            if gap > STALL_NS && was_measuring {
                self.stats.stalls.fetch_add(1, Relaxed);
                self.stats.stalled_ns.fetch_add(gap, Relaxed);
            }
            let rate = self.stats.rate_pps.load(Relaxed);
            if rate != paced_rate {
                (paced_rate, paced_from, paced_sent) = (rate, dpdk_sys::rdtsc(), 0);
            }
            for r in &self.inject {
                if self.stats.stop_sending.load(Relaxed) || r.count() >= TOP_UP {
                    continue;
                }
                let want = if paced_rate == 0 {
                    burst.capacity()
                } else {
                    let due = (dpdk_sys::rdtsc().wrapping_sub(paced_from) as f64 / hz * paced_rate as f64) as u64;
                    // Frames this thread could not send while it lost its core are forfeited,
                    // not sent late in one rush: a rush would queue in the gateway and measure
                    // the harness's stall, not the gateway. The throughput line shows the rate
                    // actually offered.
                    paced_sent = paced_sent.max(due.saturating_sub(MAX_CREDIT));
                    (due.saturating_sub(paced_sent) as usize).min(burst.capacity())
                };
                if want == 0 || !self.pool.alloc_bulk(&mut burst, want) {
                    continue;
                }
                let now = dpdk_sys::rdtsc();
                for m in burst.iter_mut() {
                    let f = &self.frames[next];
                    next = if next + 1 == self.frames.len() { 0 } else { next + 1 };
                    if let Some(d) = m.append(f.len() as u16) {
                        d.copy_from_slice(f);
                    }
                    m.set_user(now);
                }
                let n = r.enqueue_burst(&mut burst);
                sent += n as u64;
                paced_sent += n as u64;
                Mbuf::free_bulk(&mut burst);
            }
            let measuring = self.stats.measuring.load(Relaxed);
            if measuring && !was_measuring {
                hist.reset();
            }
            was_measuring = measuring;
            for r in &self.drain {
                loop {
                    let n = r.dequeue_burst(&mut burst);
                    if n == 0 {
                        break;
                    }
                    let now = dpdk_sys::rdtsc();
                    for m in burst.iter() {
                        if measuring {
                            let ns = (now.wrapping_sub(m.user()) as f64 * ns_per_tick) as u64;
                            let _ = hist.record(ns.max(1));
                        }
                    }
                    recv += n as u64;
                    Mbuf::free_bulk(&mut burst);
                    if n < burst.capacity() {
                        break;
                    }
                }
            }
            self.stats.sent.store(sent, Relaxed);
            self.stats.received.store(recv, Relaxed);
        }
        hist
    }
}
