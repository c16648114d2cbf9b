//! intel-ipsec-mb's direct AES-GCM API (through `shim/imb.c`): one manager for the process,
//! AES-128/256-GCM keys, and one-call seal and open in place with a detached 16-byte tag.
//!
//! Built without the library (`cfg(rampart_imb)` unset: not installed, not x86_64, or
//! `RAMPART_NO_IPSEC_MB`), the same API exists: `manager()` says why it is unavailable and
//! `GcmKey::new` returns `None`, so callers need no `cfg` of their own.

/// The salt, the implicit part of the nonce that comes with the key (RFC 4106 4).
pub const SALT_LEN: usize = 4;
/// The explicit IV each packet carries; the nonce is salt || IV.
pub const IV_LEN: usize = 8;
/// The full 16-byte tag, the only length Rampart uses.
pub const TAG_LEN: usize = 16;
/// GCM's longest plaintext, 2^39 - 256 bits (NIST SP 800-38D 5.2.1.1), in bytes.
pub const MAX_LEN: usize = (1 << 36) - 32;

/// The code path the manager picked for this CPU (`IMB_ARCH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// No AES-NI: the library's AES emulation, far slower than ring.
    NoAesni,
    Sse,
    Avx,
    Avx2,
    Avx512,
}

impl Arch {
    pub const fn name(self) -> &'static str {
        match self {
            Arch::NoAesni => "no-aesni",
            Arch::Sse => "sse",
            Arch::Avx => "avx",
            Arch::Avx2 => "avx2",
            Arch::Avx512 => "avx512",
        }
    }

    /// Whether AES runs on the CPU's AES instructions.
    pub const fn has_aes(self) -> bool {
        !matches!(self, Arch::NoAesni)
    }
}

/// The process's initialised manager.
#[derive(Debug)]
pub struct Manager {
    version: &'static str,
    arch: Arch,
    features: u64,
}

// IMB_FEATURE_* bits of intel-ipsec-mb.h (stable across 1.x).
const FEATURE_VAES: u64 = 1 << 12;
const FEATURE_VPCLMULQDQ: u64 = 1 << 13;
const FEATURE_SAFE_DATA: u64 = 1 << 14;
const FEATURE_SAFE_PARAM: u64 = 1 << 15;

impl Manager {
    /// The loaded library's version, e.g. "1.3.0".
    pub fn version(&self) -> &'static str {
        self.version
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// AVX-512 with VAES and VPCLMULQDQ: GCM runs on the 512-bit vector AES code.
    pub fn vaes(&self) -> bool {
        self.arch == Arch::Avx512
            && self.features & (FEATURE_VAES | FEATURE_VPCLMULQDQ) == (FEATURE_VAES | FEATURE_VPCLMULQDQ)
    }

    /// Built with SAFE_DATA (sensitive data cleared after use) and SAFE_PARAM (arguments checked).
    pub fn safe_data_and_param(&self) -> (bool, bool) {
        (
            self.features & FEATURE_SAFE_DATA != 0,
            self.features & FEATURE_SAFE_PARAM != 0,
        )
    }
}

/// The input is longer than GCM allows (`MAX_LEN`); never for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLong;

#[cfg(rampart_imb)]
pub use real::{manager, GcmKey};
#[cfg(not(rampart_imb))]
pub use stub::{manager, GcmKey};

#[cfg(rampart_imb)]
mod real {
    use super::{Arch, Manager, TooLong, IV_LEN, MAX_LEN, SALT_LEN, TAG_LEN};
    use std::ffi::CStr;
    use std::sync::OnceLock;

    #[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
    #[allow(clippy::all, clippy::pedantic, clippy::undocumented_unsafe_blocks)]
    mod sys {
        include!(concat!(env!("OUT_DIR"), "/imb_bindings.rs"));
    }
    use sys::{gcm_key_data, gcm_key_data__bindgen_ty_1};

    // The library's vector code is written for 64-byte aligned key data (imb.h defines LINUX
    // so that the header says so).
    const _: () = assert!(std::mem::align_of::<gcm_key_data>() == 64);

    /// The bytes of `gcm_key_data` the library reads and writes: the round keys, then the
    /// GHASH key powers. The rest of the struct is alignment padding.
    const DATA_LEN: usize = std::mem::offset_of!(gcm_key_data, ghash_keys) + std::mem::size_of::<gcm_key_data__bindgen_ty_1>();
    const _: () = assert!(std::mem::size_of::<GcmKey>() == std::mem::size_of::<gcm_key_data>());
    const _: () = assert!(std::mem::offset_of!(GcmKey, salt) >= DATA_LEN);

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    enum KeySize {
        Aes128 = 0,
        Aes256,
    }

    static MANAGER: OnceLock<Result<Manager, &'static str>> = OnceLock::new();

