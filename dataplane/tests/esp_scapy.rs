//! Rampart's ESP against an independent implementation: scapy's `SecurityAssociation`
//! (tests/scapy/esp_oracle.py). For every algorithm, mode, inner and outer family, ESN
//! and UDP encapsulation, scapy decrypts what Rampart encrypts and Rampart decrypts what
//! scapy encrypts, and both give back the original inner packet; on every crypto engine
//! this build and CPU can run (soft, and ipsec-mb where it is usable).
//!
//! Skips with a loud message when python3, scapy or cryptography are missing; set
//! RAMPART_REQUIRE_SCAPY=1 (CI does) to make that a failure instead.

use rampart_dataplane::buf::{PktBuf, VecBuf};
use rampart_dataplane::crypto::{self, AeadAlg, Engine};
use rampart_dataplane::esp::{Lifetime, Mode, Sa, SaParams, UdpEncap};
use rampart_dataplane::wire::{ecn, ip_proto, ipv4, ipv6, udp};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

const SPI: u32 = 0xc0de_0101;

/// `Sa::new` builds its key on the process's engine; the lock keeps the two tests (threads
/// of this process) from switching it under each other.
static PROCESS_ENGINE: Mutex<()> = Mutex::new(());

/// Runs `f` once per engine this build and CPU can run, with that engine selected.
fn on_each_engine(mut f: impl FnMut(Engine)) {
    let _guard = PROCESS_ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let mut engines = vec![Engine::Soft];
    match crypto::resolve(Engine::IpsecMb) {
        Ok(_) => engines.push(Engine::IpsecMb),
        Err(why) => {
            let _ = std::io::stderr()
                .write_all(format!("\n!!! esp_scapy: soft engine only: {why}\n").as_bytes());
        }
    }
    for e in engines {
        crypto::select_engine(e).unwrap();
        f(e);
    }
    crypto::select_engine(Engine::Soft).unwrap();
}

struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    fn start() -> Option<Oracle> {
        let probe = Command::new("python3")
            .args([
                "-c",
                "import scapy.layers.ipsec, cryptography.hazmat.primitives.ciphers.aead",
            ])
            .output();
        if !matches!(&probe, Ok(o) if o.status.success()) {
            let why = match probe {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            if std::env::var_os("RAMPART_REQUIRE_SCAPY").is_some() {
                panic!("esp_scapy: python3 with scapy and cryptography is required: {why}");
            }
            // Straight to stderr, past libtest's capture: a skip must be seen.
            let msg = format!(
                "\n!!! esp_scapy SKIPPED: python3 with scapy and cryptography not found ({}).\n\
                 !!! Install them (pip install scapy cryptography) or set RAMPART_REQUIRE_SCAPY=1.\n\n",
                why.trim()
            );
            let _ = std::io::stderr().write_all(msg.as_bytes());
            return None;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy/esp_oracle.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start esp_oracle.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Some(Oracle {
            child,
            stdin,
            stdout,
        })
    }

    /// Sends one request and returns (packet, trailer_ok); panics with scapy's error.
    fn call(&mut self, cfg: &Cfg, op: &str, seq: u64, packet: &[u8]) -> (Vec<u8>, bool) {
        let tunnel = match cfg.tunnel() {
            Some((s, d)) => format!("[\"{s}\", \"{d}\"]"),
            None => "null".into(),
        };
        let encap = match cfg.encap() {
            Some(e) => format!("[{}, {}]", e.sport, e.dport),
            None => "null".into(),
        };
        let alg = if cfg.alg == AeadAlg::ChaCha20Poly1305 {
            "CHACHA20-POLY1305"
        } else {
            "AES-GCM"
        };
        let req = format!(
            "{{\"op\": \"{op}\", \"alg\": \"{alg}\", \"key\": \"{}\", \"spi\": {SPI}, \"seq\": {seq}, \"esn\": {}, \"tunnel\": {tunnel}, \"encap\": {encap}, \"packet\": \"{}\"}}\n",
            hex::encode(cfg.key()),
            cfg.esn,
            hex::encode(packet)
        );
        self.stdin.write_all(req.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(
            line.contains("\"ok\": true"),
            "scapy {op} failed for {cfg:?} seq {seq}: {line}"
        );
        let hex_of = |field: &str| -> Option<String> {
            let at = line.find(&format!("\"{field}\": \""))? + field.len() + 5;
            Some(line[at..at + line[at..].find('"')?].to_string())
        };
        (
            hex::decode(hex_of("packet").unwrap()).unwrap(),
            line.contains("\"trailer_ok\": true"),
        )
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, Debug)]
struct Cfg {
    alg: AeadAlg,
    mode: Mode,
    inner_v6: bool,
    outer_v6: bool,
    esn: bool,
    udp: bool,
}

impl Cfg {
    fn key(&self) -> Vec<u8> {
        (0..self.alg.keymat_len())
            .map(|i| (i as u8).wrapping_mul(37).wrapping_add(self.alg as u8))
            .collect()
    }

    fn tunnel(&self) -> Option<(IpAddr, IpAddr)> {
        (self.mode == Mode::Tunnel).then(|| {
            if self.outer_v6 {
                (
                    "2001:db8::1".parse().unwrap(),
                    "2001:db8:ffff::2".parse().unwrap(),
                )
            } else {
                (
                    "192.0.2.1".parse().unwrap(),
                    "198.51.100.2".parse().unwrap(),
                )
            }
        })
    }

    fn encap(&self) -> Option<UdpEncap> {
        self.udp.then_some(UdpEncap {
            sport: 4500,
            dport: 4500,
        })
    }

    fn sa(&self) -> Sa {
        Sa::new(SaParams {
            spi: SPI,
            alg: self.alg,
            key: self.key(),
            mode: self.mode,
            tunnel: self.tunnel(),
            encap: self.encap(),
            esn: self.esn,
            replay_window: 128,
            lifetime: Lifetime::default(),
        })
        .unwrap()
    }

    /// The first sequence number used: with ESN, just below a wrap of the low half so
    /// that both high halves appear in the AAD.
    fn first_seq(&self) -> u64 {
        if self.esn {
            (5 << 32) | 0xffff_fffd
        } else {
            1
        }
    }
}

/// A UDP packet with `n` payload bytes (DSCP AF41, ECT(0)) and valid checksums.
fn inner(v6: bool, n: usize) -> Vec<u8> {
    let l4 = udp::HEADER_LEN + n;
    let hl = if v6 { 40 } else { 20 };
    let mut p = vec![0u8; hl + l4];
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        ("fd00::10".parse().unwrap(), "fd00:1::20".parse().unwrap())
    } else {
        ("10.0.0.10".parse().unwrap(), "10.1.0.20".parse().unwrap())
    };
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = ipv6::Packet::new_unchecked(&mut p[..]);
            h.set_version_tc_flow((34 << 2) | ecn::ECT0, 0xbeef);
            h.set_payload_len(l4 as u16);
            h.set_next_header(ip_proto::UDP);
            h.set_hop_limit(63);
            h.set_src_addr(s);
            h.set_dst_addr(d);
        }
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = ipv4::Packet::new_unchecked(&mut p[..]);
            h.set_version_header_len(20);
            h.set_tos((34 << 2) | ecn::ECT0);
            h.set_total_len((hl + l4) as u16);
            h.set_ident(0x4242);
            h.set_frag(true, false, 0);
            h.set_ttl(63);
            h.set_protocol(ip_proto::UDP);
            h.set_src_addr(s);
            h.set_dst_addr(d);
            h.fill_checksum();
        }
        _ => unreachable!(),
    }
    let mut u = udp::Packet::new_unchecked(&mut p[hl..]);
    u.set_src_port(5353);
    u.set_dst_port(53);
    u.set_len(l4 as u16);
    for (i, b) in u.payload_mut().iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    u.fill_checksum(&src, &dst);
    p
}

