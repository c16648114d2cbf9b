//! IKEv2 cryptography: PRF and prf+ (RFC 7296 2.13), key derivation (2.14, 2.17, 2.18),
//! SK payload protection (AES-GCM-16 per RFC 5282, AES-CBC + HMAC-SHA2 per RFC 4868),
//! Diffie-Hellman groups 14, 15, 19, 20, 31 and the PSK AUTH computation (2.15).

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag};
use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use num_bigint::BigUint;
use rand::RngCore;
use sha2::{Sha256, Sha384, Sha512};

use super::config::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use super::wire::{EncryptedRef, Header, GEN_HDR_LEN, HDR_LEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// Peer's public value is out of range or not on the curve.
    BadPublicValue,
    /// ICV or padding did not verify.
    Integrity,
    Malformed,
}

fn hmac_parts<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], out: &mut Vec<u8>) {
    let mut m = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        m.update(p);
    }
    out.extend_from_slice(&m.finalize().into_bytes());
}

/// prf(key, parts[0] | parts[1] | ...), appended to `out`.
pub fn prf_into(alg: PrfAlg, key: &[u8], parts: &[&[u8]], out: &mut Vec<u8>) {
    match alg {
        PrfAlg::HmacSha256 => hmac_parts::<Hmac<Sha256>>(key, parts, out),
        PrfAlg::HmacSha384 => hmac_parts::<Hmac<Sha384>>(key, parts, out),
        PrfAlg::HmacSha512 => hmac_parts::<Hmac<Sha512>>(key, parts, out),
    }
}

pub fn prf(alg: PrfAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(alg.out_len());
    prf_into(alg, key, parts, &mut out);
    out
}

/// prf+ (RFC 7296 2.13): T1 | T2 | ... truncated to `len`.
pub fn prf_plus(alg: PrfAlg, key: &[u8], seed: &[&[u8]], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + alg.out_len());
    let mut prev_start = 0;
    let mut counter = 1u8;
    while out.len() < len {
        let prev = out[prev_start..].to_vec();
        prev_start = out.len();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
        parts.push(&prev);
        parts.extend_from_slice(seed);
        let c = [counter];
        parts.push(&c);
        prf_into(alg, key, &parts, &mut out);
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// The negotiated IKE SA algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    pub encr: EncrAlg,
    pub prf: PrfAlg,
    pub integ: Option<IntegAlg>,
    pub dh: DhGroup,
}

/// SK_d, SK_a[ir], SK_e[ir], SK_p[ir] in one buffer (one allocation; SK_p is dropped after
/// IKE_AUTH by truncation). Debug is redacted.
pub struct IkeKeys {
    pub suite: IkeSuite,
    km: Box<[u8]>,
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IkeKeys({:?}, <redacted>)", self.suite)
    }
}

impl IkeKeys {
    fn lens(&self) -> (usize, usize, usize) {
        let s = &self.suite;
        (s.prf.out_len(), s.integ.map_or(0, |i| i.key_len()), s.encr.key_len())
    }
    pub fn d(&self) -> &[u8] {
        &self.km[..self.suite.prf.out_len()]
    }
    fn part(&self, idx: usize) -> &[u8] {
        let (p, a, e) = self.lens();
        let offs = [p, p + a, p + 2 * a, p + 2 * a + e, p + 2 * a + 2 * e, p + 2 * a + 2 * e + p];
        let sizes = [a, a, e, e, p, p];
        &self.km[offs[idx]..offs[idx] + sizes[idx]]
    }
    pub fn a(&self, initiator: bool) -> &[u8] {
        self.part(if initiator { 0 } else { 1 })
    }
    pub fn e(&self, initiator: bool) -> &[u8] {
        self.part(if initiator { 2 } else { 3 })
    }
    pub fn p(&self, initiator: bool) -> &[u8] {
        self.part(if initiator { 4 } else { 5 })
    }
    /// Forget SK_pi/SK_pr once authentication is done.
    pub fn drop_auth_keys(&mut self) {
        let (p, a, e) = self.lens();
        if self.km.len() > p + 2 * a + 2 * e {
            self.km = self.km[..p + 2 * a + 2 * e].to_vec().into_boxed_slice();
        }
    }