    /// The process's manager, allocated and initialised on first use (`init_mb_mgr_auto`:
    /// the fastest code path for this CPU). One manager serves every thread: the direct
    /// GCM functions it points to never write it (see `shim/imb.h`).
    pub fn manager() -> Result<&'static Manager, &'static str> {
        MANAGER
            .get_or_init(|| {
                let mut features = 0u64;
                // SAFETY: called once (under the OnceLock); `features` is a valid out-pointer.
                let arch = unsafe { sys::rampart_imb_init(&mut features) };
                let arch = match arch {
                    // IMB_ARCH_NOAESNI .. IMB_ARCH_AVX512 of intel-ipsec-mb.h.
                    1 => Arch::NoAesni,
                    2 => Arch::Sse,
                    3 => Arch::Avx,
                    4 => Arch::Avx2,
                    5 => Arch::Avx512,
                    _ => return Err("intel-ipsec-mb: the manager could not be initialised (allocation, CPU features or self-test failed)"),
                };
                // SAFETY: the library returns a pointer to a static NUL-terminated string.
                let version = unsafe { CStr::from_ptr(sys::rampart_imb_version()) }.to_str().unwrap_or("?");
                Ok(Manager { version, arch, features })
            })
            .as_ref()
            .map_err(|e| *e)
    }

    /// An expanded AES-GCM key (round keys and GHASH key powers) and its salt, laid out as
    /// the library's `gcm_key_data` with the salt and key size in that struct's tail
    /// padding: on the line of the lowest GHASH powers, which every packet reads anyway.
    /// Zeroed on drop. `Debug` shows the key size, never key bytes.
    #[repr(C, align(64))]
    pub struct GcmKey {
        data: [u8; DATA_LEN],
        salt: [u8; SALT_LEN],
        size: KeySize,
    }

