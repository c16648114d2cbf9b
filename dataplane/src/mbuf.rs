//! DPDK mbufs as packet buffers, so ESP and the L3 code run on them unchanged.

use crate::buf::PktBuf;
use dpdk_sys::Mbuf;

/// Packets per RX/TX burst.
pub const BURST: usize = 32;

impl PktBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        Mbuf::prepend(self, u16::try_from(n).ok()?)
    }
    #[inline]
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        Mbuf::append(self, u16::try_from(n).ok()?)
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| Mbuf::adj(self, n))
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| Mbuf::trim(self, n))
    }
}
