//! Bindings to the system DPDK (`sys`: bindgen output plus the C shim for DPDK's inline
//! functions) and the thin safe wrappers the rest of Rampart uses; `imb`: intel-ipsec-mb's
//! direct AES-GCM API, where the library is installed.

#[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
#[allow(clippy::all, clippy::pedantic, clippy::undocumented_unsafe_blocks)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

mod block;
mod eal;
mod error;
pub mod imb;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use arrayvec::ArrayVec;
pub use block::Block16;
pub use eal::{lcore_id, rdtsc, register_thread, tsc_hz, unregister_thread, Eal, PMD_DIR};
pub use error::{Error, Result};
pub use mbuf::{prefetch, prefetch_to, Cache, Mbuf};
pub use mempool::{Mempool, SOCKET_ID_ANY};
pub use port::{DevInfo, Granted, Link, Port, PortConf, PortStats};
pub use ring::Ring;

use std::ffi::{c_char, CStr, CString};

/// A Rust string as a C string; an interior NUL is an `EINVAL` error from `call`.
fn cstring(call: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(call, libc::EINVAL))
}

/// A NUL-terminated buffer (as DPDK fills them) as a Rust string.
fn from_cbuf(buf: &[c_char]) -> String {
    // SAFETY: c_char and u8 have the same size and alignment.
    let bytes = unsafe { &*(buf as *const [c_char] as *const [u8]) };
    CStr::from_bytes_until_nul(bytes).map_or_else(
        |_| String::from_utf8_lossy(bytes).into_owned(),
        |c| c.to_string_lossy().into_owned(),
    )
}