    /// RFC 7296 2.14. `skeyseed` is prf(Ni | Nr, g^ir) or, for a rekey, prf(SK_d, g^ir | Ni | Nr).
    pub fn derive(suite: IkeSuite, skeyseed: &[u8], ni: &[u8], nr: &[u8], spi_i: u64, spi_r: u64) -> IkeKeys {
        let p = suite.prf.out_len();
        let len = 3 * p + 2 * suite.integ.map_or(0, |i| i.key_len()) + 2 * suite.encr.key_len();
        let km = prf_plus(suite.prf, skeyseed, &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()], len);
        IkeKeys { suite, km: km.into_boxed_slice() }
    }

    pub fn initial(suite: IkeSuite, shared: &[u8], ni: &[u8], nr: &[u8], spi_i: u64, spi_r: u64) -> IkeKeys {
        let mut nonces = Vec::with_capacity(ni.len() + nr.len());
        nonces.extend_from_slice(ni);
        nonces.extend_from_slice(nr);
        // For HMAC PRFs the whole Ni | Nr is the key (RFC 7296 2.14).
        let skeyseed = prf(suite.prf, &nonces, &[shared]);
        Self::derive(suite, &skeyseed, ni, nr, spi_i, spi_r)
    }

    pub fn rekeyed(&self, suite: IkeSuite, shared: &[u8], ni: &[u8], nr: &[u8], spi_i: u64, spi_r: u64) -> IkeKeys {
        let skeyseed = prf(self.suite.prf, self.d(), &[shared, ni, nr]);
        Self::derive(suite, &skeyseed, ni, nr, spi_i, spi_r)
    }

    /// KEYMAT for a CHILD_SA (RFC 7296 2.17): the first `len` bytes go to the SA carrying
    /// initiator-to-responder traffic, the next `len` to the other direction.
    pub fn child_keymat(&self, shared: Option<&[u8]>, ni: &[u8], nr: &[u8], len: usize) -> (Vec<u8>, Vec<u8>) {
        let mut km = match shared {
            Some(s) => prf_plus(self.suite.prf, self.d(), &[s, ni, nr], 2 * len),
            None => prf_plus(self.suite.prf, self.d(), &[ni, nr], 2 * len),
        };
        let r = km.split_off(len);
        (km, r)
    }

    fn iv_len(&self) -> usize {
        if self.suite.encr.is_aead() {
            8
        } else {
            16
        }
    }
    fn icv_len(&self) -> usize {
        match self.suite.integ {
            _ if self.suite.encr.is_aead() => 16,
            Some(i) => i.icv_len(),
            None => 0,
        }
    }

    /// Build a protected message: header, SK (or SKF with `frag = Some((num, total))`)
    /// carrying `plain` (an encoded inner payload chain starting with `first_inner`).
    /// `sender_initiator` selects SK_ei/SK_ai vs SK_er/SK_ar. The header's length and
    /// next-payload fields are filled in here.
    pub fn seal(
        &self,
        sender_initiator: bool,
        mut header: Header,
        first_inner: u8,
        frag: Option<(u16, u16)>,
        plain: &[u8],
        iv_counter: u64,
    ) -> Vec<u8> {
        let aead = self.suite.encr.is_aead();
        let (iv_len, icv_len) = (self.iv_len(), self.icv_len());
        let pad = if aead { 0 } else { (16 - (plain.len() + 1) % 16) % 16 };
        let extra = if frag.is_some() { 4 } else { 0 };
        let sk_len = GEN_HDR_LEN + extra + iv_len + plain.len() + pad + 1 + icv_len;
        header.next_payload = if frag.is_some() { super::wire::ptype::SKF } else { super::wire::ptype::SK };
        header.length = (HDR_LEN + sk_len) as u32;
        let mut out = Vec::with_capacity(HDR_LEN + sk_len);
        header.emit(&mut out);
        out.extend_from_slice(&[first_inner, 0]);
        out.extend_from_slice(&(sk_len as u16).to_be_bytes());
        if let Some((n, t)) = frag {
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(&t.to_be_bytes());
        }
        let aad_end = out.len();
        let iv_at = out.len();
        if aead {
            out.extend_from_slice(&iv_counter.to_be_bytes());
        } else {
            let mut iv = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut iv);
            out.extend_from_slice(&iv);
        }
        let ct_at = out.len();
        out.extend_from_slice(plain);
        out.resize(out.len() + pad, 0);
        out.push(pad as u8);
        let key = self.e(sender_initiator);
        if aead {
            let (k, salt) = key.split_at(key.len() - 4);
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(salt);
            nonce[4..].copy_from_slice(&out[iv_at..iv_at + 8]);
            let (head, body) = out.split_at_mut(ct_at);
            let aad = &head[..aad_end];
            let tag = match self.suite.encr {
                EncrAlg::AesGcm16_128 => Aes128Gcm::new_from_slice(k)
                    .unwrap()
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, body),
                _ => Aes256Gcm::new_from_slice(k)
                    .unwrap()
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, body),
            }
            .expect("GCM seal cannot fail for IKE sizes");
            out.extend_from_slice(&tag);
        } else {
            let iv: [u8; 16] = out[iv_at..iv_at + 16].try_into().unwrap();
            let body = &mut out[ct_at..];
            match self.suite.encr {
                EncrAlg::AesCbc128 => {
                    let _ = cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
                        .unwrap()
                        .encrypt_padded_mut::<NoPadding>(body, body.len());
                }
                _ => {
                    let _ = cbc::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
                        .unwrap()
                        .encrypt_padded_mut::<NoPadding>(body, body.len());
                }
            }
            let mut icv = Vec::with_capacity(64);
            let integ = self.suite.integ.expect("non-AEAD needs integrity");
            integ_mac(integ, self.a(sender_initiator), &out, &mut icv);
            out.extend_from_slice(&icv[..icv_len]);
        }
        out
    }

    /// Verify and decrypt the SK/SKF payload `r` of `msg`. Returns the inner chain (padding
    /// removed).
    pub fn open(&self, sender_initiator: bool, msg: &[u8], r: &EncryptedRef) -> Result<Vec<u8>, CryptoError> {
        let aead = self.suite.encr.is_aead();
        let (iv_len, icv_len) = (self.iv_len(), self.icv_len());
        let extra = if r.ptype == super::wire::ptype::SKF { 4 } else { 0 };
        let end = r.offset + r.len;
        if end > msg.len() || r.len < GEN_HDR_LEN + extra + iv_len + icv_len + 1 {
            return Err(CryptoError::Malformed);
        }
        let aad_end = r.offset + GEN_HDR_LEN + extra;
        let iv_at = aad_end;
        let ct_at = iv_at + iv_len;
        let icv_at = end - icv_len;
        let key = self.e(sender_initiator);
        let mut body = msg[ct_at..icv_at].to_vec();
        if aead {
            let (k, salt) = key.split_at(key.len() - 4);
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(salt);
            nonce[4..].copy_from_slice(&msg[iv_at..iv_at + 8]);
            let aad = &msg[..aad_end];
            let tag = Tag::from_slice(&msg[icv_at..end]);
            let ok = match self.suite.encr {
                EncrAlg::AesGcm16_128 => Aes128Gcm::new_from_slice(k)
                    .unwrap()
                    .decrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut body, tag),
                _ => Aes256Gcm::new_from_slice(k)
                    .unwrap()
                    .decrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut body, tag),
            };
            ok.map_err(|_| CryptoError::Integrity)?;
        } else {
            let integ = self.suite.integ.ok_or(CryptoError::Malformed)?;
            let mut icv = Vec::with_capacity(64);
            integ_mac(integ, self.a(sender_initiator), &msg[..icv_at], &mut icv);
            if !ct_eq(&icv[..icv_len], &msg[icv_at..end]) {
                return Err(CryptoError::Integrity);
            }
            if !body.len().is_multiple_of(16) {
                return Err(CryptoError::Malformed);
            }
            let iv: [u8; 16] = msg[iv_at..iv_at + 16].try_into().unwrap();
            let res = match self.suite.encr {
                EncrAlg::AesCbc128 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, &iv)
                    .unwrap()
                    .decrypt_padded_mut::<NoPadding>(&mut body)
                    .map(|_| ()),
                _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, &iv)
                    .unwrap()
                    .decrypt_padded_mut::<NoPadding>(&mut body)
                    .map(|_| ()),
            };
            res.map_err(|_| CryptoError::Malformed)?;
        }
        let pad = *body.last().ok_or(CryptoError::Malformed)? as usize;
        if pad + 1 > body.len() {
            return Err(CryptoError::Malformed);
        }
        body.truncate(body.len() - pad - 1);
        Ok(body)
    }

    /// Per-message overhead of an SK payload (for fragmentation sizing).
    pub fn overhead(&self) -> usize {
        HDR_LEN + GEN_HDR_LEN + 4 + self.iv_len() + self.icv_len() + 16
    }
}

