//! The one error type of this crate: which DPDK call failed, and with what errno.

use std::ffi::CStr;
use std::fmt;

use crate::sys;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed DPDK call: its name and the (positive) errno it reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    call: &'static str,
    code: i32,
}

impl Error {
    pub fn new(call: &'static str, code: i32) -> Self {
        Error { call, code: code.abs() }
    }

    /// The error from `call` as left in `rte_errno` (for calls that return -1 or NULL).
    pub fn errno(call: &'static str) -> Self {
        // SAFETY: reads this thread's rte_errno; no preconditions.
        Error::new(call, unsafe { sys::shim_rte_errno() })
    }

    /// The error from `call` that returned a negative errno (`ret` < 0).
    pub fn ret(call: &'static str, ret: i32) -> Self {
        Error::new(call, ret)
    }

    /// `Ok(ret)` for `ret >= 0`, else the error it encodes.
    pub fn check(call: &'static str, ret: i32) -> Result<i32> {
        if ret < 0 {
            Err(Error::ret(call, ret))
        } else {
            Ok(ret)
        }
    }

    pub fn call(&self) -> &'static str {
        self.call
    }

    pub fn code(&self) -> i32 {
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: rte_strerror returns a pointer to a static or per-thread NUL-terminated
        // string, valid at least until the next rte_strerror call on this thread.
        let text = unsafe { CStr::from_ptr(sys::rte_strerror(self.code)) };
        write!(f, "{}: {} (errno {})", self.call, text.to_string_lossy(), self.code)
    }
}

impl std::error::Error for Error {}
