"""Per-message AEAD cost of a full Noise transport message, old backend vs new, plus AES-GCM.

One case = seal one 65519-byte plaintext into a 65535-byte Noise message and open it again
(what one 64 KiB message costs the two ends together), then each direction alone. Cases:

- libsodium through PyNaCl's public bytes API (a copy in, a fresh bytes out);
- **before**: the project's CipherState as it was (libsodium through PyNaCl's cffi handle,
  ``encrypt_into``/``decrypt_into``), replicated here line for line;
- **after**: ``node.noise.CipherState`` (OpenSSL ChaCha20-Poly1305 through ``cryptography``),
  its ``_into`` and bytes calls, and ``NoiseConnection.encrypt_into``/``decrypt_into`` (what
  ``node.transport``'s NoiseStream calls for every message);
- raw OpenSSL ChaCha20-Poly1305 and AES-256-GCM ``encrypt_into``/``decrypt_into`` (the floors);
- a CipherState-shaped AES-256-GCM (Noise's ``AESGCM``: nonce = 4 zero bytes + big-endian
  counter), to size what a negotiated ``Noise_XX_25519_AESGCM_SHA256`` would buy;
- context on the receiving side: SHA-256 of the plaintext (chunk verification hashes every
  byte) and one copy of it.

    nice -n 19 .venv/bin/python benchmarks/micro_aead.py [--quick] [--seconds S] [--repeat R]
        [--json PATH]

Prints a markdown table: this thread's CPU microseconds per message (median and best of R
runs; CPU time, not wall, so that other processes on a loaded machine inflate it less), GB/s
of plaintext from the CPU median, the wall median, and each direction alone (CPU median).
Single thread, in-process; it prints the load average, say how loaded the machine was.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _lib
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt,
)

from benchmarks._util import machine, markdown_table
from node.noise import MAX_PLAINTEXT_LEN, CipherState, KeyPair, NoiseConnection

TAG = 16
MSG = MAX_PLAINTEXT_LEN  # 65519: plaintext of a full 65535-byte Noise message


class SodiumCipherState:
    """The pre-change ``node.noise.CipherState`` hot path (libsodium via PyNaCl's cffi)."""

    _PREFIX = b"\x00\x00\x00\x00"

    def __init__(self, key: bytes) -> None:
        self._k = key
        self._n = 0

    def encrypt_into(self, ad: bytes, plaintext: bytes | memoryview, out: bytearray) -> int:
        k = self._k
        n_in = len(plaintext)
        view = memoryview(out)
        if view.readonly or view.nbytes < n_in + TAG:
            raise ValueError("bad output buffer")
        n = self._n
        clen = _ffi.new("unsigned long long *")
        rc = _lib.crypto_aead_chacha20poly1305_ietf_encrypt(
            _ffi.from_buffer(view, require_writable=True),
            clen,
            _ffi.from_buffer(plaintext),
            n_in,
            ad,
            len(ad),
            _ffi.NULL,
            self._PREFIX + n.to_bytes(8, "little"),
            k,
        )
        if rc != 0:
            raise ValueError("encryption failed")
        self._n = n + 1
        return int(clen[0])

    def decrypt_into(self, ad: bytes, ciphertext: bytes | memoryview, out: bytearray) -> int:
        k = self._k
        n_in = len(ciphertext)
        view = memoryview(out)
        if view.readonly or n_in < TAG or view.nbytes < n_in - TAG:
            raise ValueError("bad buffers")
        n = self._n
        mlen = _ffi.new("unsigned long long *")
        rc = _lib.crypto_aead_chacha20poly1305_ietf_decrypt(
            _ffi.from_buffer(view, require_writable=True),
            mlen,
            _ffi.NULL,
            _ffi.from_buffer(ciphertext),
            n_in,
            ad,
            len(ad),
            self._PREFIX + n.to_bytes(8, "little"),
            k,
        )
        if rc != 0:
            raise ValueError("tag did not verify")
        self._n = n + 1
        return int(mlen[0])

    def set_nonce(self, n: int) -> None:
        self._n = n


class AesGcmCipherState:
    """CipherState's ``_into`` calls with Noise's AESGCM (nonce: 4 zero bytes, n big-endian)."""

    _nonce = struct.Struct(">4xQ").pack

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._n = 0

    def encrypt_into(self, ad: bytes, plaintext: bytes | memoryview, out: bytearray) -> int:
        n_in = len(plaintext)
        view = memoryview(out)
        if view.readonly or view.nbytes < n_in + TAG:
            raise ValueError("bad output buffer")
        n = self._n
        written: int = self._aead.encrypt_into(self._nonce(n), plaintext, ad, view[: n_in + TAG])
        self._n = n + 1
        return written

    def decrypt_into(self, ad: bytes, ciphertext: bytes | memoryview, out: bytearray) -> int:
        n_in = len(ciphertext)
        view = memoryview(out)
        if view.readonly or n_in < TAG or view.nbytes < n_in - TAG:
            raise ValueError("bad buffers")
        n = self._n
        written: int = self._aead.decrypt_into(self._nonce(n), ciphertext, ad, view[: n_in - TAG])
        self._n = n + 1
        return written

    def set_nonce(self, n: int) -> None:
        self._n = n


Step = Callable[[], object]


def _connected() -> tuple[NoiseConnection, NoiseConnection]:
    a = NoiseConnection.initiator(KeyPair.generate())
    b = NoiseConnection.responder(KeyPair.generate())
    b.read_handshake(a.write_handshake())
    a.read_handshake(b.write_handshake())
    b.read_handshake(a.write_handshake())
    return a, b


def _cipher_steps(make: Callable[[bytes], object]) -> tuple[Step, Step, Step]:
    """(round trip, encrypt only, decrypt only) for a CipherState-shaped class."""
    key = os.urandom(32)
    plaintext = os.urandom(MSG)
    send, recv, dec = make(key), make(key), make(key)
    sealed, opened = bytearray(MSG + TAG), bytearray(MSG)
    ct = bytearray(MSG + TAG)
    make(key).encrypt_into(b"", plaintext, ct)  # type: ignore[attr-defined]
    enc_into = send.encrypt_into  # type: ignore[attr-defined]
    dec_into = recv.decrypt_into  # type: ignore[attr-defined]
    one_dec = dec.decrypt_into  # type: ignore[attr-defined]
    rewind = dec.set_nonce  # type: ignore[attr-defined]

    def both() -> None:
        dec_into(b"", sealed[: enc_into(b"", plaintext, sealed)], opened)

    def enc() -> None:
        enc_into(b"", plaintext, sealed)

    def dec_only() -> None:
        rewind(0)
        one_dec(b"", ct, opened)

    return both, enc, dec_only


def _cases() -> list[tuple[str, Step, Step | None, Step | None]]:
    key, nonce = os.urandom(32), bytes(12)
    plaintext = os.urandom(MSG)
    cases: list[tuple[str, Step, Step | None, Step | None]] = []

    sealed_sodium = crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, None, nonce, key)

    def sodium_both() -> None:
        sealed = crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, None, nonce, key)
        crypto_aead_chacha20poly1305_ietf_decrypt(sealed, None, nonce, key)

    cases.append(
        (
            "libsodium ChaChaPoly, PyNaCl bytes API",
            sodium_both,
            lambda: crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, None, nonce, key),
            lambda: crypto_aead_chacha20poly1305_ietf_decrypt(sealed_sodium, None, nonce, key),
        )
    )
    cases.append(("before: CipherState on libsodium (_into)", *_cipher_steps(SodiumCipherState)))
    cases.append(("after: CipherState on OpenSSL ChaChaPoly (_into)", *_cipher_steps(CipherState)))

    a, b = _connected()
    sealed, opened = bytearray(MSG + TAG), bytearray(MSG)

    def conn_both() -> None:
        b.decrypt_into(sealed[: a.encrypt_into(plaintext, sealed)], opened)

    def conn_bytes() -> None:
        b.decrypt(a.encrypt(plaintext))

    cases.append(("after: NoiseConnection encrypt_into+decrypt_into", conn_both, None, None))
    cases.append(("after: NoiseConnection encrypt+decrypt (bytes)", conn_bytes, None, None))

    for name, cls in (("ChaChaPoly", ChaCha20Poly1305), ("AES-256-GCM", AESGCM)):
        aead = cls(key)
        out, back = bytearray(MSG + TAG), bytearray(MSG)
        fixed = aead.encrypt(nonce, plaintext, b"")

        def raw_both(aead: object = aead, out: bytearray = out, back: bytearray = back) -> None:
            aead.encrypt_into(nonce, plaintext, b"", out)  # type: ignore[attr-defined]
            aead.decrypt_into(nonce, out, b"", back)  # type: ignore[attr-defined]

        def raw_enc(aead: object = aead, out: bytearray = out) -> None:
            aead.encrypt_into(nonce, plaintext, b"", out)  # type: ignore[attr-defined]

        def raw_dec(aead: object = aead, back: bytearray = back, fixed: bytes = fixed) -> None:
            aead.decrypt_into(nonce, fixed, b"", back)  # type: ignore[attr-defined]

        cases.append((f"raw OpenSSL {name} (_into)", raw_both, raw_enc, raw_dec))

    cases.append(("AESGCM CipherState prototype (_into)", *_cipher_steps(AesGcmCipherState)))

    view = memoryview(plaintext)
    cases.append(("context: SHA-256 of the plaintext", lambda: hashlib.sha256(view), None, None))
    cases.append(("context: one copy of the plaintext", lambda: bytes(view), None, None))
    return cases


