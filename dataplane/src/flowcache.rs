//! The per-worker flow cache: 5-tuple to a u32 (a policy index or a verdict code) in a fixed,
//! set-associative array, so most packets skip the SPD. Each entry carries the table epoch it
//! was filled under and only answers for that epoch, so a newer policy or SA is never shadowed
//! by a stale entry. A worker that needs per-direction answers keeps one cache per direction.

use crate::spd::FlowKey;

/// Ways per bucket: 4 entries of 64 bytes, four cache lines per probe at most.
const WAYS: usize = 4;

#[derive(Clone, Copy)]
struct Entry {
    key: FlowKey,
    /// False for a way never filled, or cleared.
    filled: bool,
    value: u32,
    hash: u32,
    /// The cache's clock when last used; the smallest in a bucket is evicted first.
    last_use: u32,
    epoch: u64,
}

// A bucket is exactly four cache lines.
const _: () = assert!(std::mem::size_of::<Entry>() == 64);

/// Owned by one worker: no atomics, no allocation after `new`.
pub struct FlowCache {
    entries: Entries,
    /// log2 of the bucket count.
    bits: u32,
    clock: u32,
}

impl FlowCache {
    /// A cache of at least `capacity` entries (rounded up to a power of two, at least `WAYS`);
    /// 0 for none: every lookup misses and nothing is stored.
    pub fn new(capacity: usize) -> FlowCache {
        let buckets = if capacity == 0 { 0 } else { capacity.div_ceil(WAYS).next_power_of_two() };
        FlowCache {
            entries: Entries::new(buckets * WAYS),
            bits: buckets.max(1).trailing_zeros(),
            clock: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        for e in self.entries.iter_mut() {
            e.filled = false;
        }
    }

    /// The bucket's ways. The index comes from the high bits of a multiplicative hash: the
    /// NIC's RSS hash is constant in its low bits across one queue's flows (they index the
    /// RETA that picked this queue), so using them directly would crowd a few buckets.
    #[inline]
    fn index(&self, hash: u32) -> usize {
        if self.bits == 0 {
            0
        } else {
            (hash.wrapping_mul(0x9e37_79b9) >> (32 - self.bits)) as usize
        }
    }

    #[inline]
    fn bucket(&mut self, hash: u32) -> &mut [Entry] {
        let i = self.index(hash);
        &mut self.entries[i * WAYS..(i + 1) * WAYS]
    }

    /// Starts loading the first way of `hash`'s bucket (where a flow usually sits: ways are
    /// filled in order), ahead of `lookup`.
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        if let Some(e) = self.entries.get(self.index(hash) * WAYS) {
            dpdk_sys::prefetch((e as *const Entry).cast());
        }
    }

    /// The value cached for `key` under `epoch` (an entry from another epoch does not
    /// answer). `hash` is the RSS hash, or `key.hash32()`; it must be the same for a flow's
    /// inserts and lookups.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, hash: u32, epoch: u64) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        self.clock = self.clock.wrapping_add(1);
        let clock = self.clock;
        let e = self.bucket(hash).iter_mut().find(|e| e.filled && e.hash == hash && e.key == *key)?;
        (e.epoch == epoch).then(|| {
            e.last_use = clock;
            e.value
        })
    }

    /// Caches `value` for `key` under `epoch`. Takes, in order: the flow's own way (a
    /// stale entry is refreshed in place), an empty way, a way from an older epoch (dead
    /// anyway), the least recently used way.
    ///
    /// A flow that pushes out a live one starts as the least recently used itself, and
    /// moves up only when it is looked up again (one in 32 starts at the top, so a new set
    /// of flows still takes over). Plain LRU misses on every packet when more flows than
    /// ways take turns in one bucket; this keeps all but one of them (LIP/BIP, Qureshi et
    /// al., "Adaptive Insertion Policies for High Performance Caching", ISCA 2007).
    ///
    /// Returns true when a live entry (of `epoch`) was pushed out: the cache is too small
    /// for the flows.
    #[inline]
    pub fn insert(&mut self, key: &FlowKey, hash: u32, epoch: u64, value: u32) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        self.clock = self.clock.wrapping_add(1);
        let clock = self.clock;
        let bucket = self.bucket(hash);
        let rank = |e: &Entry| -> (u8, u32) {
            if e.filled && e.hash == hash && e.key == *key {
                (0, 0)
            } else if !e.filled {
                (1, 0)
            } else if e.epoch != epoch {
                (2, 0)
            } else {
                // Oldest first; wrapping so the clock may roll over.
                (3, u32::MAX - clock.wrapping_sub(e.last_use))
            }
        };
        let (way, r) =
            bucket.iter().enumerate().map(|(i, e)| (i, rank(e))).min_by_key(|&(_, r)| r).unwrap();
        let evicting = r.0 == 3;
        let last_use = if evicting && !clock.is_multiple_of(32) { bucket[way].last_use } else { clock };
        bucket[way] = Entry { key: *key, filled: true, value, hash, last_use, epoch };
        evicting
    }
}

