//! ESP's AEAD transforms, AES-GCM (RFC 4106) and ChaCha20-Poly1305 (RFC 7634), with an
//! 8-byte explicit IV, a 4-byte salt and a 16-byte ICV, on one of two engines picked once
//! for the process (`select_engine`): `soft` (ring) or `ipsec-mb` (intel-ipsec-mb's direct
//! AES-GCM API through `dpdk_sys::imb`; ChaCha20-Poly1305 stays on ring).
//!
//! `Aead` seals or opens one packet in place; the workers call it for every packet, so both
//! calls are allocation-free and dispatch on the key's backend with one match.

use dpdk_sys::{imb, Block16, Cache};
use ring::aead;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;

/// The AEAD transforms Rampart negotiates for ESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AeadAlg {
    /// ENCR_AES_GCM_16 with a 128-bit key (RFC 4106).
    AesGcm128,
    /// ENCR_AES_GCM_16 with a 256-bit key (RFC 4106).
    AesGcm256,
    /// ENCR_CHACHA20_POLY1305 (RFC 7634).
    ChaCha20Poly1305,
}

/// The salt that follows the key in the keying material (RFC 4106 8.1, RFC 7634 2).
pub const SALT_LEN: usize = imb::SALT_LEN;
/// The explicit IV carried in each packet.
pub const IV_LEN: usize = imb::IV_LEN;
/// The full-length ICV, the only one Rampart sends or accepts.
pub const ICV_LEN: usize = 16;

impl AeadAlg {
    pub const fn key_len(self) -> usize {
        match self {
            AeadAlg::AesGcm128 => 16,
            AeadAlg::AesGcm256 | AeadAlg::ChaCha20Poly1305 => 32,
        }
    }

    /// Key plus salt: what IKE derives for one direction of a Child SA.
    pub const fn keymat_len(self) -> usize {
        self.key_len() + SALT_LEN
    }

    fn ring_alg(self) -> &'static aead::Algorithm {
        match self {
            AeadAlg::AesGcm128 => &aead::AES_128_GCM,
            AeadAlg::AesGcm256 => &aead::AES_256_GCM,
            AeadAlg::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// The crypto engine an operator asks for (config `crypto_engine`, `bench --engine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Engine {
    /// intel-ipsec-mb where it is built in and the CPU has AES-NI, else soft.
    #[default]
    Auto,
    /// ring for every algorithm.
    Soft,
    /// intel-ipsec-mb for AES-GCM (ring for ChaCha20-Poly1305); an error where it is missing.
    IpsecMb,
}

impl Engine {
    /// The words `parse` takes, as operators write them.
    pub const CHOICES: &'static str = "auto, soft or ipsec-mb";

    pub const fn as_str(self) -> &'static str {
        match self {
            Engine::Auto => "auto",
            Engine::Soft => "soft",
            Engine::IpsecMb => "ipsec-mb",
        }
    }
}

impl core::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Engine, String> {
        match s {
            "auto" => Ok(Engine::Auto),
            "soft" => Ok(Engine::Soft),
            "ipsec-mb" => Ok(Engine::IpsecMb),
            _ => Err(format!("unknown crypto engine `{s}`: {}", Engine::CHOICES)),
        }
    }
}

impl core::fmt::Display for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a key's AES-GCM runs: what an `Engine` resolves to on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// ring, for every algorithm.
    Ring = 0,
    /// intel-ipsec-mb for AES-GCM; ChaCha20-Poly1305 keys still use ring.
    IpsecMb = 1,
}

impl Backend {
    /// The name shown to operators: "soft (ring 0.17)" or
    /// "ipsec-mb 1.3.0 (avx512) AES-GCM, ring ChaCha20".
    pub fn name(self) -> &'static str {
        static IMB_NAME: OnceLock<String> = OnceLock::new();
        match self {
            Backend::Ring => "soft (ring 0.17)",
            Backend::IpsecMb => IMB_NAME.get_or_init(|| match imb::manager() {
                Ok(m) => format!(
                    "ipsec-mb {} ({}) AES-GCM, ring ChaCha20",
                    m.version(),
                    m.arch().name()
                ),
                Err(_) => "ipsec-mb (unavailable)".into(),
            }),
        }
    }
}

