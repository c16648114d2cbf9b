//! Interoperability with strongSwan (an IKEv2/ESP implementation none of us wrote), through
//! scripts/interop.sh: strongSwan in one namespace, Rampart on DPDK ports in the other.
//! strongswan-pair.sh's `test` pings (small, MTU-filling, fragmented), echoes UDP, moves
//! sha256-checked TCP both ways, and rekeys the CHILD_SA and the IKE_SA during the run.

use std::path::Path;
use std::process::Command;

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn interop_dir() -> Option<std::path::PathBuf> {
    let d = std::env::var_os("INTEROP_DIR").map(Into::into).unwrap_or_else(|| root().join("../shared/interop"));
    d.join("strongswan-pair.sh").exists().then_some(d)
}

fn run(config: &str, env: &[(&str, &str)]) {
    let out = Command::new(root().join("scripts/interop.sh"))
        .arg(root().join(config))
        .envs(env.iter().copied())
        .env("RAMPART_BIN", env!("CARGO_BIN_EXE_rampart"))
        .env("LOG", std::env::temp_dir().join("rampart-interop-test"))
        .output()
        .expect("run scripts/interop.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("RESULT: PASS"), "interop {config} {env:?} failed:\n{text}");
}

#[test]
fn strongswan_interop() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED strongswan_interop: needs root for network namespaces");
        return;
    }
    let Some(dir) = interop_dir() else {
        eprintln!("SKIPPED strongswan_interop: no strongswan-pair.sh (set INTEROP_DIR)");
        return;
    };
    let dir = dir.to_string_lossy().into_owned();
    let quick = [("INTEROP_DIR", dir.as_str()), ("IPERF", "no"), ("RUNS", "1"), ("TRANSFER_MB", "4")];
    // strongSwan initiates (and Rampart rekeys the CHILD_SA and the IKE_SA in the middle of
    // a transfer); then Rampart initiates.
    let mut env = quick.to_vec();
    env.push(("REKEY_DURING", "1"));
    run("configs/interop/strongswan-right.json", &env);
    // Rampart initiating: with the same config, on demand (`rampart ctl initiate`); and at
    // start-up with a config that says so.
    let mut env = quick.to_vec();
    env.push(("INITIATE", "no"));
    run("configs/interop/strongswan-right.json", &env);
    run("configs/interop/strongswan-right-initiator.json", &env);
    // Through a masquerading NAT (ports remapped), then strongSwan dies without a word.
    let mut env = quick.to_vec();
    env.extend([("NAT", "1"), ("LIVENESS", "1")]);
    run("configs/interop/strongswan-right-nat.json", &env);
    // Each PSK proposal set of strongswan-pair.sh's matrix, and the other groups and ciphers
    // both sides have (ecp384, modp3072, ChaCha20-Poly1305, AES-CBC with HMAC for IKE),
    // against one Rampart config that lists them all.
    for (ike, esp) in [
        ("aes256gcm16-prfsha384-x25519", "aes256gcm16-x25519"),
        ("aes128gcm16-prfsha256-modp2048", "aes128gcm16-modp2048"),
        ("aes256gcm16-prfsha256-ecp256", "aes256gcm16-ecp256"),
        ("aes256gcm16-prfsha512-ecp384", "chacha20poly1305-ecp384"),
        ("aes256-sha256-modp3072", "aes128gcm16-modp3072"),
        ("aes128-sha512-x25519", "aes128gcm16-x25519"),
    ] {
        let mut env = quick.to_vec();
        env.extend([("IKE_PROPOSALS", ike), ("ESP_PROPOSALS", esp)]);
        run("configs/interop/strongswan-right-matrix.json", &env);
    }
}