    impl std::fmt::Debug for GcmKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("GcmKey")
                .field("size", &self.size)
                .field("key", &"<redacted>")
                .finish()
        }
    }

    impl GcmKey {
        /// Expands a 16-byte (AES-128) or 32-byte (AES-256) key; `None` for another length
        /// or where the manager is unavailable.
        pub fn new(key: &[u8], salt: [u8; SALT_LEN]) -> Option<GcmKey> {
            let size = match key.len() {
                16 => KeySize::Aes128,
                32 => KeySize::Aes256,
                _ => return None,
            };
            manager().ok()?;
            let mut k = GcmKey { data: [0; DATA_LEN], salt: [0; SALT_LEN], size };
            // SAFETY: the manager is initialised (above); `key` is readable for its length;
            // `k` has the size and alignment of a gcm_key_data (asserted above) and the
            // library writes only its first DATA_LEN bytes. On failure `k` drops and zeroes.
            let rc = unsafe { sys::rampart_imb_gcm_pre(key.as_ptr(), key.len(), k.raw().cast_mut()) };
            // Set after the precompute, whatever it does with the padding.
            (k.salt, k.size) = (salt, size);
            (rc == 0).then_some(k)
        }

        fn raw(&self) -> *const gcm_key_data {
            (self as *const GcmKey).cast()
        }

        /// The offsets in a `GcmKey` of the lines a short packet's seal or open reads: the
        /// AES-128 round keys (the first three lines) and the lowest GHASH key powers with
        /// the salt and size (the last two; the VAES code keeps H^48 first and H^1 last).
        /// Larger packets stream the other powers in order.
        pub const SHORT_LINES: [usize; 5] = {
            let end = std::mem::size_of::<GcmKey>();
            [0, 64, 128, end - 128, end - 64]
        };

        /// Encrypts `data` in place and writes the 16-byte ICV to `tag`.
        #[inline]
        pub fn seal(&self, iv: &[u8; IV_LEN], aad: &[u8], data: &mut [u8], tag: &mut [u8; TAG_LEN]) -> Result<(), TooLong> {
            let f = match self.size {
                KeySize::Aes128 => sys::rampart_imb_aes128_gcm_seal,
                KeySize::Aes256 => sys::rampart_imb_aes256_gcm_seal,
            };
            self.call(f, iv, aad, data, tag)
        }

        /// Decrypts `data` (the ciphertext, without its ICV) in place and writes the ICV
        /// computed over it to `tag`; the caller compares that with the received ICV in
        /// constant time and drops the plaintext when they differ.
        #[inline]
        pub fn open(&self, iv: &[u8; IV_LEN], aad: &[u8], data: &mut [u8], tag: &mut [u8; TAG_LEN]) -> Result<(), TooLong> {
            let f = match self.size {
                KeySize::Aes128 => sys::rampart_imb_aes128_gcm_open,
                KeySize::Aes256 => sys::rampart_imb_aes256_gcm_open,
            };
            self.call(f, iv, aad, data, tag)
        }

        #[inline]
        fn call(&self, f: GcmFn, iv: &[u8; IV_LEN], aad: &[u8], data: &mut [u8], tag: &mut [u8; TAG_LEN]) -> Result<(), TooLong> {
            if data.len() > MAX_LEN {
                return Err(TooLong);
            }
            // salt || IV in one store (see Block16).
            let word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as u128;
            let nonce = crate::Block16::new(word(&self.salt) | word(&iv[..4]) << 32 | word(&iv[4..]) << 64);
            // SAFETY: a GcmKey exists only after the manager initialised and the key was
            // expanded for this size (f is one of this size's functions); every pointer comes
            // from a live slice or array (never NULL, even when empty) valid for the length
            // passed; `data` is exclusively borrowed, so in-place writes alias nothing;
            // len <= MAX_LEN.
            unsafe { f(self.raw(), nonce.0.as_ptr(), aad.as_ptr(), aad.len() as u64, data.as_mut_ptr(), data.len() as u64, tag.as_mut_ptr()) };
            Ok(())
        }
    }

    /// One of the shim's seal or open functions.
    type GcmFn = unsafe extern "C" fn(*const gcm_key_data, *const u8, *const u8, u64, *mut u8, u64, *mut u8);

    impl Drop for GcmKey {
        fn drop(&mut self) {
            let p = (self as *mut GcmKey).cast::<u64>();
            for i in 0..std::mem::size_of::<GcmKey>() / 8 {
                // SAFETY: `p` points to this key, 64-byte aligned and a whole number of u64s
                // long; all zeroes is a valid value of every field (KeySize::Aes128 is 0);
                // volatile so the stores are not elided as dead before the memory is reused.
                unsafe { p.add(i).write_volatile(0) };
            }
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[cfg(not(rampart_imb))]
mod stub {
    use super::{Manager, TooLong, IV_LEN, SALT_LEN, TAG_LEN};

    /// Always unavailable: this build has no intel-ipsec-mb.
    pub fn manager() -> Result<&'static Manager, &'static str> {
        Err("this build has no intel-ipsec-mb (apt-get install libipsec-mb-dev, then rebuild)")
    }

    enum Never {}

    /// Never constructed in this build (`new` returns `None`).
    pub struct GcmKey {
        never: Never,
    }

    impl std::fmt::Debug for GcmKey {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.never {}
        }
    }

    impl GcmKey {
        pub fn new(_key: &[u8], _salt: [u8; SALT_LEN]) -> Option<GcmKey> {
            None
        }

        pub const SHORT_LINES: [usize; 0] = [];

        #[inline]
        pub fn seal(&self, _: &[u8; IV_LEN], _: &[u8], _: &mut [u8], _: &mut [u8; TAG_LEN]) -> Result<(), TooLong> {
            match self.never {}
        }

        #[inline]
        pub fn open(&self, _: &[u8; IV_LEN], _: &[u8], _: &mut [u8], _: &mut [u8; TAG_LEN]) -> Result<(), TooLong> {
            match self.never {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_reports_why_or_what() {
        match manager() {
            Ok(m) => {
                assert!(m.version().starts_with("1."), "{}", m.version());
                assert!(["sse", "avx", "avx2", "avx512"].contains(&m.arch().name()), "{}", m.arch().name());
            }
            Err(why) => {
                assert!(why.contains("ipsec-mb"), "{why}");
                assert!(GcmKey::new(&[0; 16], [0; 4]).is_none());
            }
        }
    }

    #[test]
    fn key_lengths() {
        if manager().is_err() {
            return;
        }
        assert!(GcmKey::new(&[1; 16], [0; 4]).is_some());
        assert!(GcmKey::new(&[1; 32], [0; 4]).is_some());
        assert!(GcmKey::new(&[1; 24], [0; 4]).is_none(), "AES-192 is not offered");
        assert!(GcmKey::new(&[], [0; 4]).is_none());
        let s = format!("{:?}", GcmKey::new(&[0xab; 16], [0xab; 4]).unwrap());
        assert!(s.contains("redacted") && !s.contains("171") && !s.contains("ab"), "{s}");
    }

    /// NIST GCM test case 4 (McGrew and Viega, "The Galois/Counter Mode of Operation",
    /// appendix B): 60 bytes, 20 bytes of AAD; the tag is checked in full.
    #[test]
    fn gcm_spec_test_case_4() {
        if manager().is_err() {
            return;
        }
        let h = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        // The 12-byte IV as ESP splits it: salt cafebabe, then the 8 bytes a packet carries.
        let k = GcmKey::new(&h("feffe9928665731c6d6a8f9467308308"), [0xca, 0xfe, 0xba, 0xbe]).unwrap();
        let iv: [u8; 8] = h("facedbaddecaf888").try_into().unwrap();
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let pt = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
        let mut buf = pt.clone();
        let mut tag = [0u8; 16];
        k.seal(&iv, &aad, &mut buf, &mut tag).unwrap();
        assert_eq!(buf, h("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"));
        assert_eq!(tag.to_vec(), h("5bc94fbc3221a5db94fae95ae7121a47"));
        let mut computed = [0u8; 16];
        k.open(&iv, &aad, &mut buf, &mut computed).unwrap();
        assert_eq!((buf, computed), (pt, tag));
    }
}
