//! Lock-free mbuf rings (`rte_ring`) and ethdev ports built over them (`rte_eth_from_rings`,
//! the net_ring PMD): a real port whose wire is a ring another thread feeds or drains, for
//! benchmarks and tests that drive the worker without a NIC.

use arrayvec::ArrayVec;
use std::ptr::NonNull;

use crate::mbuf::{fill_burst, give_burst};
use crate::{sys, Error, Mbuf, Port, Result, SOCKET_ID_ANY};

/// A multi-producer, multi-consumer ring of mbuf pointers. Like `Mempool`, a ring lives as
/// long as the process (ports built over it keep pointing at it), so the handle is `Copy`
/// and dropping it frees nothing.
#[derive(Debug, Clone, Copy)]
pub struct Ring(NonNull<sys::rte_ring>);

// SAFETY: an rte_ring created without the SP/SC flags is safe for any number of concurrent
// producers and consumers; the handle only allows those operations.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// Creates a ring named `name` (unique, at most 31 bytes) holding up to `size - 1`
    /// mbufs; `size` must be a power of two.
    pub fn new(name: &str, size: u32) -> Result<Ring> {
        const CALL: &str = "rte_ring_create";
        let c = crate::cstring(CALL, name)?;
        // SAFETY: c is a valid C string (DPDK copies it); flags 0 is MP/MC.
        let r = unsafe { sys::rte_ring_create(c.as_ptr(), size, SOCKET_ID_ANY, 0) };
        NonNull::new(r).map(Ring).ok_or_else(|| Error::errno(CALL))
    }

    /// Finds a ring created earlier under `name` (by us or by a PMD).
    pub fn lookup(name: &str) -> Option<Ring> {
        let c = crate::cstring("rte_ring_lookup", name).ok()?;
        // SAFETY: c is a valid C string.
        NonNull::new(unsafe { sys::rte_ring_lookup(c.as_ptr()) }).map(Ring)
    }

    /// Enqueues the front of `bufs` (as many as fit) and returns how many went in: those
    /// leave `bufs`, the rest stay, in order, with the caller.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&self, bufs: &mut ArrayVec<Mbuf, N>) -> usize {
        // SAFETY: the ring takes ownership of the first k mbufs, which it returns as k.
        unsafe { give_burst(bufs, |p, n| sys::shim_rte_ring_enqueue_burst(self.0.as_ptr(), p.cast(), n as u32) as usize) }
    }

    /// Dequeues mbufs into the free room of `bufs` and returns how many came.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&self, bufs: &mut ArrayVec<Mbuf, N>) -> usize {
        // SAFETY: the ring holds only mbufs enqueued as owned ones.
        unsafe { fill_burst(bufs, |p, n| sys::shim_rte_ring_dequeue_burst(self.0.as_ptr(), p.cast(), n as u32) as usize) }
    }

    /// Entries in the ring now.
    pub fn count(&self) -> usize {
        // SAFETY: self.0 is a live ring.
        unsafe { sys::shim_rte_ring_count(self.0.as_ptr()) as usize }
    }

    pub fn as_ptr(&self) -> *mut sys::rte_ring {
        self.0.as_ptr()
    }

    /// Frees the ring.
    ///
    /// # Safety
    /// No port may still use it, it must hold no mbufs the caller wants back, and no other
    /// copy of this handle may be used afterwards.
    pub unsafe fn free(self) {
        sys::rte_ring_free(self.0.as_ptr());
    }
}

impl Port {
    /// Creates a net_ring ethdev (named `net_ring_<name>` by the PMD): RX queue i dequeues from `rx[i]`, TX queue i
    /// enqueues to `tx[i]`. The port is then configured and started like any other (at most
    /// `rx.len()` RX and `tx.len()` TX queues). A second call with the same name is an error.
    pub fn from_rings(name: &str, rx: &[&Ring], tx: &[&Ring]) -> Result<Port> {
        const CALL: &str = "rte_eth_from_rings";
        if rx.is_empty() || tx.is_empty() {
            return Err(Error::new(CALL, libc::EINVAL));
        }
        let c = crate::cstring(CALL, name)?;
        let rxp: Vec<*mut sys::rte_ring> = rx.iter().map(|r| r.as_ptr()).collect();
        let txp: Vec<*mut sys::rte_ring> = tx.iter().map(|r| r.as_ptr()).collect();
        // SAFETY: both arrays hold live rings and outlive the call (the PMD copies the
        // pointers); numa node 0 is where --no-huge memory is.
        let ret = unsafe {
            sys::rte_eth_from_rings(c.as_ptr(), rxp.as_ptr(), rxp.len() as u32, txp.as_ptr(), txp.len() as u32, 0)
        };
        if ret < 0 {
            return Err(Error::errno(CALL));
        }
        Port::all().into_iter().find(|p| i32::from(p.id()) == ret).ok_or(Error::new(CALL, libc::ENODEV))
    }
}
