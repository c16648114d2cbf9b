//! IKE peers from the config: identities, PSKs, strongSwan-style proposal strings and the
//! children's traffic selectors, turned into the IKE engine's `PeerConfig`.

use crate::config::{parse_hex, parse_prefix, AuthConfig, PeerConfigJson};
use crate::ike::{
    Auth, ChildConfig, ChildMode, DhGroup, DpdAction, EncrAlg, EspAlg, EspProposal, Identity, IkeProposal, IntegAlg, Lifetime,
    PeerConfig, PrfAlg, StartAction, TrafficSelector,
};
use std::time::Duration;

type FieldError = (String, String);

pub fn identity(s: &str) -> Identity {
    if let Ok(a) = s.parse::<std::net::IpAddr>() {
        return match a {
            std::net::IpAddr::V4(a) => Identity::Ipv4(a),
            std::net::IpAddr::V6(a) => Identity::Ipv6(a),
        };
    }
    if let Some(k) = s.strip_prefix("keyid:") {
        if let Ok(k) = parse_hex(k) {
            return Identity::KeyId(k);
        }
    }
    if s.contains('@') {
        return Identity::Rfc822(s.to_string());
    }
    Identity::Fqdn(s.to_string())
}

fn dh(tok: &str) -> Option<DhGroup> {
    Some(match tok {
        "x25519" | "curve25519" => DhGroup::Curve25519,
        "ecp256" => DhGroup::Ecp256,
        "ecp384" => DhGroup::Ecp384,
        "modp2048" => DhGroup::Modp2048,
        "modp3072" => DhGroup::Modp3072,
        _ => return None,
    })
}

/// `aes128gcm16-prfsha256-x25519`, `aes256-sha384-ecp384` (CBC with HMAC; the PRF follows the
/// integrity algorithm unless a `prf...` token names one).
pub fn ike_proposal(s: &str) -> Result<IkeProposal, String> {
    let mut p = IkeProposal { encr: vec![], prf: vec![], integ: vec![], dh: vec![] };
    for tok in s.split('-') {
        match tok {
            "aes128gcm16" | "aes128gcm" => p.encr.push(EncrAlg::AesGcm16_128),
            "aes256gcm16" | "aes256gcm" => p.encr.push(EncrAlg::AesGcm16_256),
            "aes128" => p.encr.push(EncrAlg::AesCbc128),
            "aes256" => p.encr.push(EncrAlg::AesCbc256),
            "sha256" => p.integ.push(IntegAlg::HmacSha256_128),
            "sha384" => p.integ.push(IntegAlg::HmacSha384_192),
            "sha512" => p.integ.push(IntegAlg::HmacSha512_256),
            "prfsha256" => p.prf.push(PrfAlg::HmacSha256),
            "prfsha384" => p.prf.push(PrfAlg::HmacSha384),
            "prfsha512" => p.prf.push(PrfAlg::HmacSha512),
            t => p.dh.push(dh(t).ok_or_else(|| format!("`{t}` in `{s}` is not an IKE algorithm Rampart knows"))?),
        }
    }
    if p.prf.is_empty() {
        p.prf = p.integ.iter().map(|i| match i {
            IntegAlg::HmacSha256_128 => PrfAlg::HmacSha256,
            IntegAlg::HmacSha384_192 => PrfAlg::HmacSha384,
            IntegAlg::HmacSha512_256 => PrfAlg::HmacSha512,
        }).collect();
    }
    let aead = p.encr.iter().all(|e| e.is_aead());
    if p.encr.is_empty() || p.prf.is_empty() || p.dh.is_empty() || (!aead && p.integ.is_empty()) {
        return Err(format!("`{s}` needs an encryption algorithm, a PRF (or integrity) and a key exchange group"));
    }
    Ok(p)
}

/// `aes128gcm16-x25519`, `chacha20poly1305`, `aes256gcm16-esn`; `any` (or `any-x25519`):
/// the IKE_SA's own cipher, as initiator; whatever we support, as responder.
pub fn esp_proposal(s: &str) -> Result<EspProposal, String> {
    let mut p = EspProposal { algs: vec![], esn: false, dh: vec![] };
    let mut any = false;
    for tok in s.split('-') {
        match tok {
            "any" => any = true,
            "aes128gcm16" | "aes128gcm" => p.algs.push(EspAlg::AesGcm128),
            "aes256gcm16" | "aes256gcm" => p.algs.push(EspAlg::AesGcm256),
            "chacha20poly1305" => p.algs.push(EspAlg::ChaCha20Poly1305),
            "esn" => p.esn = true,
            "noesn" => p.esn = false,
            t => p.dh.push(dh(t).ok_or_else(|| format!("`{t}` in `{s}` is not an ESP algorithm Rampart knows"))?),
        }
    }
    if p.algs.is_empty() != any {
        return Err(format!("`{s}` needs an ESP algorithm (aes128gcm16, aes256gcm16, chacha20poly1305) or `any`, not both"));
    }
    Ok(p)
}

