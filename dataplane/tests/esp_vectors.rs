//! Published ESP known-answer packets (testdata/, sources named there) against Rampart's
//! AEAD and its full ESP path, on every crypto engine this build and CPU can run (soft, and
//! ipsec-mb where it is usable).

use rampart_dataplane::buf::{PktBuf, VecBuf};
use rampart_dataplane::crypto::{self, Aead, AeadAlg, Backend, Engine, EspAad};
use rampart_dataplane::esp::{esp_spi, EspError, Lifetime, Mode, Sa, SaParams, SEQ_MAX_ESN};
use rampart_dataplane::wire::ipv4;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

/// The engines to run: soft always, ipsec-mb where it can run (said loudly when it cannot).
fn engines() -> Vec<Engine> {
    match crypto::resolve(Engine::IpsecMb) {
        Ok(_) => vec![Engine::Soft, Engine::IpsecMb],
        Err(why) => {
            // Straight to stderr, past libtest's capture: a skipped engine must be seen.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                let _ = std::io::stderr()
                    .write_all(format!("\n!!! esp_vectors: soft engine only: {why}\n").as_bytes());
            });
            vec![Engine::Soft]
        }
    }
}

/// `Sa::new` builds its key on the process's engine, so the full-path tests select it; the
/// lock keeps those tests (threads of this one process) from switching it under each other.
/// Tests that need no `Sa` build their keys with `Aead::with_engine` and take no lock.
static PROCESS_ENGINE: Mutex<()> = Mutex::new(());

fn on_each_engine(f: impl Fn(Engine)) {
    let _guard = PROCESS_ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    for e in engines() {
        crypto::select_engine(e).unwrap();
        f(e);
    }
    crypto::select_engine(Engine::Soft).unwrap();
}

/// The backend an AES-GCM key of `engine` runs on (ChaCha20-Poly1305 is always ring).
fn backend_of(engine: Engine, alg: AeadAlg) -> Backend {
    if alg == AeadAlg::ChaCha20Poly1305 {
        Backend::Ring
    } else {
        crypto::resolve(engine).unwrap()
    }
}

struct Case {
    name: String,
    alg: AeadAlg,
    keymat: Vec<u8>,
    spi: u32,
    seq: u64,
    esn: bool,
    iv: [u8; 8],
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn load(file: &str) -> Vec<Case> {
    let path = format!("{}/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = vec![];
    for block in text.split("\n\n") {
        let f: HashMap<&str, &str> = block
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim(), v.trim())))
            .collect();
        if f.is_empty() {
            continue;
        }
        let h = |k: &str| hex::decode(f[k]).unwrap();
        let mut keymat = h("key");
        keymat.extend(h("salt"));
        out.push(Case {
            name: format!("{file} case {}", f["case"]),
            alg: match f["alg"] {
                "aes-gcm-128" => AeadAlg::AesGcm128,
                "aes-gcm-256" => AeadAlg::AesGcm256,
                "chacha20-poly1305" => AeadAlg::ChaCha20Poly1305,
                a => panic!("unknown alg {a}"),
            },
            keymat,
            spi: u32::from_str_radix(f["spi"], 16).unwrap(),
            seq: u64::from_str_radix(f["seq"], 16).unwrap(),
            esn: f["esn"] == "1",
            iv: h("iv").try_into().unwrap(),
            plaintext: h("plaintext"),
            ciphertext: h("ciphertext"),
        });
    }
    out
}

fn all_cases() -> Vec<Case> {
    let mut v = load("esp_gcm_draft_mcgrew.txt");
    assert_eq!(
        v.len(),
        15,
        "every AES-128/256 GCM case of draft-mcgrew-gcm-test-01"
    );
    v.extend(load("esp_chacha_rfc7634.txt"));
    v
}

/// Outer IPv4 header + ESP header + IV + ciphertext || ICV, as on the wire.
fn wire_packet(c: &Case) -> Vec<u8> {
    let total = 20 + 16 + c.ciphertext.len();
    let mut d = vec![0u8; 20];
    let mut h = ipv4::Packet::new_unchecked(&mut d[..]);
    h.set_version_header_len(20);
    h.set_total_len(total as u16);
    h.set_ttl(64);
    h.set_protocol(50);
    h.set_src_addr("192.0.2.1".parse().unwrap());
    h.set_dst_addr("192.0.2.2".parse().unwrap());
    h.fill_checksum();
    d.extend(c.spi.to_be_bytes());
    d.extend((c.seq as u32).to_be_bytes());
    d.extend(c.iv);
    d.extend(&c.ciphertext);
    d
}

