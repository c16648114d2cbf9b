//! `Mbuf`: an owned DPDK packet buffer, freed on drop, laid out as a bare `rte_mbuf` pointer
//! so that a burst (`ArrayVec<Mbuf, N>`: an array and a count) goes straight to DPDK's burst
//! calls.

use arrayvec::ArrayVec;
use std::ptr::NonNull;

use crate::sys;

/// An owned packet buffer (possibly the head of a segment chain), laid out as
/// `*mut rte_mbuf`.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(pub(crate) NonNull<sys::rte_mbuf>);

/// Fills the free room of `bufs` through `fill(room, n)`, a DPDK call that writes up to `n`
/// mbufs at `room` and returns how many it wrote; returns that count.
///
/// # Safety
/// The mbufs `fill` writes must be valid and owned by nobody else.
#[inline]
pub(crate) unsafe fn fill_burst<const N: usize>(bufs: &mut ArrayVec<Mbuf, N>, fill: impl FnOnce(*mut *mut sys::rte_mbuf, usize) -> usize) -> usize {
    let len = bufs.len();
    // SAFETY: the room past `len` is the array's own; exactly the mbufs written are counted in.
    unsafe {
        let n = fill(bufs.as_mut_ptr().add(len).cast(), N - len).min(N - len);
        bufs.set_len(len + n);
        n
    }
}

/// Hands `bufs` to `give(mbufs, n)`, a DPDK call that takes ownership of the first k it
/// returns: those leave `bufs` unfreed, and the rest move to the front, in order. Returns k.
///
/// # Safety
/// `give` must take ownership of exactly the first k mbufs and no others.
#[inline]
pub(crate) unsafe fn give_burst<const N: usize>(bufs: &mut ArrayVec<Mbuf, N>, give: impl FnOnce(*mut *mut sys::rte_mbuf, usize) -> usize) -> usize {
    let len = bufs.len();
    // SAFETY: the first `len` slots are mbufs we own, laid out as a pointer array; the
    // ones given away are overwritten by the rest without being dropped.
    unsafe {
        let p = bufs.as_mut_ptr();
        let k = give(p.cast(), len).min(len);
        std::ptr::copy(p.add(k), p, len - k);
        bufs.set_len(len - k);
        k
    }
}

