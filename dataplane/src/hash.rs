//! A fast hasher for the tables the workers read (SPIs, neighbours): keys chosen by us or by
//! peers we authenticated, so SipHash's flood resistance buys nothing on the packet path; and
//! the inbound SAD's SPI map, which a worker can prefetch.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default)]
pub struct FastHasher(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(n as u64)
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(n as u64)
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64)
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64)
    }
}

pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The inbound SAD's map from SPI to SA: open addressing with linear probing in a table at
/// most half full, so that a lookup is one probe of one cache line nearly always, and so that
/// a worker can prefetch that line (`prefetch`) a burst ahead of the lookup (std's map gives
/// no way to). SPI 0 is reserved (RFC 4303 2.1) and marks a free slot.
#[derive(Clone)]
pub struct SpiMap<V> {
    slots: Box<[(u32, Option<V>)]>,
    len: usize,
}

impl<V> Default for SpiMap<V> {
    fn default() -> Self {
        SpiMap { slots: Box::new([]), len: 0 }
    }
}

impl<V> SpiMap<V> {
    /// The slot `spi` is first looked for in (the table is not empty; its size is a power of
    /// two, at least 16).
    #[inline]
    fn home(&self, spi: u32) -> usize {
        // The top bits of a multiplicative hash: sequential SPIs spread over the table.
        ((spi as u64).wrapping_mul(K) >> (64 - self.slots.len().trailing_zeros())) as usize
    }

    #[inline]
    pub fn get(&self, spi: &u32) -> Option<&V> {
        // SPI 0 needs no test of its own: it marks a free slot, so a probe for it stops at one.
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(*spi);
        loop {
            match &self.slots[i] {
                (0, _) => return None,
                (k, v) if k == spi => return v.as_ref(),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Starts loading the slot `get(spi)` will read first.
    #[inline]
    pub fn prefetch(&self, spi: u32) {
        if !self.slots.is_empty() {
            dpdk_sys::prefetch((&self.slots[self.home(spi)] as *const (u32, Option<V>)).cast());
        }
    }

    /// Inserts or replaces; returns the SA it replaced. SPI 0 is never stored.
    pub fn insert(&mut self, spi: u32, v: V) -> Option<V> {
        if spi == 0 {
            return None;
        }
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(spi);
        loop {
            let slot = &mut self.slots[i];
            if slot.0 == 0 {
                *slot = (spi, Some(v));
                self.len += 1;
                return None;
            }
            if slot.0 == spi {
                return slot.1.replace(v);
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, (0..size).map(|_| (0, None)).collect());
        self.len = 0;
        for (spi, v) in old.into_vec() {
            if let Some(v) = v {
                self.insert(spi, v);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().filter_map(|(_, v)| v.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::SpiMap;
    use std::collections::HashMap;

    /// Against std's map, with SPIs that crowd a few home slots and the reserved 0.
    #[test]
    fn spi_map_agrees_with_a_hash_map() {
        let mut ours = SpiMap::default();
        let mut std_map = HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for n in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Half sequential (as a gateway allocates), half random, some repeated.
            let spi = if n % 2 == 0 { 0x1000 + n / 2 } else { (x as u32) % 50_000 };
            assert_eq!(ours.insert(spi, n), if spi == 0 { None } else { std_map.insert(spi, n) });
            if n % 97 == 0 {
                for probe in [spi, spi.wrapping_add(1), 0, x as u32] {
                    assert_eq!(ours.get(&probe), std_map.get(&probe));
                }
            }
        }
        assert_eq!(ours.len(), std_map.len());
        assert!(std_map.iter().all(|(k, v)| ours.get(k) == Some(v)));
        let mut values: Vec<u32> = ours.values().copied().collect();
        let mut want: Vec<u32> = std_map.values().copied().collect();
        values.sort_unstable();
        want.sort_unstable();
        assert_eq!(values, want);
        assert_eq!(SpiMap::<u32>::default().get(&5), None);
    }
}
