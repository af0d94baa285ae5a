"""Transport throughput of NoiseConnection (not a unit test; pytest does not collect it).

    .venv/bin/python -m tests.noise.bench_throughput [seconds]

Encrypts on one side and decrypts on the other, 65519-byte plaintexts (a full 65535-byte
Noise message), from bytes and from a memoryview slice of a larger buffer; prints MB/s of
plaintext for encrypt+decrypt together and for each alone, next to the same AEAD calls made
directly through ``cryptography``'s ChaCha20Poly1305 (the floor our per-message overhead sits
on). benchmarks/micro_aead.py compares backends (libsodium before, OpenSSL now, AES-GCM).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from node.noise import MAX_PLAINTEXT_LEN, KeyPair, NoiseConnection


def _connected() -> tuple[NoiseConnection, NoiseConnection]:
    a = NoiseConnection.initiator(KeyPair.generate())
    b = NoiseConnection.responder(KeyPair.generate())
    b.read_handshake(a.write_handshake())
    a.read_handshake(b.write_handshake())
    b.read_handshake(a.write_handshake())
    return a, b


def _rate(step: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(64):
            step()
        count += 64
    return count * MAX_PLAINTEXT_LEN / elapsed / 1e6


def main(seconds: float) -> None:
    a, b = _connected()
    plaintext = os.urandom(MAX_PLAINTEXT_LEN)
    buffer = memoryview(os.urandom(4 * MAX_PLAINTEXT_LEN))
    view = buffer[MAX_PLAINTEXT_LEN : 2 * MAX_PLAINTEXT_LEN]
    c, d = _connected()
    ciphertext = c.encrypt(plaintext)  # nonce 0; decrypt_only rewinds d to it each time

    def round_trip() -> None:
        b.decrypt(a.encrypt(plaintext))

    def round_trip_view() -> None:
        b.decrypt(a.encrypt(view))

    def encrypt_only() -> None:
        a.encrypt(plaintext)

    def decrypt_only() -> None:
        d._set_nonces_for_testing(recv=0)
        d.decrypt(ciphertext)

    aead, nonce = ChaCha20Poly1305(os.urandom(32)), bytes(12)

    def raw_openssl() -> None:
        aead.decrypt(nonce, aead.encrypt(nonce, plaintext, None), None)

    for name, step in (
        ("baseline: raw cryptography", raw_openssl),
        ("encrypt+decrypt (bytes)", round_trip),
        ("encrypt+decrypt (memoryview)", round_trip_view),
        ("encrypt only", encrypt_only),
        ("decrypt only", decrypt_only),
    ):
        print(f"{name:30} {_rate(step, seconds):8.0f} MB/s  ({MAX_PLAINTEXT_LEN}-byte plaintexts)")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