fn integ_mac(alg: IntegAlg, key: &[u8], data: &[u8], out: &mut Vec<u8>) {
    match alg {
        IntegAlg::HmacSha256_128 => hmac_parts::<Hmac<Sha256>>(key, &[data], out),
        IntegAlg::HmacSha384_192 => hmac_parts::<Hmac<Sha384>>(key, &[data], out),
        IntegAlg::HmacSha512_256 => hmac_parts::<Hmac<Sha512>>(key, &[data], out),
    }
}

pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// AUTH for shared key message integrity code (RFC 7296 2.15):
/// prf(prf(PSK, "Key Pad for IKEv2"), RealMessage | Nonce | prf(SK_p, IDx')).
pub fn psk_auth(alg: PrfAlg, psk: &[u8], real_message: &[u8], peer_nonce: &[u8], sk_p: &[u8], id_body: &[u8]) -> Vec<u8> {
    let maced_id = prf(alg, sk_p, &[id_body]);
    let key = prf(alg, psk, &[b"Key Pad for IKEv2"]);
    prf(alg, &key, &[real_message, peer_nonce, &maced_id])
}

const MODP2048_HEX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";
const MODP3072_HEX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";

/// RFC 3526 prime for group 14 or 15.
pub fn modp_prime(g: DhGroup) -> BigUint {
    let hex = if g == DhGroup::Modp3072 { MODP3072_HEX } else { MODP2048_HEX };
    BigUint::parse_bytes(hex.as_bytes(), 16).expect("static prime")
}

