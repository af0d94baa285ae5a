#!/usr/bin/env python3
# ruff: noqa
# fmt: off
# (vendored: see README.md; kept as upstream wrote it, not linted or formatted here)
"""Single-core crypto/hash throughput on 64 KiB frames (run under `taskset -c 0`).
usage: /tmp/anchors/venv/bin/python micro.py [--seconds 2]"""
import argparse, hashlib, json, os, time
from nacl import bindings as b

ap = argparse.ArgumentParser(); ap.add_argument("--seconds", type=float, default=2.0)
a = ap.parse_args()
FRAME = 64 * 1024
msg = os.urandom(FRAME)


def rate(fn, frame=FRAME):
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(64):
            fn()
        n += 64
        dt = time.perf_counter() - t0
        if dt >= a.seconds:
            return round(n * frame / 1e6 / dt, 1)  # MB/s (10^6)


res = {}
for alg in ("sha256", "sha1", "blake2b"):
    res[f"hashlib.{alg} update(64KiB)"] = rate(lambda h=hashlib.new(alg): h.update(msg))
big = os.urandom(1 << 20)
res["hashlib.sha256 update(1MiB)"] = rate(lambda h=hashlib.sha256(): h.update(big), 1 << 20)
key = os.urandom(32); aad = b""
n12 = os.urandom(12); n24 = os.urandom(24)
ct12 = b.crypto_aead_chacha20poly1305_ietf_encrypt(msg, aad, n12, key)
ct24 = b.crypto_aead_xchacha20poly1305_ietf_encrypt(msg, aad, n24, key)
res["pynacl chacha20poly1305_ietf encrypt(64KiB)"] = rate(lambda: b.crypto_aead_chacha20poly1305_ietf_encrypt(msg, aad, n12, key))
res["pynacl chacha20poly1305_ietf decrypt(64KiB)"] = rate(lambda: b.crypto_aead_chacha20poly1305_ietf_decrypt(ct12, aad, n12, key))
res["pynacl xchacha20poly1305_ietf encrypt(64KiB)"] = rate(lambda: b.crypto_aead_xchacha20poly1305_ietf_encrypt(msg, aad, n24, key))
res["pynacl xchacha20poly1305_ietf decrypt(64KiB)"] = rate(lambda: b.crypto_aead_xchacha20poly1305_ietf_decrypt(ct24, aad, n24, key))
import nacl, sys
res["_versions"] = {"python": sys.version.split()[0], "pynacl": nacl.__version__, "libsodium": b.sodium_version_string() if hasattr(b, "sodium_version_string") else "bundled"}
print(json.dumps(res, indent=1))
