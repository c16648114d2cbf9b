//! IKEv2 (RFC 7296) as a sans-IO engine: bytes and time in, datagrams, timers and SA events
//! out. No sockets and no clock live here; the caller's event loop does the I/O.

pub mod config;
pub mod crypto;
pub mod wire;
pub mod engine;

pub use config::*;
pub use engine::{ChildKeys, ChildSaUp, DownReason, Engine, Event, IkeSaKeys, Stats, Transmit};
