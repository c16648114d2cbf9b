//! The soft AEAD engine for ESP on `ring`: AES-GCM (RFC 4106) and ChaCha20-Poly1305
//! (RFC 7634) with an 8-byte explicit IV, a 4-byte salt and a 16-byte ICV.
//!
//! `Aead` seals or opens one packet; `CryptoEngine` takes a burst of jobs so that a
//! batching engine (intel-ipsec-mb, a cryptodev PMD) can stand in for `SoftEngine`.

use ring::aead;

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
pub const SALT_LEN: usize = 4;
/// The explicit IV carried in each packet.
pub const IV_LEN: usize = 8;
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

/// Keying material that does not fit the algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    WrongLength {
        alg: AeadAlg,
        expected: usize,
        got: usize,
    },
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

/// One direction's AEAD key and salt. Its `Debug` shows the algorithm, never the key.
pub struct Aead {
    alg: AeadAlg,
    key: aead::LessSafeKey,
    salt: [u8; SALT_LEN],
}

impl core::fmt::Debug for Aead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Aead")
            .field("alg", &self.alg)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Aead {
    /// Builds the key schedule from `keymat` = key || salt.
    pub fn new(alg: AeadAlg, keymat: &[u8]) -> Result<Aead, KeyError> {
        if keymat.len() != alg.keymat_len() {
            return Err(KeyError::WrongLength {
                alg,
                expected: alg.keymat_len(),
                got: keymat.len(),
            });
        }
        let (key, salt) = keymat.split_at(alg.key_len());
        let key =
            aead::UnboundKey::new(alg.ring_alg(), key).map_err(|_| KeyError::WrongLength {
                alg,
                expected: alg.keymat_len(),
                got: keymat.len(),
            })?;
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(salt);
        Ok(Aead {
            alg,
            key: aead::LessSafeKey::new(key),
            salt: s,
        })
    }

    pub fn alg(&self) -> AeadAlg {
        self.alg
    }

    /// The nonce is salt || IV (RFC 4106 4, RFC 7634 2).
    fn nonce(&self, iv: [u8; IV_LEN]) -> aead::Nonce {
        let mut n = [0u8; aead::NONCE_LEN];
        n[..SALT_LEN].copy_from_slice(&self.salt);
        n[SALT_LEN..].copy_from_slice(&iv);
        aead::Nonce::assume_unique_for_key(n)
    }

    /// Encrypts `data` in place and returns the ICV. The caller owns IV uniqueness: ESP
    /// uses the sequence number, which never repeats within an SA.
    pub fn seal_in_place(
        &self,
        iv: [u8; IV_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; ICV_LEN], SealError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(iv), aead::Aad::from(aad), data)
            .map_err(|_| SealError)?;
        let mut out = [0u8; ICV_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Verifies the trailing ICV and decrypts in place; returns the plaintext length.
    /// On failure the buffer contents are unspecified and must be dropped.
    pub fn open_in_place(
        &self,
        iv: [u8; IV_LEN],
        aad: &[u8],
        data_with_tag: &mut [u8],
    ) -> Result<usize, AuthError> {
        if data_with_tag.len() < ICV_LEN {
            return Err(AuthError);
        }
        self.key
            .open_in_place(self.nonce(iv), aead::Aad::from(aad), data_with_tag)
            .map(|pt| pt.len())
            .map_err(|_| AuthError)
    }
}

/// The ESP additional authenticated data: SPI || seq (12 bytes with ESN, RFC 4106 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspAad {
    bytes: [u8; 12],
    len: u8,
}

