#!/usr/bin/env python3
"""Re-checks the ESP vector files here with pyca/cryptography, an implementation
independent of Rampart's (ring): guards against transcription errors in the files."""
import pathlib
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305


def cases(path):
    case = {}
    for line in path.read_text().splitlines():
        if line.startswith('#'):
            continue
        if not line.strip():
            if case:
                yield case
            case = {}
            continue
        k, v = (s.strip() for s in line.split('=', 1))
        case[k] = v
    if case:
        yield case


def main():
    here = pathlib.Path(__file__).parent
    bad = 0
    for name in ('esp_gcm_draft_mcgrew.txt', 'esp_chacha_rfc7634.txt'):
        for c in cases(here / name):
            key, salt, iv = (bytes.fromhex(c[f]) for f in ('key', 'salt', 'iv'))
            spi, seq, esn = int(c['spi'], 16), int(c['seq'], 16), c['esn'] == '1'
            aad = struct.pack('!IQ', spi, seq) if esn else struct.pack('!II', spi, seq)
            algo = ChaCha20Poly1305(key) if c['alg'] == 'chacha20-poly1305' else AESGCM(key)
            out = algo.encrypt(salt + iv, bytes.fromhex(c['plaintext']), aad)
            ok = out.hex() == c['ciphertext']
            bad += not ok
            print(f"{name} case {c['case']}: {'ok' if ok else 'MISMATCH'}")
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