/// intel-ipsec-mb's manager, when it is built in, initialised and runs AES on the CPU.
fn ipsec_mb() -> Result<&'static imb::Manager, &'static str> {
    let m = imb::manager()?;
    if !m.arch().has_aes() {
        return Err("this CPU has no AES-NI (intel-ipsec-mb would emulate AES, slower than ring)");
    }
    Ok(m)
}

/// What `choice` means on this machine: `Auto` falls back to ring, an explicit `IpsecMb`
/// that cannot run is an error that says why.
pub fn resolve(choice: Engine) -> Result<Backend, String> {
    match choice {
        Engine::Soft => Ok(Backend::Ring),
        Engine::Auto => Ok(if ipsec_mb().is_ok() {
            Backend::IpsecMb
        } else {
            Backend::Ring
        }),
        Engine::IpsecMb => ipsec_mb()
            .map(|_| Backend::IpsecMb)
            .map_err(|why| format!("ipsec-mb is not available: {why}")),
    }
}

/// The process's backend for keys made by `Aead::new`; ring until `select_engine` runs.
static BACKEND: AtomicU8 = AtomicU8::new(Backend::Ring as u8);

/// Picks the engine for the process and returns its name for the logs. Call it once at
/// start, before any SA is built: keys made earlier keep the backend they were made with.
pub fn select_engine(choice: Engine) -> Result<&'static str, String> {
    let b = resolve(choice)?;
    BACKEND.store(b as u8, Relaxed);
    Ok(b.name())
}

/// The backend `Aead::new` uses now.
pub fn backend() -> Backend {
    if BACKEND.load(Relaxed) == Backend::IpsecMb as u8 {
        Backend::IpsecMb
    } else {
        Backend::Ring
    }
}

/// Keying material that does not fit the algorithm, or an engine that is not there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    WrongLength {
        alg: AeadAlg,
        expected: usize,
        got: usize,
    },
    /// `Aead::with_engine` asked for an engine this process cannot run.
    EngineUnavailable(Engine),
}

impl core::fmt::Display for KeyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KeyError::WrongLength { alg, expected, got } => {
                write!(
                    f,
                    "{alg:?} needs {expected} bytes of key and salt, got {got}"
                )
            }
            KeyError::EngineUnavailable(e) => write!(f, "crypto engine {e} is not available"),
        }
    }
}

impl std::error::Error for KeyError {}

/// The ICV did not verify (or the input was shorter than an ICV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthError;

/// Sealing failed: the input is longer than the algorithm allows (never for a packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealError;

// Both key schedules are inline: no pointer to chase per packet, and with many SAs the
// lines a packet needs are at fixed offsets from the SA (see `Aead::prefetch`). Each holds
// its salt: ipsec-mb's on the line of its last GHASH powers.
#[allow(clippy::large_enum_variant)]
enum Key {
    Ring { key: aead::LessSafeKey, salt: [u8; SALT_LEN] },
    IpsecMb(imb::GcmKey),
}

/// One direction's AEAD key and salt. Its `Debug` shows the algorithm and backend, never
/// the key.
pub struct Aead {
    key: Key,
    alg: AeadAlg,
}

