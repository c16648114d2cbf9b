//! Lock-free publication of immutable table snapshots to the workers (quiescent-state-based
//! reclamation, as DPDK's `rte_rcu_qsbr`): the control thread swaps in a new snapshot and frees
//! an old one only after every online worker has reported a quiescent state past the swap.
//!
//! Every snapshot is stamped with the epoch it was published under (1 for the initial one, +1
//! per `publish`); `Reader::epoch` and `Publisher::epoch` return it, so workers can tag caches
//! (the flow cache) with the epoch of the tables they were filled from.
//!
//! The protocol, and why the orderings below are enough:
//! - Each reader owns a slot holding the epoch of the newest snapshot it has moved on to
//!   (`OFFLINE` when it holds none). While a reader is online its slot never exceeds the epoch
//!   of any snapshot it may still dereference.
//! - A snapshot of epoch `s` is freed once it has been replaced and every slot reads `> s`.
//! - A reader reports with a Release store after its last use of the old snapshot; the writer
//!   reads slots with Acquire, so those uses happen-before the free.
//! - Going online races with the writer: the reader stores "online, epoch 0" to its slot, then
//!   a SeqCst fence, then loads the pointer; the writer swaps the pointer, then a SeqCst fence,
//!   then reads the slots. Of two SeqCst fences one comes first, so either the writer sees the
//!   reader online (and keeps the old snapshot) or the reader loads the new pointer (and never
//!   sees the old one). Without the fences both could read the stale value (store buffering).

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Slot value of a reader that holds no snapshot: larger than every epoch, so it never holds
/// reclamation back.
const OFFLINE: u64 = u64::MAX;

struct Snap<T> {
    epoch: u64,
    val: T,
}

/// One reader's report. Aligned to two cache lines: a worker's store must not invalidate its
/// neighbour's line, and the adjacent-line prefetcher on x86 pulls lines in pairs.
#[repr(align(128))]
struct Slot {
    seen: AtomicU64,
}

struct Shared<T> {
    current: AtomicPtr<Snap<T>>,
    slots: Box<[Slot]>,
    /// Retired snapshots a dropped publisher could not free yet; freed with the last reader.
    orphans: Mutex<Vec<NonNull<Snap<T>>>>,
}

// SAFETY: `Shared` hands out `&T` to several threads and moves `T` to whichever thread frees
// it; every `Shared` is built by `publisher`, which requires `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for Shared<T> {}
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let orphans = std::mem::take(self.orphans.get_mut().unwrap_or_else(|e| e.into_inner()));
        for p in orphans.into_iter().chain(NonNull::new(*self.current.get_mut())) {
            // SAFETY: the last publisher and reader handle is gone, so nothing can dereference
            // these; each came from `Box::into_raw` and is freed exactly once.
            drop(unsafe { Box::from_raw(p.as_ptr()) });
        }
    }
}

/// The single writer: publishes new snapshots and frees retired ones.
pub struct Publisher<T> {
    shared: Arc<Shared<T>>,
    epoch: u64,
    /// Replaced snapshots still possibly in use, oldest first.
    retired: Vec<NonNull<Snap<T>>>,
}

// SAFETY: see `Shared`; the retired pointers are owned by the publisher alone.
unsafe impl<T: Send + Sync> Send for Publisher<T> {}

/// One worker's read side. `Send` (it moves to its worker thread) but not `Sync`.
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    slot: usize,
    /// The snapshot taken at the last quiescent point; only valid while `online`.
    cur: *const Snap<T>,
    epoch: u64,
    online: bool,
    _not_sync: PhantomData<*const ()>,
}

// SAFETY: a reader only hands out `&T` (needs `T: Sync`) and may end up dropping the shared
// state, which drops `T` (needs `T: Send`).
unsafe impl<T: Send + Sync> Send for Reader<T> {}

/// Creates the publisher and `readers` readers, all online and holding `initial` (epoch 1).
/// A reader that will not run soon should be dropped or put `offline`, or it holds every
/// retired snapshot in memory.
pub fn publisher<T: Send + Sync>(initial: T, readers: usize) -> (Publisher<T>, Vec<Reader<T>>) {
    let first = Box::into_raw(Box::new(Snap { epoch: 1, val: initial }));
    let shared = Arc::new(Shared {
        current: AtomicPtr::new(first),
        slots: (0..readers).map(|_| Slot { seen: AtomicU64::new(1) }).collect(),
        orphans: Mutex::new(Vec::new()),
    });
    let rs = (0..readers)
        .map(|slot| Reader {
            shared: shared.clone(),
            slot,
            cur: first,
            epoch: 1,
            online: true,
            _not_sync: PhantomData,
        })
        .collect();
    (Publisher { shared, epoch: 1, retired: Vec::new() }, rs)
}

impl<T> Publisher<T> {
    /// Swaps in `new`, retires the old snapshot and frees whatever has become free; never
    /// waits for the readers. Returns the epoch of `new`.
    pub fn publish(&mut self, new: T) -> u64 {
        self.epoch += 1;
        let p = Box::into_raw(Box::new(Snap { epoch: self.epoch, val: new }));
        // Release: a reader that Acquire-loads `p` sees the snapshot fully built.
        let old = self.shared.current.swap(p, Ordering::Release);
        self.retired.push(NonNull::new(old).expect("current snapshot is never null"));
        self.reclaim();
        self.epoch
    }