fn pad_be(v: &BigUint, len: usize) -> Vec<u8> {
    let b = v.to_bytes_be();
    let mut out = vec![0u8; len.saturating_sub(b.len())];
    out.extend_from_slice(&b);
    out
}

/// An ephemeral DH private value. Debug is redacted.
pub enum DhPrivate {
    X25519(x25519_dalek::StaticSecret),
    Ecp256(p256::SecretKey),
    Ecp384(p384::SecretKey),
    Modp(DhGroup, BigUint),
}

impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DhPrivate({:?}, <redacted>)", self.group())
    }
}

impl DhPrivate {
    pub fn generate(g: DhGroup) -> DhPrivate {
        let mut rng = rand::rngs::OsRng;
        match g {
            DhGroup::Curve25519 => DhPrivate::X25519(x25519_dalek::StaticSecret::random_from_rng(rng)),
            DhGroup::Ecp256 => DhPrivate::Ecp256(p256::SecretKey::random(&mut rng)),
            DhGroup::Ecp384 => DhPrivate::Ecp384(p384::SecretKey::random(&mut rng)),
            DhGroup::Modp2048 | DhGroup::Modp3072 => {
                // 2x the group's strength in exponent bits (RFC 3526 section 8).
                let mut x = [0u8; 48];
                rng.fill_bytes(&mut x);
                DhPrivate::Modp(g, BigUint::from_bytes_be(&x))
            }
        }
    }