/// The entries, zeroed (all empty) and on transparent huge pages where the kernel has them:
/// flows land in random buckets, and a TLB miss per packet (a two-level walk in a VM) costs
/// more than the lookup. Mapped directly, so that the hint comes before any page is touched.
struct Entries {
    map: *mut libc::c_void,
    map_len: usize,
    ptr: std::ptr::NonNull<Entry>,
    len: usize,
}

// SAFETY: Entries owns its mapping like a Box<[Entry]>; Entry is plain data.
unsafe impl Send for Entries {}

const HUGE_PAGE: usize = 2 << 20;

impl Entries {
    fn new(len: usize) -> Entries {
        let empty = Entries { map: std::ptr::null_mut(), map_len: 0, ptr: std::ptr::NonNull::dangling(), len: 0 };
        if len == 0 {
            return empty;
        }
        let size = len * std::mem::size_of::<Entry>();
        let map_len = size.next_multiple_of(HUGE_PAGE) + HUGE_PAGE;
        // SAFETY: a fresh private anonymous mapping: zero-filled, owned here, no aliasing.
        let map = unsafe {
            libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if map == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(std::alloc::Layout::array::<Entry>(len).expect("flow cache layout"));
        }
        let start = (map as usize).next_multiple_of(HUGE_PAGE);
        // A hint, before the pages are touched; ignored where THP is off.
        // SAFETY: the range lies inside our mapping.
        unsafe { libc::madvise(start as *mut libc::c_void, size.next_multiple_of(HUGE_PAGE), libc::MADV_HUGEPAGE) };
        // SAFETY: start is inside the mapping, non-null and page aligned (so aligned for Entry);
        // an all-zero Entry is a valid empty way (`filled` false, the rest plain integers).
        let ptr = unsafe { std::ptr::NonNull::new_unchecked(start as *mut Entry) };
        Entries { map, map_len, ptr, len }
    }
}