#[test]
fn aead_seal_and_open_match_the_vectors() {
    let cases = all_cases();
    // What the engines must cover: both key sizes and the 12-byte ESN AAD.
    assert!(cases.iter().any(|c| c.alg == AeadAlg::AesGcm256));
    assert!(cases.iter().any(|c| c.esn && c.alg == AeadAlg::AesGcm128));
    for e in engines() {
        for c in &cases {
            let a = Aead::with_engine(e, c.alg, &c.keymat).unwrap();
            assert_eq!(a.backend(), backend_of(e, c.alg), "{e}: {}", c.name);
            let name = format!("{e}: {}", c.name);
            let aad = EspAad::new(c.spi, c.seq, c.esn);
            let mut buf = c.plaintext.clone();
            let tag = a.seal_in_place(c.iv, aad.as_slice(), &mut buf).unwrap();
            buf.extend(tag);
            assert_eq!(hex::encode(&buf), hex::encode(&c.ciphertext), "seal {name}");
            let n = a.open_in_place(c.iv, aad.as_slice(), &mut buf).unwrap();
            assert_eq!(&buf[..n], &c.plaintext[..], "open {name}");
            // The ESN AAD carries the high half: with the other AAD layout the ICV fails.
            let wrong = EspAad::new(c.spi, c.seq, !c.esn);
            let mut ct = c.ciphertext.clone();
            assert!(
                a.open_in_place(c.iv, wrong.as_slice(), &mut ct).is_err()
                    || c.seq >> 32 == 0 && !c.esn,
                "{name}"
            );
            // One flipped bit anywhere, ciphertext or ICV, fails authentication.
            for bit in [0, c.ciphertext.len() * 4 + 3, c.ciphertext.len() * 8 - 1] {
                let mut ct = c.ciphertext.clone();
                ct[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    a.open_in_place(c.iv, aad.as_slice(), &mut ct).is_err(),
                    "{name}: bit {bit}"
                );
            }
        }
    }
}

fn sa_for(c: &Case, mode: Mode) -> Sa {
    let sa = Sa::new(SaParams {
        spi: c.spi,
        alg: c.alg,
        key: c.keymat.clone(),
        mode,
        tunnel: (mode == Mode::Tunnel)
            .then(|| ("192.0.2.2".parse().unwrap(), "192.0.2.1".parse().unwrap())),
        encap: None,
        esn: c.esn,
        replay_window: 64,
        lifetime: Lifetime::default(),
    })
    .unwrap();
    // Put the receiver just before the vector's number, so ESN infers its high half.
    sa.replay().reset_to(c.seq - 1);
    sa
}

#[test]
fn full_esp_decap_accepts_the_vectors() {
    on_each_engine(full_esp_decap_on);
}

fn full_esp_decap_on(engine: Engine) {
    for c in all_cases() {
        if c.spi < 256 {
            // Case 4 uses SPI 0, which RFC 4303 2.1 keeps off the wire; the AEAD test covers it.
            continue;
        }
        let pkt = wire_packet(&c);
        assert_eq!(esp_spi(&pkt, false), Ok(c.spi));
        let nh = *c.plaintext.last().unwrap();
        let pad = c.plaintext[c.plaintext.len() - 2] as usize;
        let payload = &c.plaintext[..c.plaintext.len() - 2 - pad];
        let name = format!("{engine}: {}", c.name);
        let mode = if nh == 4 || nh == 41 {
            Mode::Tunnel
        } else {
            Mode::Transport
        };
        let sa = sa_for(&c, mode);
        // The SA's key is on the engine under test (its Debug names the backend).
        let want = format!("backend: {:?}", backend_of(engine, c.alg));
        assert!(format!("{sa:?}").contains(&want), "{name}: {sa:?}");
        let mut b = VecBuf::new(&pkt);
        let info = sa.decap(&mut b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((info.seq, info.next_header), (c.seq, nh), "{name}");
        match mode {
            Mode::Tunnel => assert_eq!(b.data(), payload, "{name}"),
            Mode::Transport => {
                let h = ipv4::Packet::new_checked(b.data()).unwrap();
                assert_eq!(h.protocol(), nh);
                assert!(h.verify_checksum());
                assert_eq!(h.payload(), payload, "{name}");
            }
        }
        // The same packet again is a replay; a flipped ICV bit fails authentication.
        assert_eq!(
            sa.decap(&mut VecBuf::new(&pkt)),
            Err(EspError::Replay),
            "{name}"
        );
        let sa = sa_for(&c, mode);
        let mut bad = pkt.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            sa.decap(&mut VecBuf::new(&bad)),
            Err(EspError::AuthFailed),
            "{name}"
        );
    }
}

