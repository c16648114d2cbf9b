//! Packet-buffer pools (`rte_pktmbuf_pool_create`), the only source of `Mbuf`s.

use arrayvec::ArrayVec;
use std::ptr::NonNull;

use crate::mbuf::fill_burst;
use crate::{sys, Error, Mbuf, Result};

/// Any NUMA socket (`SOCKET_ID_ANY`).
pub const SOCKET_ID_ANY: i32 = -1;

/// A handle to a pktmbuf pool. Pools live as long as the process (DPDK apps create them
/// once; ports and in-flight mbufs keep pointing into them), so dropping a handle frees
/// nothing and the handle is `Copy`.
///
/// Allocation is thread safe. EAL threads (and threads given an lcore by
/// `register_thread`) get a lock-free per-lcore cache of `cache` mbufs; other threads go to
/// the shared ring on every call, which is correct but slower.
#[derive(Debug, Clone, Copy)]
pub struct Mempool(NonNull<sys::rte_mempool>);

// SAFETY: rte_mempool get/put are multi-producer/multi-consumer safe; the per-lcore caches
// are indexed by the calling thread's lcore id, so no two threads share one.
unsafe impl Send for Mempool {}
// SAFETY: as above; &Mempool only allows those thread-safe operations.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `n` mbufs with `data_room` bytes each (headroom included, e.g.
    /// `RTE_MBUF_DEFAULT_BUF_SIZE`) and a per-lcore cache of `cache`. `name` must be unique.
    pub fn new_pktmbuf(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool> {
        const CALL: &str = "rte_pktmbuf_pool_create";
        let cname = crate::cstring(CALL, name)?;
        // SAFETY: cname is a valid C string for the call; DPDK copies the name.
        let mp = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        NonNull::new(mp).map(Mempool).ok_or_else(|| Error::errno(CALL))
    }

    /// Finds a pool created earlier under `name`.
    pub fn lookup(name: &str) -> Option<Mempool> {
        let cname = crate::cstring("rte_mempool_lookup", name).ok()?;
        // SAFETY: cname is a valid C string.
        NonNull::new(unsafe { sys::rte_mempool_lookup(cname.as_ptr()) }).map(Mempool)
    }

    /// One mbuf, reset (empty, default headroom), or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: self.0 is a live pktmbuf pool; a non-NULL result is a fresh mbuf we own.
        NonNull::new(unsafe { sys::shim_rte_pktmbuf_alloc(self.0.as_ptr()) }).map(Mbuf)
    }

    /// Adds `n` fresh mbufs to `bufs`, all or nothing: returns false, and adds none, when
    /// the pool cannot supply them or `bufs` has no room for them.
    pub fn alloc_bulk<const N: usize>(&self, bufs: &mut ArrayVec<Mbuf, N>, n: usize) -> bool {
        if n > bufs.remaining_capacity() {
            return false;
        }
        // SAFETY: on success DPDK writes n fresh mbufs that we own, on failure none.
        let got = unsafe {
            fill_burst(bufs, |p, _| match sys::shim_rte_pktmbuf_alloc_bulk(self.0.as_ptr(), p, n as u32) {
                0 => n,
                _ => 0,
            })
        };
        got == n
    }

    /// Mbufs free in the pool (including those in per-lcore caches).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: self.0 is a live pool.
        unsafe { sys::rte_mempool_avail_count(self.0.as_ptr()) }
    }

    /// Mbufs currently allocated from the pool (held by the app or by PMD queues).
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: self.0 is a live pool.
        unsafe { sys::rte_mempool_in_use_count(self.0.as_ptr()) }
    }

    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.0.as_ptr()
    }

    /// Frees the pool.
    ///
    /// # Safety
    /// No mbuf of the pool may be in use, no port queue may still refer to it, and no other
    /// copy of this handle may be used afterwards.
    pub unsafe fn free(self) {
        sys::rte_mempool_free(self.0.as_ptr());
    }
}