    /// Frees the retired snapshots that no reader can still hold; returns how many. Never blocks.
    pub fn reclaim(&mut self) -> usize {
        if self.retired.is_empty() {
            return 0;
        }
        // Pairs with the fence in `Reader::online` (see the module comment), and orders every
        // earlier swap before the slot reads below.
        fence(Ordering::SeqCst);
        // Acquire: a reader's uses of a snapshot happen-before its report, so before our free.
        let min = self
            .shared
            .slots
            .iter()
            .map(|s| s.seen.load(Ordering::Acquire))
            .min()
            .unwrap_or(OFFLINE);
        // SAFETY: retired snapshots are only freed below, by us, so they are still allocated.
        let n = self.retired.iter().take_while(|p| unsafe { p.as_ref() }.epoch < min).count();
        for p in self.retired.drain(..n) {
            // SAFETY: every online reader has reported an epoch newer than this snapshot, so it
            // has dropped every reference into it; offline readers hold none; it came from
            // `Box::into_raw` and leaves `retired` here, so it is freed once.
            drop(unsafe { Box::from_raw(p.as_ptr()) });
        }
        n
    }

    /// Reclaims until nothing is pending or `timeout` passes; true when nothing is pending.
    /// For shutdown and tests: an online reader that never reports makes this time out.
    pub fn synchronize(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.reclaim();
            if self.retired.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// The snapshot published last.
    pub fn current(&self) -> &T {
        // SAFETY: only this publisher replaces or frees snapshots, and it cannot while `&self`
        // is borrowed; Relaxed reads back our own store.
        unsafe { &(*self.shared.current.load(Ordering::Relaxed)).val }
    }

    /// The epoch of the snapshot published last.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Retired snapshots not freed yet.
    pub fn pending(&self) -> usize {
        self.retired.len()
    }

    /// The number of reader slots.
    pub fn readers(&self) -> usize {
        self.shared.slots.len()
    }
}

impl<T> Drop for Publisher<T> {
    fn drop(&mut self) {
        self.reclaim();
        // Readers may still use these; the last handle to `Shared` frees them.
        let mut orphans = self.shared.orphans.lock().unwrap_or_else(|e| e.into_inner());
        orphans.append(&mut self.retired);
    }
}

impl<T> Reader<T> {
    fn slot(&self) -> &AtomicU64 {
        &self.shared.slots[self.slot].seen
    }

    /// The snapshot taken at the last quiescent point (or `online`). It stays the same, and
    /// valid, until the next `quiescent` or `offline`, which need `&mut self`.
    ///
    /// Panics if the reader is offline: an offline reader holds no snapshot.
    #[inline]
    pub fn snapshot(&self) -> &T {
        assert!(self.online, "qsbr: snapshot() on an offline reader");
        // SAFETY: while online our slot is <= the epoch of `cur`, so the publisher keeps it.
        unsafe { &(*self.cur).val }
    }

    /// The epoch of `snapshot()`.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Reports that no reference into the current snapshot is held any more, and moves to the
    /// newest one. Call once per poll iteration. One load, and one plain store to our own
    /// line only when a new snapshot was published; no read-modify-write.
    #[inline]
    pub fn quiescent(&mut self) {
        if !self.online {
            return;
        }
        // Acquire: pairs with the Release swap in `publish`, so the snapshot is fully built.
        let p = self.shared.current.load(Ordering::Acquire);
        if std::ptr::eq(p, self.cur) {
            // Our slot already says this epoch, and nothing older is held.
            return;
        }
        // SAFETY: `p` is current, so not retired; our slot (<= epoch of `cur` <= epoch of `p`)
        // keeps it alive from here on.
        let epoch = unsafe { (*p).epoch };
        self.cur = p;
        self.epoch = epoch;
        // Release: our last uses of the old snapshot happen-before the publisher's free.
        self.slot().store(epoch, Ordering::Release);
    }

    /// Stops holding any snapshot, so a reader that blocks or sleeps does not hold up
    /// reclamation. `snapshot()` must not be called until `online()`.
    pub fn offline(&mut self) {
        if self.online {
            self.online = false;
            // Release: our uses of `cur` happen-before the publisher frees it.
            self.slot().store(OFFLINE, Ordering::Release);
        }
    }

    /// Resumes reading, from the newest snapshot.
    pub fn online(&mut self) {
        if self.online {
            return;
        }
        // 0: online, protecting every snapshot, until we know which one we hold.
        self.slot().store(0, Ordering::Relaxed);
        // See the module comment: without it, the publisher could still read OFFLINE and free
        // the snapshot we are about to load.
        fence(Ordering::SeqCst);
        let p = self.shared.current.load(Ordering::Acquire);
        // SAFETY: the fence argument above: `p` is not freed while our slot is <= its epoch.
        let epoch = unsafe { (*p).epoch };
        self.cur = p;
        self.epoch = epoch;
        self.online = true;
        self.slot().store(epoch, Ordering::Release);
    }

    pub fn is_online(&self) -> bool {
        self.online
    }
}

impl<T> Drop for Reader<T> {
    fn drop(&mut self) {
        self.offline();
    }
}