/// The full encap path for AES-GCM on each engine, its output opened with a key on every
/// engine: the draft's payloads that are whole IPv4 datagrams go in as tunnel-mode inner
/// packets, with the draft's keys, SPIs and sequence numbers (so ESN's 12-byte AAD too).
#[test]
fn full_esp_encap_opens_on_every_engine() {
    let engines = engines();
    let whole_ipv4 = |p: &[u8]| {
        p.len() >= 20 && p[0] == 0x45 && u16::from_be_bytes([p[2], p[3]]) as usize == p.len()
    };
    on_each_engine(|engine| {
        let mut covered = vec![];
        for c in all_cases() {
            let pad = c.plaintext[c.plaintext.len() - 2] as usize;
            let inner = &c.plaintext[..c.plaintext.len() - 2 - pad];
            if c.alg == AeadAlg::ChaCha20Poly1305 || c.spi < 256 || !whole_ipv4(inner) {
                continue;
            }
            // Case 13's 2^64 - 1 is past what a Rampart SA sends: its last number instead.
            let seq = c.seq.min(SEQ_MAX_ESN);
            covered.push((c.alg, c.esn));
            let name = format!("{engine}: {}", c.name);
            let sa = sa_for(&c, Mode::Tunnel);
            assert!(
                format!("{sa:?}").contains(&format!("backend: {:?}", backend_of(engine, c.alg))),
                "{name}"
            );
            sa.advance_seq(seq).unwrap();
            let mut b = VecBuf::new(inner);
            sa.encap(&mut b).unwrap_or_else(|e| panic!("{name}: {e}"));
            let d = b.data().to_vec();
            assert_eq!(&d[20..24], &c.spi.to_be_bytes(), "{name}");
            assert_eq!(&d[24..28], &(seq as u32).to_be_bytes(), "{name}");
            assert_eq!(
                &d[28..36],
                &seq.to_be_bytes(),
                "{name}: IV = sequence number"
            );
            for &other in &engines {
                let a = Aead::with_engine(other, c.alg, &c.keymat).unwrap();
                let mut body = d[36..].to_vec();
                let n = a
                    .open_in_place(
                        d[28..36].try_into().unwrap(),
                        EspAad::new(c.spi, seq, c.esn).as_slice(),
                        &mut body,
                    )
                    .unwrap_or_else(|_| panic!("{name}: sealed on {engine}, opened on {other}"));
                assert_eq!(&body[..inner.len()], inner, "{name}");
                assert_eq!(body[n - 1], 4, "{name}: next header IPv4");
                let mut bad = d[36..].to_vec();
                bad[0] ^= 0x40;
                assert!(a
                    .open_in_place(
                        d[28..36].try_into().unwrap(),
                        EspAad::new(c.spi, seq, c.esn).as_slice(),
                        &mut bad,
                    )
                    .is_err());
            }
        }
        for want in [
            (AeadAlg::AesGcm128, true),
            (AeadAlg::AesGcm128, false),
            (AeadAlg::AesGcm256, true),
            (AeadAlg::AesGcm256, false),
        ] {
            assert!(covered.contains(&want), "{want:?} not covered: {covered:?}");
        }
    });
}

/// Rampart's IV is its sequence number, so its packet for the RFC 7634 example differs
/// from the RFC's in IV and ciphertext; everything the IV does not touch must match: the
/// ESP header, and the plaintext with its padding and trailer, byte for byte.
///
/// ChaCha20-Poly1305 runs on ring whatever the engine, so this one needs no engine lock.
#[test]
fn full_esp_encap_reproduces_rfc7634_layout() {
    let c = load("esp_chacha_rfc7634.txt").remove(0);
    let inner = &c.plaintext[..c.plaintext.len() - 4];
    let sa = sa_for(&c, Mode::Tunnel);
    sa.advance_seq(c.seq).unwrap();
    let mut b = VecBuf::new(inner);
    sa.encap(&mut b).unwrap();
    let d = b.data().to_vec();
    assert_eq!(d.len(), 20 + 8 + 8 + c.ciphertext.len());
    assert_eq!(
        &d[20..28],
        &wire_packet(&c)[20..28],
        "SPI and sequence number"
    );
    assert_eq!(
        &d[28..36],
        &c.seq.to_be_bytes(),
        "IV = 64-bit sequence number"
    );
    let a = Aead::new(c.alg, &c.keymat).unwrap();
    let mut body = d[36..].to_vec();
    let n = a
        .open_in_place(
            d[28..36].try_into().unwrap(),
            EspAad::new(c.spi, c.seq, false).as_slice(),
            &mut body,
        )
        .unwrap();
    assert_eq!(hex::encode(&body[..n]), hex::encode(&c.plaintext));
    // And with the RFC's IV, the same AEAD gives the RFC's bytes.
    let mut pt = c.plaintext.clone();
    let tag = a
        .seal_in_place(c.iv, EspAad::new(c.spi, c.seq, false).as_slice(), &mut pt)
        .unwrap();
    pt.extend(tag);
    assert_eq!(pt, c.ciphertext);
}