impl EspAad {
    /// `seq` is the full 64-bit sequence number; only its low half goes in without ESN.
    pub fn new(spi: u32, seq: u64, esn: bool) -> EspAad {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&spi.to_be_bytes());
        if esn {
            bytes[4..12].copy_from_slice(&seq.to_be_bytes());
            EspAad { bytes, len: 12 }
        } else {
            bytes[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
            EspAad { bytes, len: 8 }
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// One packet to seal: `data` is the plaintext followed by `ICV_LEN` bytes the ICV goes into.
pub struct SealJob<'a> {
    pub aead: &'a Aead,
    pub iv: [u8; IV_LEN],
    pub aad: EspAad,
    pub data: &'a mut [u8],
    pub result: Result<(), SealError>,
}

/// One packet to open: `data` is ciphertext || ICV; on success `result` is the plaintext length.
pub struct OpenJob<'a> {
    pub aead: &'a Aead,
    pub iv: [u8; IV_LEN],
    pub aad: EspAad,
    pub data: &'a mut [u8],
    pub result: Result<usize, AuthError>,
}

/// Seals and opens bursts. Each job's `result` is written; jobs are independent, so an
/// engine may reorder or parallelise them.
pub trait CryptoEngine: Send + Sync {
    fn seal_burst(&self, jobs: &mut [SealJob<'_>]);
    fn open_burst(&self, jobs: &mut [OpenJob<'_>]);
}

/// The software engine: a loop over `Aead`, with the key schedule hot in cache.
#[derive(Clone, Copy, Debug, Default)]
pub struct SoftEngine;

impl CryptoEngine for SoftEngine {
    fn seal_burst(&self, jobs: &mut [SealJob<'_>]) {
        for j in jobs {
            j.result = seal_job(j.aead, j.iv, &j.aad, j.data);
        }
    }

    fn open_burst(&self, jobs: &mut [OpenJob<'_>]) {
        for j in jobs {
            j.result = j.aead.open_in_place(j.iv, j.aad.as_slice(), j.data);
        }
    }
}

fn seal_job(aead: &Aead, iv: [u8; IV_LEN], aad: &EspAad, data: &mut [u8]) -> Result<(), SealError> {
    let split = data.len().checked_sub(ICV_LEN).ok_or(SealError)?;
    let (pt, icv) = data.split_at_mut(split);
    icv.copy_from_slice(&aead.seal_in_place(iv, aad.as_slice(), pt)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn rejects_wrong_key_length_with_clear_error() {
        let e = Aead::new(AeadAlg::AesGcm128, &[0u8; 16]).unwrap_err();
        assert_eq!(
            e,
            KeyError::WrongLength {
                alg: AeadAlg::AesGcm128,
                expected: 20,
                got: 16
            }
        );
        assert!(e.to_string().contains("needs 20 bytes"));
        assert!(Aead::new(AeadAlg::ChaCha20Poly1305, &[0u8; 36]).is_ok());
        assert!(Aead::new(AeadAlg::AesGcm256, &[0u8; 20]).is_err());
    }

    #[test]
    fn debug_redacts_key() {
        let a = Aead::new(AeadAlg::AesGcm128, &[0xab; 20]).unwrap();
        let s = format!("{a:?}");
        assert!(s.contains("redacted") && !s.to_lowercase().contains("ab, ") && !s.contains("171"));
    }

    #[test]
    fn rfc7634_appendix_a_seal_open_and_burst() {
        let a = Aead::new(
            AeadAlg::ChaCha20Poly1305,
            &h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3"),
        )
        .unwrap();
        let iv: [u8; 8] = h("1011121314151617").try_into().unwrap();
        let aad = EspAad::new(0x01020304, 5, false);
        let pt = h("45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec100007362708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363701020204");
        let mut buf = pt.clone();
        buf.extend_from_slice(&[0; 16]);
        let mut jobs = [SealJob {
            aead: &a,
            iv,
            aad,
            data: &mut buf,
            result: Err(SealError),
        }];
        SoftEngine.seal_burst(&mut jobs);
        assert!(jobs[0].result.is_ok());
        assert_eq!(
            hex::encode(&buf[pt.len()..]),
            "76aaa8266b7fb0f7b11b369907e1ad43"
        );
        let mut bad = buf.clone();
        bad[3] ^= 0x80;
        let mut jobs = [
            OpenJob {
                aead: &a,
                iv,
                aad,
                data: &mut buf,
                result: Err(AuthError),
            },
            OpenJob {
                aead: &a,
                iv,
                aad,
                data: &mut bad,
                result: Ok(0),
            },
        ];
        SoftEngine.open_burst(&mut jobs);
        assert_eq!(jobs[0].result, Ok(pt.len()));
        assert_eq!(jobs[1].result, Err(AuthError));
        assert_eq!(&buf[..pt.len()], &pt[..]);
        assert_eq!(
            a.open_in_place(iv, aad.as_slice(), &mut [0u8; 15]),
            Err(AuthError)
        );
    }
}
