//! The packet buffer abstraction: ESP and the L3 code work on anything that can grow and
//! shrink at both ends, so unit tests use `VecBuf` and the workers use DPDK mbufs.

/// A contiguous packet buffer with headroom and tailroom, in the manner of an mbuf.
pub trait PktBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front; `None` if the headroom is short.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Grows the packet by `n` bytes at the back and returns them; `None` if the tailroom is short.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front; `false` (and no change) if the packet is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the back; `false` (and no change) if the packet is shorter.
    fn trim(&mut self, n: usize) -> bool;
    fn len(&self) -> usize {
        self.data().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A heap buffer with fixed headroom and tailroom, for tests and for the control plane.
#[derive(Clone, Debug)]
pub struct VecBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecBuf {
    pub const HEADROOM: usize = 128;
    pub const TAILROOM: usize = 128;

    pub fn new(data: &[u8]) -> Self {
        Self::with_room(data, Self::HEADROOM, Self::TAILROOM)
    }

    pub fn with_room(data: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut buf = vec![0u8; headroom + data.len() + tailroom];
        buf[headroom..headroom + data.len()].copy_from_slice(data);
        VecBuf { buf, start: headroom, end: headroom + data.len() }
    }
}

impl PktBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.buf[self.start..self.start + n])
    }
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if self.end + n > self.buf.len() {
            return None;
        }
        self.end += n;
        Some(&mut self.buf[self.end - n..self.end])
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_shrinks_within_room() {
        let mut b = VecBuf::with_room(&[1, 2, 3], 2, 1);
        assert!(b.prepend(3).is_none());
        b.prepend(2).unwrap().copy_from_slice(&[8, 9]);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3]);
        assert!(b.append(2).is_none());
        b.append(1).unwrap()[0] = 4;
        assert!(b.adj(3) && b.trim(1));
        assert_eq!(b.data(), &[2, 3]);
        assert!(!b.adj(3));
    }
}
