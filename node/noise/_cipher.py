"""CipherState (Noise spec section 5.1): ChaCha20-Poly1305 IETF or AES-256-GCM, on OpenSSL.

This is the transport hot path: one call per 64 KiB message. The AEAD is
``cryptography``'s :class:`~cryptography.hazmat.primitives.ciphers.aead.ChaCha20Poly1305`
(OpenSSL's EVP ChaCha20-Poly1305: about 2.4x libsodium's portable code on the machines
measured, and it releases the GIL). The key object is built once per key (at
``initialize_key`` and ``rekey``), never per message; the per-message Python work is a
nonce packed with ``struct``, one OpenSSL call and one counter update.

The ChaChaPoly nonce is 4 zero bytes followed by the 64-bit counter in little-endian order: the
same bytes as the libsodium calls this replaced, so the wire format is unchanged (the vendored
Noise vectors and a cross-check against libsodium in tests/noise pin it). The AESGCM nonce
(Noise spec 12.4) is 4 zero bytes followed by the counter in **big**-endian order; AESGCM is
negotiated per connection (node/noise/_connection.py, docs/protocol.md section 2) and pinned by
the cacophony/snow ``25519_AESGCM_SHA256`` vectors.

Nonce 2**64 - 1 is reserved (it keys :meth:`CipherState.rekey`); reaching it raises
:class:`NonceExhausted`. A failed decryption leaves the nonce unchanged, as the spec says; the
callers above treat it as fatal anyway.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag as _InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM as _AESGCM
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as _ChaCha20Poly1305

from ._crypto import TAGLEN
from ._errors import DecryptError, LocalProtocolError, NonceExhausted

MAX_NONCE = 2**64 - 1
"""The reserved nonce; the last usable one is ``MAX_NONCE - 1``."""

_nonce = struct.Struct("<4xQ").pack
"""The 12-byte ChaChaPoly nonce of counter ``n``: 4 zero bytes, then ``n`` little-endian."""
_nonce_be = struct.Struct(">4xQ").pack
"""The 12-byte AESGCM nonce of counter ``n``: 4 zero bytes, then ``n`` big-endian."""
_ZEROS32 = bytes(32)

CHACHAPOLY = "ChaChaPoly"
AESGCM = "AESGCM"
_SUITES: dict[str, tuple[Any, Callable[[int], bytes]]] = {
    CHACHAPOLY: (_ChaCha20Poly1305, _nonce),
    AESGCM: (_AESGCM, _nonce_be),
}
CIPHERS = tuple(_SUITES)
"""The Noise cipher names a CipherState implements."""

Buffer = bytes | bytearray | memoryview
"""What the encrypt/decrypt methods accept."""


def _writable(out: Buffer) -> memoryview:
    """``out`` as a writable flat byte view, or :class:`LocalProtocolError`."""
    view = memoryview(out)
    if view.readonly:
        raise LocalProtocolError("output buffer is read-only")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class CipherState:
    """A key ``k`` (or none yet) and a 64-bit nonce counter ``n``.

    Without a key, encryption and decryption return their input unchanged (the spec's rule for
    handshake messages sent before any DH).
    """

    __slots__ = ("_aead", "_cls", "_n", "_nonce", "cipher")

    def __init__(self, key: bytes | None = None, cipher: str = CHACHAPOLY) -> None:
        if cipher not in _SUITES:
            raise LocalProtocolError(f"unknown cipher {cipher!r}")
        self.cipher = cipher
        self._cls, self._nonce = _SUITES[cipher]
        self._aead: Any = None
        self._n = 0
        if key is not None:
            self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        """InitializeKey(key): set ``k`` (32 bytes, or None) and reset the nonce to 0."""
        if key is not None and len(key) != 32:
            raise LocalProtocolError(f"{self.cipher} key must be 32 bytes")
        self._aead = None if key is None else self._cls(bytes(key))
        self._n = 0

    def has_key(self) -> bool:
        """HasKey(): whether ``k`` is set."""
        return self._aead is not None

    @property
    def nonce(self) -> int:
        """The counter the next message will use."""
        return self._n

    def set_nonce(self, nonce: int) -> None:
        """SetNonce(n). Also the test hook for nonce exhaustion; never rewind a live session."""
        if not 0 <= nonce <= MAX_NONCE:
            raise LocalProtocolError("nonce must fit in 64 bits")
        self._n = nonce

    def encrypt_with_ad(self, ad: bytes, plaintext: Buffer) -> bytes:
        """EncryptWithAd(ad, plaintext): ciphertext plus 16-byte tag, then ``n += 1``."""
        aead = self._aead
        if aead is None:
            return bytes(plaintext)
        n = self._n
        if n >= MAX_NONCE:
            raise NonceExhausted("send nonce exhausted: open a new session")
        ciphertext = aead.encrypt(self._nonce(n), plaintext, ad)
        self._n = n + 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: Buffer) -> bytes:
        """DecryptWithAd(ad, ciphertext): the plaintext, then ``n += 1``.

        Raises DecryptError if the tag does not verify (``n`` is then left unchanged).
        """
        aead = self._aead
        if aead is None:
            return bytes(ciphertext)
        n = self._n
        if n >= MAX_NONCE:
            raise NonceExhausted("receive nonce exhausted: open a new session")
        if len(ciphertext) < TAGLEN:
            raise DecryptError("ciphertext shorter than the authentication tag")
        try:
            plaintext = aead.decrypt(self._nonce(n), ciphertext, ad)
        except _InvalidTag:
            raise DecryptError("authentication tag did not verify") from None
        self._n = n + 1
        return plaintext

    def encrypt_into(self, ad: bytes, plaintext: Buffer, out: Buffer) -> int:
        """EncryptWithAd into ``out`` (writable, >= len(plaintext) + 16); return the length.

        Same nonce rules as :meth:`encrypt_with_ad`, without the input copy and the output
        allocation: OpenSSL reads ``plaintext`` and writes the first ``len(plaintext) + 16``
        bytes of ``out`` in place (with the GIL released). ``out`` must not overlap
        ``plaintext`` unless they start at the same address.
        """
        aead = self._aead
        n_in = len(plaintext)
        view = _writable(out)
        if view.nbytes < n_in + TAGLEN:
            raise LocalProtocolError("output buffer too small for ciphertext and tag")
        if aead is None:
            view[:n_in] = plaintext
            return n_in
        n = self._n
        if n >= MAX_NONCE:
            raise NonceExhausted("send nonce exhausted: open a new session")
        written: int = aead.encrypt_into(self._nonce(n), plaintext, ad, view[: n_in + TAGLEN])
        self._n = n + 1
        return written

    def decrypt_into(self, ad: bytes, ciphertext: Buffer, out: Buffer) -> int:
        """DecryptWithAd into ``out`` (writable, >= len(ciphertext) - 16); return the length.

        Raises DecryptError if the tag does not verify (``n`` is then left unchanged; ``out``
        may hold garbage and must not be used). Same overlap rule as :meth:`encrypt_into`.
        """
        aead = self._aead
        n_in = len(ciphertext)
        view = _writable(out)
        if aead is None:
            if view.nbytes < n_in:
                raise LocalProtocolError("output buffer too small for the plaintext")
            view[:n_in] = ciphertext
            return n_in
        n = self._n
        if n >= MAX_NONCE:
            raise NonceExhausted("receive nonce exhausted: open a new session")
        if n_in < TAGLEN:
            raise DecryptError("ciphertext shorter than the authentication tag")
        if view.nbytes < n_in - TAGLEN:
            raise LocalProtocolError("output buffer too small for the plaintext")
        try:
            written: int = aead.decrypt_into(self._nonce(n), ciphertext, ad, view[: n_in - TAGLEN])
        except _InvalidTag:
            raise DecryptError("authentication tag did not verify") from None
        self._n = n + 1
        return written

    def encrypt_many_into(
        self, ad: bytes, plaintexts: Sequence[Buffer], out: Buffer, gap: int = 0
    ) -> int:
        """:meth:`encrypt_into` of each plaintext in turn (consecutive nonces), the
        ciphertexts back to back in ``out``, each after ``gap`` bytes left for the caller (a
        transport writes its length prefix there); returns the bytes laid out. ``out`` is
        writable and holds the plaintexts + (``gap`` + 16) bytes each. One call per batch
        instead of one per message."""
        aead = self._aead
        view = _writable(out)
        if view.nbytes < sum(map(len, plaintexts)) + (gap + TAGLEN) * len(plaintexts):
            raise LocalProtocolError("output buffer too small for the ciphertexts")
        if aead is None or self._n + len(plaintexts) > MAX_NONCE:
            off = 0  # no key (copied through), or at the very end of the nonce space
            for p in plaintexts:
                off += gap + self.encrypt_into(ad, p, view[off + gap :])
            return off
        encrypt_into = aead.encrypt_into
        nonce = self._nonce
        n = self._n
        off = 0
        for p in plaintexts:
            start = off + gap
            off = start + len(p) + TAGLEN
            encrypt_into(nonce(n), p, ad, view[start:off])
            n += 1
        self._n = n
        return off

    def decrypt_many_into(self, ad: bytes, ciphertexts: Sequence[Buffer], out: Buffer) -> int:
        """:meth:`decrypt_into` of each ciphertext in turn (consecutive nonces), the
        plaintexts laid out back to back in ``out`` (writable, >= the sum of their lengths);
        returns the bytes written. One call per received batch instead of one per message.

        On a tag that does not verify, :class:`DecryptError` is raised with ``n`` left at
        that message (the ones before it were decrypted and counted; ``out`` past them holds
        garbage). Same overlap rule as :meth:`encrypt_into`."""
        aead = self._aead
        view = _writable(out)
        need = 0
        for c in ciphertexts:
            if len(c) < TAGLEN:
                raise DecryptError("ciphertext shorter than the authentication tag")
            need += len(c) - TAGLEN
        if view.nbytes < need:
            raise LocalProtocolError("output buffer too small for the plaintexts")
        if aead is None:
            off = 0
            for c in ciphertexts:
                view[off : off + len(c)] = c
                off += len(c)
            return off
        n = self._n
        if n + len(ciphertexts) > MAX_NONCE:  # at the very end of the nonce space: one by one
            off = 0
            for c in ciphertexts:
                off += self.decrypt_into(ad, c, view[off:])
            return off
        decrypt_into = aead.decrypt_into
        nonce = self._nonce
        off = 0
        try:
            for c in ciphertexts:
                k = len(c) - TAGLEN
                decrypt_into(nonce(n), c, ad, view[off : off + k])
                n += 1
                off += k
        except _InvalidTag:
            raise DecryptError("authentication tag did not verify") from None
        finally:
            self._n = n
        return off

    def rekey(self) -> None:
        """Rekey(): ``k = first 32 bytes of ENCRYPT(k, 2**64 - 1, "", zeros)``; ``n`` is kept."""
        aead = self._aead
        if aead is None:
            raise LocalProtocolError("cannot rekey a CipherState without a key")
        self._aead = self._cls(aead.encrypt(self._nonce(MAX_NONCE), _ZEROS32, b"")[:32])
