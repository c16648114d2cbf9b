//! The ESP header (RFC 4303 2): SPI and sequence number in the clear, then the payload.

use super::{be32, put32, Result, WireError};

mod field {
    pub const SPI: usize = 0;
    pub const SEQ: usize = 4;
    pub const PAYLOAD: usize = 8;
}

pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view of an ESP packet (header and the opaque rest).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SPI)
    }

    /// The low 32 bits of the sequence number (the high half never goes on the wire).
    pub fn seq_no(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_spi(&mut self, spi: u32) {
        put32(self.buffer.as_mut(), field::SPI, spi);
    }

    pub fn set_seq_no(&mut self, seq: u32) {
        put32(self.buffer.as_mut(), field::SEQ, seq);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}