    pub fn group(&self) -> DhGroup {
        match self {
            DhPrivate::X25519(_) => DhGroup::Curve25519,
            DhPrivate::Ecp256(_) => DhGroup::Ecp256,
            DhPrivate::Ecp384(_) => DhGroup::Ecp384,
            DhPrivate::Modp(g, _) => *g,
        }
    }

    /// KE payload data: u for x25519, x || y for ECP (RFC 5903), g^x mod p padded for MODP.
    pub fn public(&self) -> Vec<u8> {
        match self {
            DhPrivate::X25519(s) => x25519_dalek::PublicKey::from(s).as_bytes().to_vec(),
            DhPrivate::Ecp256(s) => {
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                s.public_key().to_encoded_point(false).as_bytes()[1..].to_vec()
            }
            DhPrivate::Ecp384(s) => {
                use p384::elliptic_curve::sec1::ToEncodedPoint;
                s.public_key().to_encoded_point(false).as_bytes()[1..].to_vec()
            }
            DhPrivate::Modp(g, x) => {
                let p = modp_prime(*g);
                pad_be(&BigUint::from(2u32).modpow(x, &p), g.public_len())
            }
        }
    }

    /// g^ir. The peer value is checked: length, curve membership, 1 < y < p-1, and a
    /// non-zero x25519 result.
    pub fn shared(&self, peer: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if peer.len() != self.group().public_len() {
            return Err(CryptoError::BadPublicValue);
        }
        match self {
            DhPrivate::X25519(s) => {
                let u: [u8; 32] = peer.try_into().map_err(|_| CryptoError::BadPublicValue)?;
                let ss = s.diffie_hellman(&x25519_dalek::PublicKey::from(u));
                if !ss.was_contributory() {
                    return Err(CryptoError::BadPublicValue);
                }
                Ok(ss.as_bytes().to_vec())
            }
            DhPrivate::Ecp256(s) => {
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(peer);
                let pk = p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| CryptoError::BadPublicValue)?;
                let ss = p256::ecdh::diffie_hellman(s.to_nonzero_scalar(), pk.as_affine());
                Ok(ss.raw_secret_bytes().to_vec())
            }
            DhPrivate::Ecp384(s) => {
                let mut sec1 = Vec::with_capacity(97);
                sec1.push(4);
                sec1.extend_from_slice(peer);
                let pk = p384::PublicKey::from_sec1_bytes(&sec1).map_err(|_| CryptoError::BadPublicValue)?;
                let ss = p384::ecdh::diffie_hellman(s.to_nonzero_scalar(), pk.as_affine());
                Ok(ss.raw_secret_bytes().to_vec())
            }
            DhPrivate::Modp(g, x) => {
                let p = modp_prime(*g);
                let y = BigUint::from_bytes_be(peer);
                let one = BigUint::from(1u32);
                if y <= one || y >= &p - &one {
                    return Err(CryptoError::BadPublicValue);
                }
                Ok(pad_be(&y.modpow(x, &p), g.public_len()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    /// RFC 4231 section 4.3, test case 2 (key "Jefe").
    #[test]
    fn rfc4231_case2() {
        let data = b"what do ya want for nothing?";
        assert_eq!(
            prf(PrfAlg::HmacSha256, b"Jefe", &[&data[..10], &data[10..]]),
            h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            prf(PrfAlg::HmacSha384, b"Jefe", &[data]),
            h("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649")
        );
        assert_eq!(
            prf(PrfAlg::HmacSha512, b"Jefe", &[data]),
            h("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
        );
    }

    /// prf+ is T1 | T2 with T1 = prf(K, S | 0x01), T2 = prf(K, T1 | S | 0x02).
    #[test]
    fn prf_plus_structure() {
        let out = prf_plus(PrfAlg::HmacSha256, b"k", &[b"seed"], 40);
        let t1 = prf(PrfAlg::HmacSha256, b"k", &[b"seed", &[1]]);
        let t2 = prf(PrfAlg::HmacSha256, b"k", &[&t1, b"seed", &[2]]);
        assert_eq!(&out[..32], &t1[..]);
        assert_eq!(&out[32..], &t2[..8]);
    }

    /// RFC 7748 section 5.2, first X25519 test vector.
    #[test]
    fn rfc7748_x25519() {
        let k: [u8; 32] = h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4").try_into().unwrap();
        let u: [u8; 32] = h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c").try_into().unwrap();
        let d = DhPrivate::X25519(x25519_dalek::StaticSecret::from(k));
        assert_eq!(d.shared(&u).unwrap(), h("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"));
        assert_eq!(d.shared(&[0u8; 32]), Err(CryptoError::BadPublicValue));
    }

    /// RFC 5903 section 8.1 (256-bit random ECP group).
    #[test]
    fn rfc5903_ecp256() {
        let i = h("C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433");
        let gi = h("DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180
                    5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3");
        let r = h("C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53");
        let gr = h("D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63
                    56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB");
        let gir = h("D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE");
        let di = DhPrivate::Ecp256(p256::SecretKey::from_slice(&i).unwrap());
        let dr = DhPrivate::Ecp256(p256::SecretKey::from_slice(&r).unwrap());
        assert_eq!(di.public(), gi);
        assert_eq!(dr.public(), gr);
        assert_eq!(di.shared(&gr).unwrap(), gir);
        assert_eq!(dr.shared(&gi).unwrap(), gir);
        let mut bad = gr.clone();
        bad[63] ^= 1;
        assert_eq!(di.shared(&bad), Err(CryptoError::BadPublicValue));
    }

    #[test]
    fn dh_agreement_all_groups() {
        for g in [DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Modp2048, DhGroup::Modp3072] {
            let a = DhPrivate::generate(g);
            let b = DhPrivate::generate(g);
            assert_eq!(a.public().len(), g.public_len());
            assert_eq!(a.shared(&b.public()).unwrap(), b.shared(&a.public()).unwrap(), "{g:?}");
        }
        let a = DhPrivate::generate(DhGroup::Modp2048);
        let mut one = vec![0u8; 256];
        one[255] = 1;
        assert_eq!(a.shared(&one), Err(CryptoError::BadPublicValue));
        assert_eq!(a.shared(&[0xff; 256]), Err(CryptoError::BadPublicValue));
    }

    #[test]
    fn seal_open_all_ciphers() {
        use super::super::wire::{parse_message, ptype};
        let suites = [
            (EncrAlg::AesGcm16_128, None),
            (EncrAlg::AesGcm16_256, None),
            (EncrAlg::AesCbc128, Some(IntegAlg::HmacSha256_128)),
            (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha384_192)),
            (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha512_256)),
        ];
        for (encr, integ) in suites {
            let suite = IkeSuite { encr, prf: PrfAlg::HmacSha384, integ, dh: DhGroup::Curve25519 };
            let k = IkeKeys::initial(suite, b"shared", &[1; 32], &[2; 32], 1, 2);
            let hdr = Header { spi_i: 1, spi_r: 2, next_payload: 0, version: 0x20, exchange: 37, flags: 8, msg_id: 3, length: 0 };
            for frag in [None, Some((1u16, 2u16))] {
                let msg = k.seal(true, hdr, ptype::NONCE, frag, b"0123456789abcdefXYZ", 7);
                let p = parse_message(&msg).unwrap();
                let r = p.encrypted.unwrap();
                assert_eq!(k.open(true, &msg, &r).unwrap(), b"0123456789abcdefXYZ");
                assert_eq!(k.open(false, &msg, &r), Err(CryptoError::Integrity));
                let mut t = msg.clone();
                let last = t.len() - 1;
                t[last] ^= 1;
                assert_eq!(k.open(true, &t, &r), Err(CryptoError::Integrity));
            }
        }
    }

    #[test]
    fn debug_redacts() {
        let suite = IkeSuite { encr: EncrAlg::AesGcm16_128, prf: PrfAlg::HmacSha256, integ: None, dh: DhGroup::Curve25519 };
        let k = IkeKeys::initial(suite, b"s", &[1; 16], &[2; 16], 1, 2);
        assert!(format!("{k:?}").contains("redacted"));
        assert!(format!("{:?}", DhPrivate::generate(DhGroup::Curve25519)).contains("redacted"));
    }
}
