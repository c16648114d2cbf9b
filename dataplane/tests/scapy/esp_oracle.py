#!/usr/bin/env python3
"""An independent ESP implementation for Rampart's tests: scapy's SecurityAssociation
(over pyca/cryptography) decrypts what Rampart encrypted and encrypts what Rampart must
decrypt.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.
Request: {"op": "decrypt" | "encrypt", "alg": "AES-GCM" | "CHACHA20-POLY1305",
          "key": hex(key || salt), "spi": int, "seq": int (full 64-bit),
          "esn": bool, "tunnel": [src, dst] | null, "encap": [sport, dport] | null,
          "packet": hex (outer packet for decrypt, inner packet for encrypt)}
Reply:   {"ok": true, "packet": hex, "trailer_ok": bool} or {"ok": false, "error": str}
"decrypt" also re-opens the ESP payload with cryptography directly and checks the
trailer (padding 1, 2, 3, ..., 4-byte alignment): "trailer_ok".
"""
import json
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation


def ip_from(raw):
    return IPv6(raw) if raw[0] >> 4 == 6 else IP(raw)


def make_sa(req):
    tunnel = None
    if req["tunnel"]:
        src, dst = req["tunnel"]
        tunnel = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    nat_t = UDP(sport=req["encap"][0], dport=req["encap"][1]) if req["encap"] else None
    seq = req["seq"]
    return SecurityAssociation(
        ESP, spi=req["spi"], seq_num=seq & 0xFFFFFFFF,
        crypt_algo=req["alg"], crypt_key=bytes.fromhex(req["key"]),
        tunnel_header=tunnel, nat_t_header=nat_t,
        esn_en=req["esn"], esn=(seq >> 32) if req["esn"] else 0)


def trailer_ok(req, outer):
    """Opens the ESP payload with cryptography directly and checks the RFC 4303 trailer."""
    esp = bytes(outer[ESP])
    spi, seq_low = struct.unpack("!II", esp[:8])
    iv, body = esp[8:16], esp[16:]
    if len(body) % 4 != 0 or (len(esp) - 16) % 4 != 0:
        return False
    key = bytes.fromhex(req["key"])
    aead = ChaCha20Poly1305(key[:-4]) if req["alg"] == "CHACHA20-POLY1305" else AESGCM(key[:-4])
    seq = req["seq"]
    aad = struct.pack("!III", spi, seq >> 32, seq_low) if req["esn"] else struct.pack("!II", spi, seq_low)
    pt = aead.decrypt(key[-4:] + iv, body, aad)
    pad = pt[-2]
    return pad + 2 <= len(pt) and list(pt[len(pt) - 2 - pad:-2]) == list(range(1, pad + 1))


def handle(req):
    sa = make_sa(req)
    raw = bytes.fromhex(req["packet"])
    if req["op"] == "decrypt":
        outer = ip_from(raw)
        if outer.haslayer(ESP) is False:
            return {"ok": False, "error": "no ESP layer: " + outer.summary()}
        ok = trailer_ok(req, outer)
        inner = sa.decrypt(outer)
        return {"ok": True, "packet": bytes(inner).hex(), "trailer_ok": ok}
    if req["op"] == "encrypt":
        out = sa.encrypt(ip_from(raw))
        return {"ok": True, "packet": bytes(out).hex()}
    return {"ok": False, "error": "unknown op"}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = handle(json.loads(line))
        except Exception as e:  # the test wants the reason, not a dead pipe
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