// SAFETY: an Mbuf is the unique owner of its buffer; freeing it from another thread is
// allowed by DPDK (mempool put is thread safe).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must be a valid mbuf allocated from a pktmbuf pool and not owned by anyone else.
    pub unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }

    /// Gives up ownership without freeing.
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let m = self.0;
        std::mem::forget(self);
        m
    }

    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf; the shared borrow of self keeps it alive and unchanged.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: we own a valid mbuf; &mut self makes this borrow unique.
        unsafe { self.0.as_mut() }
    }

    /// `rte_pktmbuf_mtod`, computed here rather than through the shim: it is per packet.
    #[inline]
    fn mtod(&self) -> *mut u8 {
        let m = self.raw();
        // SAFETY: data_off is within the buffer that buf_addr points to.
        unsafe { m.buf_addr.cast::<u8>().add(m.data_off.into()) }
    }

    /// Starts loading the mbuf header into the cache (the RX path reads it first).
    #[inline]
    pub fn prefetch_header(&self) {
        prefetch(self.0.as_ptr().cast());
    }

    /// Starts loading the first cache line of the packet data (its headers).
    #[inline]
    pub fn prefetch_data(&self) {
        prefetch(self.mtod());
    }

    /// The first segment's data (the whole packet when `is_contiguous()`).
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: mtod() is the start of data_len initialized bytes in the buffer, borrowed
        // no longer than self.
        unsafe { std::slice::from_raw_parts(self.mtod(), self.raw().data_len.into()) }
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as data(), and &mut self makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.mtod(), self.raw().data_len.into()) }
    }

    // prepend, append, adj and trim are per packet: a single segment (the common case) is
    // handled here as DPDK's inline functions do, a chain goes through the shim.

    /// Grows the packet by `n` bytes at the front (into the headroom) and returns them, or
    /// `None` (packet unchanged) if the headroom is short.
    #[inline]
    pub fn prepend(&mut self, n: u16) -> Option<&mut [u8]> {
        let m = self.raw_mut();
        if n > m.data_off {
            return None;
        }
        m.data_off -= n;
        m.data_len += n;
        m.pkt_len += u32::from(n);
        // SAFETY: the n bytes before the old data start are headroom inside the buffer, now
        // part of the data, borrowed no longer than &mut self.
        Some(unsafe { std::slice::from_raw_parts_mut(self.mtod(), n.into()) })
    }

    /// Grows the packet by `n` bytes at the end (of the last segment) and returns them, or
    /// `None` (packet unchanged) if the tailroom is short.
    #[inline]
    pub fn append(&mut self, n: u16) -> Option<&mut [u8]> {
        if !self.is_contiguous() {
            // SAFETY: we own the mbuf; a non-NULL result points at n bytes now part of the data.
            let p = unsafe { sys::shim_rte_pktmbuf_append(self.as_ptr(), n) };
            // SAFETY: p is valid for n bytes and borrowed no longer than &mut self.
            return (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts_mut(p.cast(), n.into()) });
        }
        let m = self.raw_mut();
        if u32::from(n) + u32::from(m.data_off) + u32::from(m.data_len) > u32::from(m.buf_len) {
            return None;
        }
        let old = m.data_len;
        m.data_len += n;
        m.pkt_len += u32::from(n);
        // SAFETY: the n bytes after the old data end are tailroom inside the buffer, now part
        // of the data, borrowed no longer than &mut self.
        Some(unsafe { std::slice::from_raw_parts_mut(self.mtod().add(old.into()), n.into()) })
    }

    /// Drops `n` bytes from the front; false (packet unchanged) if the first segment is shorter.
    #[inline]
    pub fn adj(&mut self, n: u16) -> bool {
        let m = self.raw_mut();
        if n > m.data_len {
            return false;
        }
        m.data_len -= n;
        m.data_off += n;
        m.pkt_len -= u32::from(n);
        true
    }

    /// Drops `n` bytes from the end; false (packet unchanged) if the last segment is shorter.
    #[inline]
    pub fn trim(&mut self, n: u16) -> bool {
        if !self.is_contiguous() {
            // SAFETY: we own the mbuf.
            return unsafe { sys::shim_rte_pktmbuf_trim(self.as_ptr(), n) == 0 };
        }
        let m = self.raw_mut();
        if n > m.data_len {
            return false;
        }
        m.data_len -= n;
        m.pkt_len -= u32::from(n);
        true
    }

    /// Packet length over all segments.
    #[inline]
    pub fn len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn headroom(&self) -> u16 {
        // SAFETY: we own a valid mbuf.
        unsafe { sys::shim_rte_pktmbuf_headroom(self.as_ptr()) }
    }

    /// Free bytes after the data of the last segment.
    pub fn tailroom(&self) -> u16 {
        // SAFETY: we own a valid mbuf.
        unsafe { sys::shim_rte_pktmbuf_tailroom(self.as_ptr()) }
    }

    /// True when the whole packet is in one segment, so `data()` is all of it.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The input port (set by the PMD on receive).
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    pub fn set_port(&mut self, port: u16) {
        self.raw_mut().port = port;
    }

    /// The RSS hash (valid when `ol_flags()` has `RTE_MBUF_F_RX_RSS_HASH`).
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: every bit pattern is a valid u32; reading either union member is fine.
        unsafe { self.raw().__bindgen_anon_2.hash.rss }
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    pub fn set_ol_flags(&mut self, flags: u64) {
        self.raw_mut().ol_flags = flags;
    }

    /// Rampart's u64 user field (an mbuf dynfield registered by `Eal::init`, name
    /// "rampart_dynfield_user"). Not reset on alloc: set it before reading it.
    pub fn user(&self) -> u64 {
        let off = crate::eal::user_field_offset();
        // SAFETY: off is a registered dynfield of size 8 and align 8 inside the mbuf.
        unsafe { self.as_ptr().cast::<u8>().add(off).cast::<u64>().read() }
    }

    pub fn set_user(&mut self, v: u64) {
        let off = crate::eal::user_field_offset();
        // SAFETY: as user(); &mut self makes the write unique.
        unsafe { self.as_ptr().cast::<u8>().add(off).cast::<u64>().write(v) }
    }

    /// Frees every mbuf in `bufs` in one call and leaves it empty.
    pub fn free_bulk<const N: usize>(bufs: &mut ArrayVec<Mbuf, N>) {
        let free = |p, n| {
            // SAFETY: the n mbufs at p are ours, and DPDK frees exactly those.
            unsafe { sys::shim_rte_pktmbuf_free_bulk(p, n as u32) };
            n
        };
        // SAFETY: `free` takes every mbuf it is given.
        unsafe { give_burst(bufs, free) };
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody uses it after this.
        unsafe { sys::shim_rte_pktmbuf_free(self.as_ptr()) }
    }
}

/// Starts loading the cache line at `p` into this core's caches (a hint: any address will do).
#[inline]
pub fn prefetch(p: *const u8) {
    prefetch_to(p, Cache::L1)
}

/// The cache a prefetch fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// The first level: for data used within the next few hundred nanoseconds.
    L1,
    /// The second level only: for data wanted later, whose lines would crowd the first.
    L2,
}

/// `prefetch` into the cache `to`.
#[inline]
pub fn prefetch_to(p: *const u8, to: Cache) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        match to {
            Cache::L1 => _mm_prefetch::<_MM_HINT_T0>(p.cast()),
            Cache::L2 => _mm_prefetch::<_MM_HINT_T1>(p.cast()),
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, to);
}
