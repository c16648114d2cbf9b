//! Key export for debugging: every ESP SA and IKE_SA the gateway installs, appended to
//! `<dir>/esp_sa` and `<dir>/ikev2_decryption_table` in Wireshark's UAT formats, so that
//! tshark (`XDG_CONFIG_HOME` pointing at a folder holding `wireshark/` = `dir`, or `-o uat:...`)
//! decrypts a capture. Only when the config asks for it (`key_export.dir`); keys never go to
//! the log, only to these files (mode 0600).

use crate::ike::{IkeSaKeys, EncrAlg, IntegAlg};
use rampart_dataplane::crypto::AeadAlg;
use rampart_dataplane::esp::SaParams;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub struct KeyExport {
    dir: PathBuf,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One `esp_sa` line for an SA: protocol, source, destination, SPI, algorithm, key (with
/// salt), no separate authentication (AEAD). The key is passed apart: an installed `Sa` keeps
/// no copy of it in its params.
pub fn esp_line(p: &SaParams, key: &[u8]) -> String {
    let (proto, src, dst) = match p.tunnel {
        Some((s, d)) => (if s.is_ipv4() { "IPv4" } else { "IPv6" }, s.to_string(), d.to_string()),
        None => ("IPv4", "*".into(), "*".into()),
    };
    let alg = match p.alg {
        AeadAlg::AesGcm128 | AeadAlg::AesGcm256 => "AES-GCM with 16 octet ICV [RFC4106]",
        // Wireshark 4.2's name; 4.0 (Debian 12) cannot decrypt ChaCha20 ESP and refuses the line.
        AeadAlg::ChaCha20Poly1305 => "ChaCha20 with Poly1305 [RFC7634]",
    };
    format!("\"{proto}\",\"{src}\",\"{dst}\",\"{:#010x}\",\"{alg}\",\"0x{}\",\"NULL\",\"\"", p.spi, hex(key))
}

/// One `ikev2_decryption_table` line (hex fields unquoted, as Wireshark wants them).
pub fn ike_line(k: &IkeSaKeys) -> String {
    let encr = match k.encr {
        EncrAlg::AesCbc128 => "AES-CBC-128 [RFC3602]",
        EncrAlg::AesCbc256 => "AES-CBC-256 [RFC3602]",
        EncrAlg::AesGcm16_128 => "AES-GCM-128 with 16 octet ICV [RFC5282]",
        EncrAlg::AesGcm16_256 => "AES-GCM-256 with 16 octet ICV [RFC5282]",
    };
    let integ = match k.integ {
        None => "NONE [RFC4306]",
        Some(IntegAlg::HmacSha256_128) => "HMAC_SHA2_256_128 [RFC4868]",
        Some(IntegAlg::HmacSha384_192) => "HMAC_SHA2_384_192 [RFC4868]",
        Some(IntegAlg::HmacSha512_256) => "HMAC_SHA2_512_256 [RFC4868]",
    };
    format!(
        "{:016x},{:016x},{},{},\"{encr}\",{},{},\"{integ}\"",
        k.spi_i,
        k.spi_r,
        hex(&k.sk_ei),
        hex(&k.sk_er),
        hex(&k.sk_ai),
        hex(&k.sk_ar)
    )
}

impl KeyExport {
    /// Creates the directory if needed and checks that both files can be written; the error
    /// names `key_export.dir`.
    pub fn open(dir: &Path) -> Result<KeyExport, String> {
        let err = |e: std::io::Error| format!("key_export.dir: {}: {e}", dir.display());
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
        let k = KeyExport { dir: dir.to_owned() };
        for f in ["esp_sa", "ikev2_decryption_table"] {
            k.file(f).map_err(err)?;
        }
        Ok(k)
    }

    fn file(&self, name: &str) -> std::io::Result<std::fs::File> {
        OpenOptions::new().create(true).append(true).mode(0o600).open(self.dir.join(name))
    }

    fn append(&self, name: &str, line: &str) {
        let r = self.file(name).and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = r {
            tracing::warn!(target: "dataplane", file = %self.dir.join(name).display(), "key export failed: {e}");
        }
    }

    pub fn esp(&self, p: &SaParams, key: &[u8]) {
        self.append("esp_sa", &esp_line(p, key));
    }

    pub fn ike(&self, k: &IkeSaKeys) {
        self.append("ikev2_decryption_table", &ike_line(k));
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_dataplane::esp::{Lifetime, Mode};

    #[test]
    fn lines_in_wiresharks_format() {
        let p = SaParams {
            spi: 0x1001,
            alg: AeadAlg::AesGcm128,
            key: vec![0xab; 20],
            mode: Mode::Tunnel,
            tunnel: Some(("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())),
            encap: None,
            esn: false,
            replay_window: 64,
            lifetime: Lifetime::default(),
        };
        assert_eq!(
            esp_line(&p, &p.key),
            format!("\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0x00001001\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x{}\",\"NULL\",\"\"", "ab".repeat(20))
        );
        let k = IkeSaKeys { spi_i: 1, spi_r: 2, encr: EncrAlg::AesGcm16_128, integ: None, sk_ei: vec![1; 20], sk_er: vec![2; 20], sk_ai: vec![], sk_ar: vec![] };
        assert_eq!(
            ike_line(&k),
            format!("0000000000000001,0000000000000002,{},{},\"AES-GCM-128 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\"", "01".repeat(20), "02".repeat(20))
        );
        assert!(!format!("{k:?}").contains("0101"));
    }
}
