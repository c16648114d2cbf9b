//! The DPDK Environment Abstraction Layer: one-time init and cleanup, lcores and the TSC.

use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::{sys, Error, Result};

/// The PMD plugin directory found at build time (`<libdir>/dpdk/pmds-<abi>`), or "".
pub const PMD_DIR: &str = env!("DPDK_PMD_DIR");

static INITIALIZED: AtomicBool = AtomicBool::new(false);
static USER_FIELD: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The byte offset of Rampart's u64 mbuf dynfield, registered by `Eal::init`.
pub(crate) fn user_field_offset() -> usize {
    let off = USER_FIELD.load(Ordering::Relaxed);
    assert!(off != usize::MAX, "mbuf user field used before Eal::init");
    off
}

/// The initialized EAL. Dropping it runs `rte_eal_cleanup`, so drop every `Mbuf`, `Mempool`
/// user and `Port` first (declare the `Eal` first in `main` and Rust's drop order does it).
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Runs `rte_eal_init` with `args`: EAL options, optionally preceded by a program name
    /// (a first word not starting with '-'; "rampart" is used otherwise). Adds `-d PMD_DIR`
    /// unless `args` name a `-d`, so every vdev and crypto PMD is loadable whatever the
    /// EAL's built-in plugin path. EAL starts only once per process: a second call is an
    /// `EALREADY` error.
    pub fn init(args: &[&str]) -> Result<Eal> {
        if INITIALIZED.swap(true, Ordering::SeqCst) {
            return Err(Error::new("rte_eal_init", libc::EALREADY));
        }
        let mut words: Vec<&str> = Vec::with_capacity(args.len() + 3);
        if args.first().is_none_or(|a| a.starts_with('-')) {
            words.push("rampart");
        }
        words.extend_from_slice(args);
        if !PMD_DIR.is_empty() && !args.iter().any(|a| a.starts_with("-d")) {
            words.extend_from_slice(&["-d", PMD_DIR]);
        }
        // EAL may keep pointers into argv for the life of the process: leak it, once.
        let mut argv: Vec<*mut c_char> = Vec::with_capacity(words.len() + 1);
        for w in &words {
            argv.push(crate::cstring("rte_eal_init", w)?.into_raw());
        }
        argv.push(std::ptr::null_mut());
        let argv = argv.leak();
        // SAFETY: argv holds words.len() valid NUL-terminated strings plus a NULL, and is
        // never freed; INITIALIZED guarantees this is the only call in the process.
        let ret = unsafe { sys::rte_eal_init(words.len() as c_int, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(Error::errno("rte_eal_init"));
        }
        let eal = Eal { _private: () };
        register_user_field()?;
        // Without shared files (--no-shconf, --in-memory) the per-prefix runtime directory
        // stays empty: remove it, so that runs leave nothing behind. A directory that holds
        // a shared config for secondary processes is not empty, and stays.
        let _ = std::fs::remove_dir(eal.runtime_dir());
        Ok(eal)
    }

    /// EAL's per-prefix runtime directory (`/run/dpdk/<file-prefix>` for root).
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        // SAFETY: EAL is initialized (self exists); the result is a NUL-terminated path it owns.
        let dir = unsafe { std::ffi::CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
        dir.to_string_lossy().into_owned().into()
    }

    /// The number of lcores EAL runs (`-l`/`-c`).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: EAL is initialized (self exists).
        unsafe { sys::rte_lcore_count() }
    }

    /// The lcore id of the main (initializing) thread.
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: EAL is initialized (self exists).
        unsafe { sys::rte_get_main_lcore() }
    }

    /// Runs `rte_eal_cleanup` now, reporting its error; dropping does the same silently.
    pub fn cleanup(self) -> Result<()> {
        std::mem::forget(self);
        // SAFETY: EAL was initialized and this is the only cleanup (self is consumed).
        Error::check("rte_eal_cleanup", unsafe { sys::rte_eal_cleanup() }).map(drop)
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL was initialized; Drop runs once. Outstanding DPDK objects are the
        // caller's responsibility (see the type's docs).
        unsafe { sys::rte_eal_cleanup() };
    }
}

fn register_user_field() -> Result<()> {
    let mut params = sys::rte_mbuf_dynfield {
        size: 8,
        align: 8,
        ..Default::default()
    };
    for (d, s) in params.name.iter_mut().zip(b"rampart_dynfield_user\0") {
        *d = *s as c_char;
    }
    // SAFETY: params is a valid, NUL-terminated descriptor; EAL is initialized.
    let off = unsafe { sys::rte_mbuf_dynfield_register(&params) };
    if off < 0 {
        return Err(Error::errno("rte_mbuf_dynfield_register"));
    }
    USER_FIELD.store(off as usize, Ordering::Relaxed);
    Ok(())
}

/// The calling thread's lcore id, or `None` for a thread EAL does not know.
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads a thread-local; no preconditions.
    let id = unsafe { sys::shim_rte_lcore_id() };
    (id != u32::MAX).then_some(id)
}

/// Gives a thread EAL did not start an lcore id (so mempools use a per-lcore cache for it).
pub fn register_thread() -> Result<u32> {
    // SAFETY: no preconditions beyond EAL being initialized, which it checks itself.
    if unsafe { sys::rte_thread_register() } < 0 {
        return Err(Error::errno("rte_thread_register"));
    }
    lcore_id().ok_or(Error::new("rte_thread_register", libc::ENOENT))
}

/// Releases the lcore id `register_thread` gave this thread.
pub fn unregister_thread() {
    // SAFETY: a no-op for a thread without a registered lcore.
    unsafe { sys::rte_thread_unregister() }
}

/// The TSC frequency in Hz (0 before `Eal::init`).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL calibrated; no preconditions.
    unsafe { sys::shim_rte_get_tsc_hz() }
}

/// The CPU's time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // Inline here rather than through the shim: this sits on the per-packet path.
    #[cfg(target_arch = "x86_64")]
    // SAFETY: rdtsc has no preconditions on x86_64.
    return unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reads the cycle counter; no preconditions.
    return unsafe { sys::shim_rte_rdtsc() };
}
