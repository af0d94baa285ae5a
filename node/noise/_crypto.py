"""The ``25519_ChaChaPoly_SHA256`` suite: DH on PyNaCl, HASH and HKDF on hashlib, constants.

The AEAD lives in ``_cipher`` (OpenSSL through ``cryptography``). Only public
``nacl.bindings`` functions are used here. Lengths are checked here because
``crypto_scalarmult`` hands its arguments to libsodium without checking them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field

from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base
from nacl.exceptions import RuntimeError as _NaclRuntimeError

from ._errors import LocalProtocolError, RemoteProtocolError

DH_NAME = "25519"
CIPHER_NAME = "ChaChaPoly"
HASH_NAME = "SHA256"

DHLEN = 32
"""Length of an X25519 public key and of a DH output."""
HASHLEN = 32
"""Length of a SHA-256 digest."""
TAGLEN = 16
"""Length of a ChaCha20-Poly1305 authentication tag."""
MAX_MESSAGE_LEN = 65535
"""Largest Noise message, handshake or transport (the spec's limit)."""
MAX_PLAINTEXT_LEN = MAX_MESSAGE_LEN - TAGLEN
"""Largest plaintext of one transport message (65519 bytes)."""


@dataclass(frozen=True)
class KeyPair:
    """An X25519 key pair. ``private`` is kept out of ``repr``."""

    private: bytes = field(repr=False)
    public: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh key pair from the OS random source."""
        return cls.from_private(os.urandom(DHLEN))

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        """The key pair of a 32-byte private key (clamped by libsodium when used)."""
        private = bytes(private)
        if len(private) != DHLEN:
            raise LocalProtocolError(f"X25519 private key must be {DHLEN} bytes")
        return cls(private=private, public=crypto_scalarmult_base(private))


def dh(key_pair: KeyPair, public: bytes) -> bytes:
    """X25519(key_pair.private, public).

    Raises RemoteProtocolError when ``public`` is a low-order point (the shared secret would
    be all zeros): Noise allows rejecting such keys and we do.
    """
    if len(public) != DHLEN:
        raise RemoteProtocolError(f"X25519 public key must be {DHLEN} bytes")
    try:
        return crypto_scalarmult(key_pair.private, public)
    except _NaclRuntimeError:
        raise RemoteProtocolError("remote X25519 public key has low order") from None


def hash_(data: bytes) -> bytes:
    """HASH(data) = SHA-256."""
    return hashlib.sha256(data).digest()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """HKDF(chaining_key, ikm, 2) as the Noise spec defines it (section 4.3)."""
    temp = _hmac(chaining_key, ikm)
    out1 = _hmac(temp, b"\x01")
    return out1, _hmac(temp, out1 + b"\x02")


def hkdf3(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes, bytes]:
    """HKDF(chaining_key, ikm, 3) as the Noise spec defines it (section 4.3)."""
    temp = _hmac(chaining_key, ikm)
    out1 = _hmac(temp, b"\x01")
    out2 = _hmac(temp, out1 + b"\x02")
    return out1, out2, _hmac(temp, out2 + b"\x03")