impl core::fmt::Debug for Aead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Aead")
            .field("alg", &self.alg)
            .field("backend", &self.backend())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Aead {
    /// Builds the key schedule from `keymat` = key || salt on the process's engine.
    pub fn new(alg: AeadAlg, keymat: &[u8]) -> Result<Aead, KeyError> {
        Self::build(backend(), alg, keymat)
    }

    /// As `new`, on the engine given rather than the process's: for tests and benchmarks
    /// that compare engines without touching the process-wide choice.
    pub fn with_engine(engine: Engine, alg: AeadAlg, keymat: &[u8]) -> Result<Aead, KeyError> {
        let b = resolve(engine).map_err(|_| KeyError::EngineUnavailable(engine))?;
        Self::build(b, alg, keymat)
    }

    fn build(backend: Backend, alg: AeadAlg, keymat: &[u8]) -> Result<Aead, KeyError> {
        let wrong = KeyError::WrongLength {
            alg,
            expected: alg.keymat_len(),
            got: keymat.len(),
        };
        if keymat.len() != alg.keymat_len() {
            return Err(wrong);
        }
        let (key, s) = keymat.split_at(alg.key_len());
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(s);
        let key = match (backend, alg) {
            (Backend::IpsecMb, AeadAlg::AesGcm128 | AeadAlg::AesGcm256) => Key::IpsecMb(
                imb::GcmKey::new(key, salt).ok_or(KeyError::EngineUnavailable(Engine::IpsecMb))?,
            ),
            _ => Key::Ring {
                key: aead::LessSafeKey::new(aead::UnboundKey::new(alg.ring_alg(), key).map_err(|_| wrong)?),
                salt,
            },
        };
        Ok(Aead { key, alg })
    }

    pub fn alg(&self) -> AeadAlg {
        self.alg
    }

    /// Where this key runs (a ChaCha20-Poly1305 key is always on ring).
    pub fn backend(&self) -> Backend {
        match self.key {
            Key::Ring { .. } => Backend::Ring,
            Key::IpsecMb(_) => Backend::IpsecMb,
        }
    }

    /// Starts loading what sealing or opening a short packet reads: the key schedule and
    /// salt (round keys, and the low GHASH powers with the salt where the engine is ipsec-mb).
    /// By address alone (reading the key's variant would wait for the very line being
    /// fetched): an ipsec-mb key sits at the start of an `Aead` (a test checks it); for a
    /// ring key the same lines are part of its schedule.
    #[inline]
    pub fn prefetch(&self, to: Cache) {
        let base = (self as *const Aead).cast::<u8>();
        for off in imb::GcmKey::SHORT_LINES {
            dpdk_sys::prefetch_to(base.wrapping_add(off), to);
        }
    }

    /// Encrypts `data` in place and returns the ICV. The caller owns IV uniqueness: ESP
    /// uses the sequence number, which never repeats within an SA.
    pub fn seal_in_place(
        &self,
        iv: [u8; IV_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; ICV_LEN], SealError> {
        let mut icv = [0u8; ICV_LEN];
        self.seal_detached(iv, aad, data, &mut icv)?;
        Ok(icv)
    }

    /// Encrypts `data` in place and writes the ICV to `icv` (in the packet, on the packet
    /// path: nothing is returned through the stack).
    #[inline]
    pub fn seal_detached(
        &self,
        iv: [u8; IV_LEN],
        aad: &[u8],
        data: &mut [u8],
        icv: &mut [u8; ICV_LEN],
    ) -> Result<(), SealError> {
        match &self.key {
            Key::IpsecMb(k) => k.seal(&iv, aad, data, icv).map_err(|_| SealError),
            Key::Ring { key, salt } => {
                let tag = key
                    .seal_in_place_separate_tag(
                        aead::Nonce::assume_unique_for_key(nonce(salt, iv)),
                        aead::Aad::from(aad),
                        data,
                    )
                    .map_err(|_| SealError)?;
                icv.copy_from_slice(tag.as_ref());
                Ok(())
            }
        }
    }

    /// Verifies the trailing ICV and decrypts in place; returns the plaintext length.
    /// On failure the buffer contents are unspecified (zeroed where the ciphertext was
    /// decrypted) and must be dropped.
    #[inline]
    pub fn open_in_place(
        &self,
        iv: [u8; IV_LEN],
        aad: &[u8],
        data_with_tag: &mut [u8],
    ) -> Result<usize, AuthError> {
        let n = data_with_tag.len().checked_sub(ICV_LEN).ok_or(AuthError)?;
        match &self.key {
            Key::IpsecMb(k) => {
                let (ct, icv) = data_with_tag.split_at_mut(n);
                let mut computed = [0u8; ICV_LEN];
                k.open(&iv, aad, ct, &mut computed)
                    .map_err(|_| AuthError)?;
                if icv_eq(&computed, icv) {
                    Ok(n)
                } else {
                    // As ring does: no unauthenticated plaintext is left behind.
                    ct.fill(0);
                    Err(AuthError)
                }
            }
            Key::Ring { key, salt } => key
                .open_in_place(
                    aead::Nonce::assume_unique_for_key(nonce(salt, iv)),
                    aead::Aad::from(aad),
                    data_with_tag,
                )
                .map(|pt| pt.len())
                .map_err(|_| AuthError),
        }
    }
}

/// The nonce is salt || IV (RFC 4106 4, RFC 7634 2).
#[inline]
fn nonce(salt: &[u8; SALT_LEN], iv: [u8; IV_LEN]) -> [u8; SALT_LEN + IV_LEN] {
    let mut n = [0u8; SALT_LEN + IV_LEN];
    n[..SALT_LEN].copy_from_slice(salt);
    n[SALT_LEN..].copy_from_slice(&iv);
    n
}

/// Compares a computed ICV with a received one in constant time: no early exit, so the
/// time taken says nothing about how many leading bytes matched.
#[inline]
fn icv_eq(computed: &[u8; ICV_LEN], received: &[u8]) -> bool {
    let Ok(received) = <&[u8; ICV_LEN]>::try_from(received) else {
        return false;
    };
    let d = u128::from_ne_bytes(*computed) ^ u128::from_ne_bytes(*received);
    core::hint::black_box((d as u64) | ((d >> 64) as u64)) == 0
}

/// The ESP additional authenticated data: SPI || seq (12 bytes with ESN, RFC 4106 5),
/// written in one store (the AEAD reads it at once: see `Block16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspAad {
    block: Block16,
    len: u8,
}

