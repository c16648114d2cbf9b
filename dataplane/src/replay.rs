//! The RFC 4303 anti-replay window (3.4.3), with extended sequence numbers inferred from
//! the low 32 bits on the wire as in RFC 4303 Appendix A2.
//!
//! `check` runs before decryption and changes nothing; `update` runs only after the ICV
//! verifies, so a forged packet can never move the window.
//!
//! Concurrency: the state is atomics so that an `Sa` is `Sync` and can sit in an `Arc`
//! shared by the workers, but the design has exactly one worker process a given inbound
//! SA (RSS on the outer header pins it), so `update` is single-writer: it uses plain
//! loads and stores, no read-modify-write. `top` is published with Release after the
//! bitmap words it covers, and read with Acquire.

use std::sync::atomic::{AtomicU64, Ordering::*};

/// The window sizes allowed: 0 disables anti-replay; otherwise a multiple of 64.
pub const MIN_WINDOW: u32 = 64;
pub const MAX_WINDOW: u32 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Left of the window (or sequence number 0, which no sender uses).
    TooOld,
    /// Already received.
    Duplicate,
}

impl core::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ReplayError::TooOld => "sequence number left of the replay window",
            ReplayError::Duplicate => "duplicate sequence number",
        })
    }
}

impl std::error::Error for ReplayError {}

/// A window size that is not 0 or a multiple of 64 in 64..=4096.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadWindowSize(pub u32);

/// The receive state of one inbound SA.
#[derive(Debug)]
pub struct ReplayWindow {
    /// Window size in packets; 0 = anti-replay disabled (ESN inference still needs `top`).
    size: u32,
    esn: bool,
    /// The highest sequence number that verified (0 = none yet).
    top: AtomicU64,
    /// `bitmap`'s length in bits, less one. The bitmap is `size` rounded up to a power of
    /// two, so that a number's bit is found with a mask rather than a division (two a packet
    /// in order).
    mask: u64,
    /// Bit `s & mask` is set when sequence `s` (within the window) has been received.
    bitmap: Box<[AtomicU64]>,
}