fn configs() -> Vec<Cfg> {
    let mut v = vec![];
    for alg in [
        AeadAlg::AesGcm128,
        AeadAlg::AesGcm256,
        AeadAlg::ChaCha20Poly1305,
    ] {
        for mode in [Mode::Tunnel, Mode::Transport] {
            for inner_v6 in [false, true] {
                for outer_v6 in [false, true] {
                    if mode == Mode::Transport && inner_v6 != outer_v6 {
                        continue;
                    }
                    for esn in [false, true] {
                        for udp in [false, true] {
                            v.push(Cfg {
                                alg,
                                mode,
                                inner_v6,
                                outer_v6,
                                esn,
                                udp,
                            });
                        }
                    }
                }
            }
        }
    }
    v
}

const SIZES: [usize; 6] = [0, 1, 2, 3, 4, 301];

#[test]
fn scapy_decrypts_what_rampart_encrypts() {
    let Some(mut oracle) = Oracle::start() else {
        return;
    };
    on_each_engine(|engine| {
        let mut checked = 0;
        for cfg in configs() {
            let sa = cfg.sa();
            sa.advance_seq(cfg.first_seq()).unwrap();
            for n in SIZES {
                let orig = inner(cfg.inner_v6, n);
                let mut b = VecBuf::new(&orig);
                sa.encap(&mut b).unwrap();
                let (back, trailer_ok) = oracle.call(&cfg, "decrypt", sa.last_seq(), b.data());
                assert_eq!(
                    hex::encode(back),
                    hex::encode(&orig),
                    "{engine}: {cfg:?} n={n}"
                );
                assert!(
                    trailer_ok,
                    "padding/alignment per RFC 4303 2.4: {engine}: {cfg:?} n={n}"
                );
                checked += 1;
            }
        }
        eprintln!("esp_scapy: scapy decrypted {checked} Rampart packets ({engine})");
    });
}

#[test]
fn rampart_decrypts_what_scapy_encrypts() {
    let Some(mut oracle) = Oracle::start() else {
        return;
    };
    on_each_engine(|engine| {
        let mut checked = 0;
        for cfg in configs() {
            let sa = cfg.sa();
            sa.replay().reset_to(cfg.first_seq() - 1);
            for (i, n) in SIZES.into_iter().enumerate() {
                let orig = inner(cfg.inner_v6, n);
                let seq = cfg.first_seq() + i as u64;
                let (outer, _) = oracle.call(&cfg, "encrypt", seq, &orig);
                let mut b = VecBuf::new(&outer);
                let info = sa
                    .decap(&mut b)
                    .unwrap_or_else(|e| panic!("{engine}: {cfg:?} n={n}: {e}"));
                assert_eq!(info.seq, seq);
                assert_eq!(
                    hex::encode(b.data()),
                    hex::encode(&orig),
                    "{engine}: {cfg:?} n={n}"
                );
                // Replaying scapy's packet is refused.
                assert!(sa.decap(&mut VecBuf::new(&outer)).is_err());
                checked += 1;
            }
        }
        eprintln!("esp_scapy: Rampart decrypted {checked} scapy packets ({engine})");
    });
}