def _per_message_us(step: Step, seconds: float) -> tuple[float, float]:
    """(CPU, wall) microseconds per call; the run lasts ``seconds`` of this thread's CPU."""
    count, cpu0, wall0 = 0, time.thread_time(), time.perf_counter()
    while (cpu := time.thread_time() - cpu0) < seconds:
        for _ in range(32):
            step()
        count += 32
    return cpu / count * 1e6, (time.perf_counter() - wall0) / count * 1e6


def _measure(step: Step | None, seconds: float, repeat: int) -> tuple[float, float, float] | None:
    """(median CPU, best CPU, median wall) microseconds per call over ``repeat`` runs."""
    if step is None:
        return None
    runs = [_per_message_us(step, seconds) for _ in range(repeat)]
    cpu = [r[0] for r in runs]
    return statistics.median(cpu), min(cpu), statistics.median(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.15 s per run, 3 runs")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    seconds, repeat = (0.15, 3) if args.quick else (args.seconds, args.repeat)

    info = machine()
    info["load_avg_before"] = os.getloadavg()
    rows, results = [], []
    for name, both, enc, dec in _cases():
        rt, e, d = (_measure(s, seconds, repeat) for s in (both, enc, dec))
        assert rt is not None
        gbs = MSG / rt[0] / 1e3
        rows.append(
            [
                name,
                f"{rt[0]:.1f}",
                f"{rt[1]:.1f}",
                f"{gbs:.2f}",
                f"{rt[2]:.1f}",
                "" if e is None else f"{e[0]:.1f}",
                "" if d is None else f"{d[0]:.1f}",
            ]
        )
        results.append({"case": name, "round_trip_us": rt, "encrypt_us": e, "decrypt_us": d})
    info["load_avg_after"] = os.getloadavg()
    print(
        f"{MSG}-byte plaintexts (65535-byte Noise messages); {seconds} s x {repeat} runs per "
        f"case; load average before {info['load_avg_before'][0]:.2f}, "
        f"after {info['load_avg_after'][0]:.2f} on {info['cpus']} CPUs\n"
    )
    print(
        markdown_table(
            [
                "case",
                "seal+open CPU us/msg (median)",
                "best",
                "GB/s (seal+open)",
                "wall us",
                "seal CPU us",
                "open CPU us",
            ],
            rows,
        )
    )
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