impl ReplayWindow {
    pub fn new(size: u32, esn: bool) -> Result<ReplayWindow, BadWindowSize> {
        if size != 0 && (!size.is_multiple_of(64) || !(MIN_WINDOW..=MAX_WINDOW).contains(&size)) {
            return Err(BadWindowSize(size));
        }
        let words = if size == 0 { 0 } else { (size / 64).next_power_of_two() as usize };
        Ok(ReplayWindow {
            size,
            esn,
            top: AtomicU64::new(0),
            mask: (words as u64 * 64).wrapping_sub(1),
            bitmap: (0..words).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn esn(&self) -> bool {
        self.esn
    }

    /// The highest sequence number accepted so far.
    pub fn top(&self) -> u64 {
        self.top.load(Acquire)
    }

    /// Restarts the window at `top`, counting every number up to it as seen. For state
    /// handed over from another node (HA) and for tests that need a high starting point.
    pub fn reset_to(&self, top: u64) {
        for w in self.bitmap.iter() {
            w.store(u64::MAX, Relaxed);
        }
        self.top.store(top, Release);
    }

    /// The full sequence number for `seq_low` (RFC 4303 A2.2), and whether it passes the
    /// window. Changes nothing.
    pub fn check(&self, seq_low: u32) -> Result<u64, ReplayError> {
        let top = self.top();
        let seq = if self.esn {
            self.infer(top, seq_low)?
        } else {
            seq_low as u64
        };
        if seq == 0 {
            return Err(ReplayError::TooOld);
        }
        if self.size == 0 || seq > top {
            return Ok(seq);
        }
        if top - seq >= self.size as u64 {
            return Err(ReplayError::TooOld);
        }
        if self.bit(seq) {
            return Err(ReplayError::Duplicate);
        }
        Ok(seq)
    }

    /// RFC 4303 Appendix A2.2: pick the high half that puts `seq_low` nearest the window.
    fn infer(&self, top: u64, seq_low: u32) -> Result<u64, ReplayError> {
        // With anti-replay off there is no window, but inference still needs a span to
        // tell "slightly late" from "wrapped"; one word is the RFC's minimum window.
        let w = self.size.max(MIN_WINDOW);
        let (th, tl) = ((top >> 32) as u32, top as u32);
        let bottom = tl.wrapping_sub(w - 1);
        let high = if tl >= w - 1 {
            // Case A: the window sits within one high half.
            if seq_low >= bottom {
                Some(th)
            } else {
                th.checked_add(1)
            }
        } else if seq_low >= bottom {
            // Case B: the window spans the last wrap; a big seq_low is from before it.
            th.checked_sub(1)
        } else {
            Some(th)
        };
        high.map(|h| ((h as u64) << 32) | seq_low as u64)
            .ok_or(ReplayError::TooOld)
    }

    /// Marks `seq` received. Call only after the ICV verified. Fails if the number became
    /// a duplicate or fell out of the window since `check`.
    pub fn update(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::TooOld);
        }
        let top = self.top();
        if self.size == 0 {
            if seq > top {
                self.top.store(seq, Release);
            }
            return Ok(());
        }
        if seq > top {
            // Forget the numbers that the new right edge pushes out, then publish it.
            let first = top + 1;
            if seq - top >= self.size as u64 {
                for w in self.bitmap.iter() {
                    w.store(0, Relaxed);
                }
            } else {
                self.clear_range(first, seq);
            }
            self.set_bit(seq);
            self.top.store(seq, Release);
            return Ok(());
        }
        if top - seq >= self.size as u64 {
            return Err(ReplayError::TooOld);
        }
        if self.bit(seq) {
            return Err(ReplayError::Duplicate);
        }
        self.set_bit(seq);
        Ok(())
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        // Within the window (fewer than `size` <= bits numbers) no two share a bit; a bit is
        // cleared when the window's right edge passes a number that maps to it.
        let i = (seq & self.mask) as usize;
        (i / 64, 1u64 << (i % 64))
    }

    fn bit(&self, seq: u64) -> bool {
        let (w, m) = self.slot(seq);
        self.bitmap[w].load(Relaxed) & m != 0
    }

    fn set_bit(&self, seq: u64) {
        let (w, m) = self.slot(seq);
        // Single writer (see the module doc): load + store, no locked RMW.
        let v = self.bitmap[w].load(Relaxed);
        self.bitmap[w].store(v | m, Relaxed);
    }

    /// Clears the bits of `from..=to` (fewer than `size` numbers), whole words at a time
    /// where they line up.
    fn clear_range(&self, from: u64, to: u64) {
        // Count rather than compare with `to`: `to` may be u64::MAX.
        let (mut s, mut n) = (from, to - from + 1);
        while n > 0 {
            let (w, m) = self.slot(s);
            if m == 1 && n >= 64 {
                self.bitmap[w].store(0, Relaxed);
                s = s.wrapping_add(64);
                n -= 64;
            } else {
                let v = self.bitmap[w].load(Relaxed);
                self.bitmap[w].store(v & !m, Relaxed);
                s = s.wrapping_add(1);
                n -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(w: &ReplayWindow, low: u32) -> u64 {
        let s = w.check(low).unwrap();
        w.update(s).unwrap();
        s
    }

    #[test]
    fn sizes() {
        assert!(ReplayWindow::new(0, false).is_ok());
        assert!(ReplayWindow::new(64, false).is_ok());
        assert!(ReplayWindow::new(4096, true).is_ok());
        for bad in [32, 65, 100, 4160, 8192] {
            assert_eq!(
                ReplayWindow::new(bad, false).unwrap_err(),
                BadWindowSize(bad)
            );
        }
    }

    #[test]
    fn in_order_out_of_order_old_and_duplicate() {
        for size in [64, 4096] {
            let w = ReplayWindow::new(size, false).unwrap();
            assert_eq!(w.check(0), Err(ReplayError::TooOld));
            for s in 1..=10 {
                accept(&w, s);
            }
            assert_eq!(w.check(10), Err(ReplayError::Duplicate));
            assert_eq!(w.check(5), Err(ReplayError::Duplicate));
            // Jump ahead, then fill a hole inside the window.
            let far = 10 + size - 2;
            accept(&w, far);
            assert_eq!(w.check(11), Ok(11));
            accept(&w, 11);
            assert_eq!(w.check(11), Err(ReplayError::Duplicate));
            // The left edge: far - size + 1 is the oldest number still inside.
            assert_eq!(w.check(far - size), Err(ReplayError::TooOld));
            assert_eq!(w.check(far - size + 1), Err(ReplayError::Duplicate)); // = 9, seen
            accept(&w, far + 1);
            assert_eq!(w.check(far - size + 1), Err(ReplayError::TooOld));
            assert_eq!(w.check(12), Ok(12));
            // A big jump clears everything.
            accept(&w, far + 10 * size);
            assert_eq!(
                w.check(far + 10 * size - 1),
                Ok((far + 10 * size - 1) as u64)
            );
            // Bits for numbers pushed out of the window are not left over.
            let w2 = ReplayWindow::new(size, false).unwrap();
            accept(&w2, 1);
            accept(&w2, size);
            assert_eq!(w2.check(1), Err(ReplayError::Duplicate));
            accept(&w2, size + 2);
            // size + 1 shares seq 1's bit, which must have been cleared when 1 left.
            assert_eq!(w2.check(size + 1), Ok((size + 1) as u64));
        }
    }

    #[test]
    fn update_rechecks_after_check() {
        let w = ReplayWindow::new(64, false).unwrap();
        let s = w.check(7).unwrap();
        w.update(s).unwrap();
        // A second copy passed `check` before the first was committed.
        assert_eq!(w.update(s), Err(ReplayError::Duplicate));
        accept(&w, 1000);
        assert_eq!(w.update(8), Err(ReplayError::TooOld));
    }

    #[test]
    fn esn_crosses_2_pow_32() {
        for size in [64, 4096] {
            let w = ReplayWindow::new(size, true).unwrap();
            w.reset_to(0xffff_fff0);
            assert_eq!(accept(&w, 0xffff_fffe), 0xffff_fffe);
            // Low half wrapped: inferred into the next high half.
            assert_eq!(accept(&w, 3), 0x1_0000_0003);
            // A late packet from before the wrap is still placed in high half 0 (case B).
            assert_eq!(w.check(0xffff_ffff), Ok(0xffff_ffff));
            accept(&w, 0xffff_ffff);
            assert_eq!(w.check(0xffff_fffe), Err(ReplayError::Duplicate));
            // Low 0 after the wrap is 2^32, a valid number.
            assert_eq!(accept(&w, 0), 0x1_0000_0000);
            // Far from the window in case A: next high half.
            w.reset_to(0x5_8000_0000);
            assert_eq!(w.check(0x10), Ok(0x6_0000_0010));
            assert_eq!(w.check(0x8000_0001), Ok(0x5_8000_0001));
        }
        // Before anything arrived, a huge low half would need high half -1: too old.
        let w = ReplayWindow::new(64, true).unwrap();
        assert_eq!(w.check(0xffff_fff0), Err(ReplayError::TooOld));
        assert_eq!(w.check(1), Ok(1));
    }

    #[test]
    fn esn_reaches_the_last_number() {
        let w = ReplayWindow::new(128, true).unwrap();
        w.reset_to(u64::MAX - 70);
        assert_eq!(accept(&w, u32::MAX), u64::MAX);
        assert_eq!(w.check(u32::MAX), Err(ReplayError::Duplicate));
        assert_eq!(accept(&w, u32::MAX - 1), u64::MAX - 1);
    }

    proptest::proptest! {
        /// Against a model that remembers every number it accepted: a number passes iff it
        /// is new and right of the window's left edge (RFC 4303 3.4.3), for window sizes
        /// that are and are not powers of two (the bitmap is rounded up to one).
        #[test]
        fn matches_a_model(size in proptest::sample::select(vec![64u32, 128, 192, 320, 4096]),
                           steps in proptest::collection::vec((0u8..20, -600i64..600), 1..2000)) {
            let w = ReplayWindow::new(size, false).unwrap();
            let (mut seen, mut top) = (std::collections::HashSet::new(), 0u64);
            let mut at = 1000i64;
            // Mostly a few numbers on, some late ones, now and then a jump either way or far.
            for (kind, delta) in steps {
                at = match kind {
                    0..=13 => at + delta.rem_euclid(4),
                    14..=17 => at - delta.rem_euclid(size as i64 + 8),
                    18 => at + delta,
                    _ => at + 10 * delta.abs(),
                }
                .max(0);
                let seq = at as u64;
                let fresh = seq != 0 && !seen.contains(&seq) && (seq > top || top - seq < size as u64);
                let got = w.check(seq as u32).and_then(|s| w.update(s).map(|()| s));
                proptest::prop_assert_eq!(got.is_ok(), fresh, "seq {} top {} size {}", seq, top, size);
                if fresh {
                    seen.insert(seq);
                    top = top.max(seq);
                }
            }
        }
    }

    #[test]
    fn disabled_window_accepts_all_but_tracks_top() {
        let w = ReplayWindow::new(0, true).unwrap();
        accept(&w, 5);
        accept(&w, 5);
        assert_eq!(w.top(), 5);
        w.reset_to(0xffff_fff0);
        assert_eq!(accept(&w, 2), 0x1_0000_0002);
    }
}