fn lifetime(base: Lifetime, secs: Option<u64>) -> Lifetime {
    match secs {
        // Rekey at the configured time, with 10 % jitter below it; give up 10 % later.
        Some(s) => Lifetime { soft: Duration::from_secs(s), hard: Duration::from_secs(s + s / 10 + 1), jitter: Duration::from_secs(s / 10) },
        None => base,
    }
}

fn selectors(list: &[String], field: &str) -> Result<Vec<TrafficSelector>, FieldError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let (a, l) = parse_prefix(s).map_err(|m| (format!("{field}[{i}]"), m))?;
            Ok(TrafficSelector::from_prefix(a, l))
        })
        .collect()
}

/// The engine's view of one configured peer; errors name the field below `peers[i]`.
pub fn peer(p: &PeerConfigJson) -> Result<PeerConfig, FieldError> {
    let auth = match &p.auth {
        AuthConfig::Psk(k) => {
            let key = match k.strip_prefix("0x") {
                Some(h) => parse_hex(h).map_err(|m| ("auth.psk".to_string(), m))?,
                None => k.as_bytes().to_vec(),
            };
            if key.len() < 16 {
                return Err(("auth.psk".into(), "a PSK shorter than 16 bytes is too easy to guess".into()));
            }
            Auth::Psk(key)
        }
    };
    let ike_proposals = p.ike_proposals.iter().enumerate().map(|(i, s)| ike_proposal(s).map_err(|m| (format!("ike_proposals[{i}]"), m))).collect::<Result<Vec<_>, _>>()?;
    let esp_proposals = p.esp_proposals.iter().enumerate().map(|(i, s)| esp_proposal(s).map_err(|m| (format!("esp_proposals[{i}]"), m))).collect::<Result<Vec<_>, _>>()?;
    let mut children = Vec::new();
    for (i, c) in p.children.iter().enumerate() {
        children.push(ChildConfig {
            name: c.name.clone(),
            local_ts: selectors(&c.local_ts, &format!("children[{i}].local_ts"))?,
            remote_ts: selectors(&c.remote_ts, &format!("children[{i}].remote_ts"))?,
            mode: ChildMode::Tunnel,
            esp_proposals: esp_proposals.clone(),
            pfs: c.pfs,
            lifetime: lifetime(Lifetime::CHILD_DEFAULT, c.lifetime_s),
        });
    }
    if children.is_empty() {
        return Err(("children".into(), "a peer needs at least one child (what to protect)".into()));
    }
    if p.local_addrs.is_empty() {
        return Err(("local_addrs".into(), "at least one local address is needed".into()));
    }
    Ok(PeerConfig {
        name: p.name.clone(),
        local_addrs: p.local_addrs.clone(),
        remote_addr: p.remote_addr,
        local_id: identity(&p.local_id),
        remote_id: identity(&p.remote_id),
        auth,
        ike_proposals,
        esp_proposals,
        children,
        ike_lifetime: lifetime(Lifetime::IKE_DEFAULT, p.ike_lifetime_s),
        dpd_interval: p.dpd_interval_s.map(Duration::from_secs),
        start_action: match p.start_action.as_str() {
            "none" => StartAction::None,
            "start" => StartAction::Start,
            "trap" => StartAction::Trap,
            o => return Err(("start_action".into(), format!("`{o}`: expected none, start or trap"))),
        },
        dpd_action: match p.dpd_action.as_str() {
            "clear" => DpdAction::Clear,
            "restart" => DpdAction::Restart,
            o => return Err(("dpd_action".into(), format!("`{o}`: expected clear or restart"))),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_parse_like_strongswan() {
        let p = ike_proposal("aes128gcm16-prfsha256-x25519").unwrap();
        assert_eq!((p.encr, p.prf, p.dh), (vec![EncrAlg::AesGcm16_128], vec![PrfAlg::HmacSha256], vec![DhGroup::Curve25519]));
        let p = ike_proposal("aes256-sha384-modp3072").unwrap();
        assert_eq!((p.integ, p.prf), (vec![IntegAlg::HmacSha384_192], vec![PrfAlg::HmacSha384]));
        assert!(ike_proposal("aes256-x25519").is_err());
        assert!(ike_proposal("aes128gcm16-prfsha256-modp1024").is_err());
        let e = esp_proposal("chacha20poly1305-esn-ecp256").unwrap();
        assert_eq!((e.algs, e.esn, e.dh), (vec![EspAlg::ChaCha20Poly1305], true, vec![DhGroup::Ecp256]));
        assert!(esp_proposal("x25519").is_err());
        assert!(esp_proposal("any-aes128gcm16").is_err());
        assert!(esp_proposal("any-x25519").unwrap().algs.is_empty());
    }

    #[test]
    fn identities_by_shape() {
        assert_eq!(identity("192.0.2.1"), Identity::Ipv4("192.0.2.1".parse().unwrap()));
        assert_eq!(identity("right.interop.test"), Identity::Fqdn("right.interop.test".into()));
        assert_eq!(identity("a@b.example"), Identity::Rfc822("a@b.example".into()));
        assert_eq!(identity("keyid:0a0b"), Identity::KeyId(vec![10, 11]));
    }
}