impl EspAad {
    /// `seq` is the full 64-bit sequence number; only its low half goes in without ESN.
    #[inline]
    pub fn new(spi: u32, seq: u64, esn: bool) -> EspAad {
        // Network order in memory: the little-endian value of the big-endian bytes.
        let spi = u32::from_le_bytes(spi.to_be_bytes()) as u128;
        let (seq, len) = match esn {
            true => (u64::from_le_bytes(seq.to_be_bytes()) as u128, 12),
            false => (u32::from_le_bytes((seq as u32).to_be_bytes()) as u128, 8),
        };
        EspAad { block: Block16::new(spi | seq << 32), len }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.block.0[..self.len as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// The engines this build and CPU can run: soft always, ipsec-mb where it is usable.
    fn engines() -> Vec<Engine> {
        match resolve(Engine::IpsecMb) {
            Ok(_) => vec![Engine::Soft, Engine::IpsecMb],
            Err(why) => {
                eprintln!("crypto tests: soft engine only: {why}");
                vec![Engine::Soft]
            }
        }
    }

    #[test]
    fn rejects_wrong_key_length_with_clear_error() {
        for e in engines() {
            let err = Aead::with_engine(e, AeadAlg::AesGcm128, &[0u8; 16]).unwrap_err();
            assert_eq!(
                err,
                KeyError::WrongLength {
                    alg: AeadAlg::AesGcm128,
                    expected: 20,
                    got: 16
                }
            );
            assert!(err.to_string().contains("needs 20 bytes"));
            assert!(Aead::with_engine(e, AeadAlg::ChaCha20Poly1305, &[0u8; 36]).is_ok());
            assert!(Aead::with_engine(e, AeadAlg::AesGcm256, &[0u8; 20]).is_err());
        }
    }

    #[test]
    fn debug_redacts_key() {
        for e in engines() {
            let a = Aead::with_engine(e, AeadAlg::AesGcm128, &[0xab; 20]).unwrap();
            let s = format!("{a:?}");
            assert!(
                s.contains("redacted") && !s.to_lowercase().contains("ab, ") && !s.contains("171"),
                "{s}"
            );
        }
    }

    #[test]
    fn engine_words_and_resolution() {
        for e in [Engine::Auto, Engine::Soft, Engine::IpsecMb] {
            assert_eq!(e.as_str().parse::<Engine>(), Ok(e));
        }
        let err = "qat".parse::<Engine>().unwrap_err();
        assert!(err.contains("`qat`") && err.contains("ipsec-mb"), "{err}");
        assert_eq!(Engine::default(), Engine::Auto);
        assert_eq!(resolve(Engine::Soft), Ok(Backend::Ring));
        assert_eq!(Backend::Ring.name(), "soft (ring 0.17)");
        match resolve(Engine::IpsecMb) {
            // Auto takes ipsec-mb exactly where it can run.
            Ok(b) => {
                assert_eq!(resolve(Engine::Auto), Ok(b));
                let name = b.name();
                assert!(
                    name.starts_with("ipsec-mb 1.") && name.ends_with(") AES-GCM, ring ChaCha20"),
                    "{name}"
                );
            }
            Err(why) => {
                assert_eq!(resolve(Engine::Auto), Ok(Backend::Ring));
                assert!(why.contains("ipsec-mb is not available"), "{why}");
                assert_eq!(
                    Aead::with_engine(Engine::IpsecMb, AeadAlg::AesGcm128, &[0; 20]).unwrap_err(),
                    KeyError::EngineUnavailable(Engine::IpsecMb)
                );
            }
        }
        // Unselected, the process runs soft; selecting soft changes nothing for other tests.
        assert_eq!(select_engine(Engine::Soft), Ok("soft (ring 0.17)"));
        assert_eq!(backend().name(), "soft (ring 0.17)");
    }

    #[test]
    fn keys_land_on_the_engine_asked_for() {
        for e in engines() {
            let want = resolve(e).unwrap();
            for alg in [AeadAlg::AesGcm128, AeadAlg::AesGcm256] {
                let a = Aead::with_engine(e, alg, &vec![1; alg.keymat_len()]).unwrap();
                assert_eq!(a.backend(), want, "{e} {alg:?}");
            }
            let c = Aead::with_engine(e, AeadAlg::ChaCha20Poly1305, &[1; 36]).unwrap();
            assert_eq!(
                c.backend(),
                Backend::Ring,
                "ChaCha20-Poly1305 is always ring"
            );
        }
    }

    /// `Aead::prefetch` finds an ipsec-mb key by address: the key must start the `Aead`.
    #[test]
    fn prefetch_finds_the_ipsec_mb_key() {
        let Ok(a) = Aead::with_engine(Engine::IpsecMb, AeadAlg::AesGcm128, &[7; 20]) else {
            return eprintln!("no ipsec-mb here: nothing to check");
        };
        let Key::IpsecMb(k) = &a.key else { panic!("an ipsec-mb key") };
        assert_eq!(k as *const imb::GcmKey as usize, &a as *const Aead as usize);
        assert!(imb::GcmKey::SHORT_LINES.iter().all(|&o| o < std::mem::size_of::<imb::GcmKey>()));
    }

    #[test]
    fn aead_is_shared_by_workers() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Aead>();
    }

    #[test]
    fn rfc7634_appendix_a_seal_open() {
        for e in engines() {
            let a = Aead::with_engine(
                e,
                AeadAlg::ChaCha20Poly1305,
                &h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3"),
            )
            .unwrap();
            let iv: [u8; 8] = h("1011121314151617").try_into().unwrap();
            let aad = EspAad::new(0x01020304, 5, false);
            let pt = h("45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec100007362708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363701020204");
            let mut buf = pt.clone();
            let icv = a.seal_in_place(iv, aad.as_slice(), &mut buf).unwrap();
            assert_eq!(hex::encode(icv), "76aaa8266b7fb0f7b11b369907e1ad43");
            buf.extend_from_slice(&icv);
            let mut bad = buf.clone();
            bad[3] ^= 0x80;
            assert_eq!(a.open_in_place(iv, aad.as_slice(), &mut buf), Ok(pt.len()));
            assert_eq!(&buf[..pt.len()], &pt[..]);
            assert_eq!(
                a.open_in_place(iv, aad.as_slice(), &mut bad),
                Err(AuthError)
            );
            assert_eq!(
                a.open_in_place(iv, aad.as_slice(), &mut [0u8; 15]),
                Err(AuthError)
            );
        }
    }

    /// ring and intel-ipsec-mb are independent implementations: for every length 0..=2000,
    /// both key sizes, both AAD layouts (8 bytes; 12 with ESN) and unaligned buffers, they
    /// must produce the same ciphertext and ICV, open each other's output, and refuse a
    /// flipped bit anywhere in ciphertext, ICV or AAD (leaving no plaintext behind).
    #[test]
    fn ring_and_ipsec_mb_agree_on_every_length() {
        if resolve(Engine::IpsecMb).is_err() {
            eprintln!(
                "crypto tests: SKIPPED the ring/ipsec-mb cross-check: ipsec-mb not available"
            );
            return;
        }
        for alg in [AeadAlg::AesGcm128, AeadAlg::AesGcm256] {
            let keymat: Vec<u8> = (0..alg.keymat_len() as u8)
                .map(|i| i.wrapping_mul(29) ^ 0x5a)
                .collect();
            let soft = Aead::with_engine(Engine::Soft, alg, &keymat).unwrap();
            let imb = Aead::with_engine(Engine::IpsecMb, alg, &keymat).unwrap();
            assert_eq!(
                (soft.backend(), imb.backend()),
                (Backend::Ring, Backend::IpsecMb)
            );
            for len in 0..=2000usize {
                let esn = len % 2 == 1;
                let seq = (len as u64) << 31 | 7;
                let aad = EspAad::new(0xc0de_0000 | len as u32, seq, esn);
                assert_eq!(aad.as_slice().len(), if esn { 12 } else { 8 });
                let iv = seq.to_be_bytes();
                let pt: Vec<u8> = (0..len).map(|i| (i * 131 + len) as u8).collect();
                let off = len % 7; // packets sit at any offset in a buffer
                let mut a = vec![0u8; off + len + ICV_LEN];
                a[off..off + len].copy_from_slice(&pt);
                let mut b = a.clone();
                let ta = soft
                    .seal_in_place(iv, aad.as_slice(), &mut a[off..off + len])
                    .unwrap();
                let tb = imb
                    .seal_in_place(iv, aad.as_slice(), &mut b[off..off + len])
                    .unwrap();
                assert_eq!(
                    (&a[off..off + len], ta),
                    (&b[off..off + len], tb),
                    "{alg:?} len {len}"
                );
                a[off + len..].copy_from_slice(&ta);
                b[off + len..].copy_from_slice(&tb);
                // Each opens what the other sealed.
                let mut x = a.clone();
                assert_eq!(
                    imb.open_in_place(iv, aad.as_slice(), &mut x[off..]),
                    Ok(len)
                );
                assert_eq!(&x[off..off + len], &pt[..], "{alg:?} len {len}");
                let mut y = b.clone();
                assert_eq!(
                    soft.open_in_place(iv, aad.as_slice(), &mut y[off..]),
                    Ok(len)
                );
                assert_eq!(&y[off..off + len], &pt[..]);
                // One flipped bit, in the ciphertext or the ICV, fails both.
                let bit = (len * 8 + len / 3) % ((len + ICV_LEN) * 8);
                for key in [&soft, &imb] {
                    let mut z = a.clone();
                    z[off + bit / 8] ^= 1 << (bit % 8);
                    assert_eq!(
                        key.open_in_place(iv, aad.as_slice(), &mut z[off..]),
                        Err(AuthError),
                        "{alg:?} len {len} bit {bit}"
                    );
                    if key.backend() == Backend::IpsecMb {
                        assert!(
                            z[off..off + len].iter().all(|&c| c == 0),
                            "plaintext left behind"
                        );
                    }
                    let mut z = a.clone();
                    let wrong = EspAad::new(0xc0de_0000 | len as u32, seq ^ 1, esn);
                    assert_eq!(
                        key.open_in_place(iv, wrong.as_slice(), &mut z[off..]),
                        Err(AuthError)
                    );
                }
            }
        }
    }
}
