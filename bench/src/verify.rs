//! The independent check: Python's `cryptography` AESGCM opens ESP frames with the tunnel's
//! key and compares the plaintext with what went in (or came out), trailer included.

use std::io::Write;
use std::process::{Command, Stdio};

/// One case: an IPv4 ESP packet (from its outer IP header), the key || salt, and the inner
/// IP packet it must carry; `ttl_delta` is subtracted from the decrypted inner TTL (and the
/// checksum redone) before comparing, for a gateway that forwarded it afterwards.
pub struct Case {
    pub esp: Vec<u8>,
    pub key: Vec<u8>,
    pub expect: Vec<u8>,
    pub ttl_delta: u8,
}

const SCRIPT: &str = r#"
import json, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
def csum(h):
    s = sum(struct.unpack("!10H", h))
    while s > 0xffff: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
ok = 0
for n, line in enumerate(sys.stdin):
    c = json.loads(line)
    pkt, key, expect = bytes.fromhex(c["esp"]), bytes.fromhex(c["key"]), bytes.fromhex(c["expect"])
    ihl = (pkt[0] & 15) * 4
    assert pkt[9] == 50, f"case {n}: not ESP"
    esp = pkt[ihl:struct.unpack("!H", pkt[2:4])[0]]
    spi, seq = struct.unpack("!II", esp[:8])
    pt = AESGCM(key[:16]).decrypt(key[16:20] + esp[8:16], esp[16:], esp[:8])
    padlen, nh = pt[-2], pt[-1]
    assert nh == 4, f"case {n}: next header {nh}"
    assert list(pt[-2 - padlen:-2]) == list(range(1, padlen + 1)), f"case {n}: padding"
    inner = bytearray(pt[:-2 - padlen])
    if c["ttl_delta"]:
        inner[8] -= c["ttl_delta"]; inner[10:12] = b"\0\0"
        inner[10:12] = struct.pack("!H", csum(bytes(inner[:20])))
    assert bytes(inner) == expect, f"case {n} (spi {spi:#x} seq {seq}): inner packet differs"
    ok += 1
print(ok)
"#;

/// Runs the cases through python3; Ok(number verified) only if every one passes.
pub fn run(cases: &[Case]) -> Result<usize, String> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut input = String::new();
    for c in cases {
        input.push_str(&format!(
            "{{\"esp\": \"{}\", \"key\": \"{}\", \"expect\": \"{}\", \"ttl_delta\": {}}}\n",
            hex(&c.esp),
            hex(&c.key),
            hex(&c.expect),
            c.ttl_delta
        ));
    }
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    child.stdin.take().unwrap().write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("python3 failed").to_string());
    }
    let n: usize = String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| "python3: no count")?;
    if n != cases.len() {
        return Err(format!("{n} of {} verified", cases.len()));
    }
    Ok(n)
}
