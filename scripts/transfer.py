#!/usr/bin/env python3
"""A checksummed TCP transfer between two network namespaces: the server in one, the client
in the other. Exit status 0 only if every byte arrived and the SHA-256 digests agree."""
import argparse, hashlib, os, subprocess, sys

SERVER = r'''
import socket, hashlib, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest(), flush=True)
'''

CLIENT = r'''
import socket, hashlib, sys, os
n = int(sys.argv[3]) << 20
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
h = hashlib.sha256(); rnd = os.urandom(1 << 20); sent = 0
while sent < n:
    s.sendall(rnd); h.update(rnd); sent += len(rnd)
s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
print(sent, h.hexdigest(), flush=True)
'''

def main():
    a = argparse.ArgumentParser()
    a.add_argument("--server-ns", required=True)
    a.add_argument("--client-ns", required=True)
    a.add_argument("--addr", required=True)
    a.add_argument("--port", type=int, default=9000)
    a.add_argument("--mb", type=int, default=50)
    a.add_argument("--timeout", type=int, default=300)
    o = a.parse_args()
    srv = subprocess.Popen(["ip", "netns", "exec", o.server_ns, sys.executable, "-c", SERVER, o.addr, str(o.port)],
                           stdout=subprocess.PIPE, text=True)
    assert srv.stdout.readline().strip() == "ready"
    cli = subprocess.run(["ip", "netns", "exec", o.client_ns, sys.executable, "-c", CLIENT, o.addr, str(o.port), str(o.mb)],
                         capture_output=True, text=True, timeout=o.timeout)
    got = srv.communicate(timeout=o.timeout)[0].split()
    sent = cli.stdout.split()
    print(f"sent {sent} received {got}")
    if cli.returncode != 0 or got != sent or int(got[0]) != o.mb << 20:
        print("transfer FAILED", cli.stderr, file=sys.stderr)
        sys.exit(1)
    print(f"transfer ok: {o.mb} MB, sha256 {got[1]}")

if __name__ == "__main__":
    main()