impl std::ops::Deref for Entries {
    type Target = [Entry];
    fn deref(&self) -> &[Entry] {
        // SAFETY: ptr holds len initialised (zeroed or written) entries that we own.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Entries {
    fn deref_mut(&mut self) -> &mut [Entry] {
        // SAFETY: as deref, and &mut self makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Entries {
    fn drop(&mut self) {
        if !self.map.is_null() {
            // SAFETY: the mapping made in `new`, unused after this.
            unsafe { libc::munmap(self.map, self.map_len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k4(last: u8, sport: u16) -> FlowKey {
        FlowKey::v4([10, 0, 0, last], [192, 168, 1, 1], 17, sport, 4500)
    }

    #[test]
    fn capacity_zero_is_off() {
        let mut c = FlowCache::new(0);
        let k = k4(1, 1000);
        assert!(!c.insert(&k, k.hash32(), 1, 42));
        assert_eq!(c.lookup(&k, k.hash32(), 1), None);
        assert_eq!(c.capacity(), 0);
    }

    #[test]
    fn hit_miss_and_stale_after_epoch_bump() {
        let mut c = FlowCache::new(64);
        let k = k4(1, 1000);
        let h = k.hash32();
        assert_eq!(c.lookup(&k, h, 1), None);
        c.insert(&k, h, 1, 42);
        assert_eq!(c.lookup(&k, h, 1), Some(42));
        // Same hash, other flow: not confused.
        assert_eq!(c.lookup(&k4(2, 1000), h, 1), None);
        // The tables moved on: the old answer must not be used.
        assert_eq!(c.lookup(&k, h, 2), None);
        assert!(!c.insert(&k, h, 2, 7), "the stale entry is refreshed, nothing pushed out");
        assert_eq!(c.lookup(&k, h, 2), Some(7));
        c.clear();
        assert_eq!(c.lookup(&k, h, 2), None);
    }

    #[test]
    fn lru_way_is_evicted() {
        // One bucket of four ways: every key lands in it.
        let mut c = FlowCache::new(4);
        assert_eq!(c.capacity(), 4);
        let keys: Vec<_> = (0..5).map(|i| k4(i, 1)).collect();
        for (i, k) in keys[..4].iter().enumerate() {
            assert!(!c.insert(k, k.hash32(), 1, i as u32));
        }
        // Touch 0, so 1 is now the least recently used.
        assert_eq!(c.lookup(&keys[0], keys[0].hash32(), 1), Some(0));
        assert!(c.insert(&keys[4], keys[4].hash32(), 1, 4), "a live entry pushed out");
        assert_eq!(c.lookup(&keys[1], keys[1].hash32(), 1), None);
        for i in [0usize, 2, 3, 4] {
            assert_eq!(c.lookup(&keys[i], keys[i].hash32(), 1), Some(i as u32));
        }
        // Entries of an older epoch go before live ones, and are not counted as evictions.
        let k = k4(9, 9);
        assert!(!c.insert(&k, k.hash32(), 2, 9));
        let k2 = k4(10, 9);
        assert!(!c.insert(&k2, k2.hash32(), 2, 10));
        assert_eq!(c.lookup(&k, k.hash32(), 2), Some(9));
        assert_eq!(c.lookup(&k2, k2.hash32(), 2), Some(10));
    }

    #[test]
    fn more_flows_than_ways_in_turn_still_hit() {
        // Five flows taking turns in one four-way bucket: plain LRU would miss every time.
        let mut c = FlowCache::new(4);
        let keys: Vec<_> = (0..5).map(|i| k4(i, 1)).collect();
        let rounds = 200;
        let mut hits = 0;
        for _ in 0..rounds {
            for (i, k) in keys.iter().enumerate() {
                let h = k.hash32();
                match c.lookup(k, h, 1) {
                    Some(v) => {
                        assert_eq!(v, i as u32);
                        hits += 1;
                    }
                    None => {
                        c.insert(k, h, 1, i as u32);
                    }
                }
            }
        }
        assert!(hits * 2 > rounds * 5, "hits {hits} of {}", rounds * 5);
    }

    #[test]
    fn v4_and_v6_keys_do_not_collide() {
        let mut c = FlowCache::new(4);
        let v4 = FlowKey::v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 1, 2);
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s[..4].copy_from_slice(&[10, 0, 0, 1]);
        d[..4].copy_from_slice(&[10, 0, 0, 2]);
        let v6 = FlowKey::v6(s, d, 6, 1, 2);
        assert_ne!(v4, v6);
        assert_ne!(v4.hash32(), v6.hash32());
        // Even under the same hash (a colliding RSS value), the keys stay apart.
        c.insert(&v4, 5, 1, 4);
        assert_eq!(c.lookup(&v6, 5, 1), None);
        c.insert(&v6, 5, 1, 6);
        assert_eq!(c.lookup(&v4, 5, 1), Some(4));
        assert_eq!(c.lookup(&v6, 5, 1), Some(6));
    }

    #[test]
    fn rss_hashes_sharing_low_bits_spread_over_buckets() {
        let mut c = FlowCache::new(1024);
        // Hashes a 4-queue RETA would give one queue: the low 7 bits fixed.
        for i in 0..256u32 {
            let k = k4(i as u8, i as u16);
            assert!(!c.insert(&k, (i << 7) | 0x15, 1, i), "flow {i} pushed another out");
        }
    }
}
