"""CipherState (Noise spec section 5.1) with ChaCha20-Poly1305 IETF.

This is the transport hot path: one call per 64 KiB message, so the per-message Python work
is kept to a nonce built with ``int.to_bytes``, one libsodium call, and one counter update.
The Noise nonce is 4 zero bytes followed by the 64-bit counter in little-endian order.

Nonce 2**64 - 1 is reserved (it keys :meth:`CipherState.rekey`); reaching it raises
:class:`NonceExhausted`. A failed decryption leaves the nonce unchanged, as the spec says; the
callers above treat it as fatal anyway.
"""

from __future__ import annotations

from nacl._sodium import ffi as _ffi  # PyNaCl's own cffi handle (see encrypt_into)
from nacl._sodium import lib as _lib
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt as _aead_decrypt,
)
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_encrypt as _aead_encrypt,
)
from nacl.exceptions import CryptoError as _NaclCryptoError

from ._crypto import TAGLEN
from ._errors import DecryptError, LocalProtocolError, NonceExhausted

MAX_NONCE = 2**64 - 1
"""The reserved nonce; the last usable one is ``MAX_NONCE - 1``."""

_NONCE_PREFIX = b"\x00\x00\x00\x00"
_REKEY_NONCE = _NONCE_PREFIX + MAX_NONCE.to_bytes(8, "little")
_ZEROS32 = bytes(32)

Buffer = bytes | bytearray | memoryview
"""What the encrypt/decrypt methods accept."""


class CipherState:
    """A key ``k`` (or none yet) and a 64-bit nonce counter ``n``.

    Without a key, encryption and decryption return their input unchanged (the spec's rule for
    handshake messages sent before any DH).
    """

    __slots__ = ("_k", "_n")

    def __init__(self, key: bytes | None = None) -> None:
        self._k: bytes | None = None
        self._n = 0
        if key is not None:
            self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        """InitializeKey(key): set ``k`` (32 bytes, or None) and reset the nonce to 0."""
        if key is not None and len(key) != 32:
            raise LocalProtocolError("ChaChaPoly key must be 32 bytes")
        self._k = None if key is None else bytes(key)
        self._n = 0

    def has_key(self) -> bool:
        """HasKey(): whether ``k`` is set."""
        return self._k is not None

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
        k = self._k
        if k is None:
            return bytes(plaintext)
        n = self._n
        if n >= MAX_NONCE:
            raise NonceExhausted("send nonce exhausted: open a new session")
        if type(plaintext) is not bytes:
            plaintext = bytes(plaintext)
        ciphertext = _aead_encrypt(plaintext, ad, _NONCE_PREFIX + n.to_bytes(8, "little"), k)
        self._n = n + 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: Buffer) -> bytes:
        """DecryptWithAd(ad, ciphertext): the plaintext, then ``n += 1``.

        Raises DecryptError if the tag does not verify (``n`` is then left unchanged).
        """
        k = self._k
        if k is None:
            return bytes(ciphertext)
        n = self._n
        if n >= MAX_NONCE:
            raise NonceExhausted("receive nonce exhausted: open a new session")
        if len(ciphertext) < TAGLEN:
            raise DecryptError("ciphertext shorter than the authentication tag")
        if type(ciphertext) is not bytes:
            ciphertext = bytes(ciphertext)
        try:
            plaintext = _aead_decrypt(ciphertext, ad, _NONCE_PREFIX + n.to_bytes(8, "little"), k)
        except _NaclCryptoError:
            raise DecryptError("authentication tag did not verify") from None
        self._n = n + 1
        return plaintext

    def encrypt_into(self, ad: bytes, plaintext: Buffer, out: Buffer) -> int:
        """EncryptWithAd into ``out`` (writable, >= len(plaintext) + 16); return the length.

        Same nonce rules as :meth:`encrypt_with_ad`, without the input copy and the output
        allocation: libsodium reads ``plaintext`` and writes ``out`` in place through PyNaCl's
        cffi handle (which releases the GIL). ``out`` must not overlap ``plaintext`` unless
        they start at the same address.
        """
        k = self._k
        n_in = len(plaintext)
        view = memoryview(out)
        if view.readonly:
            raise LocalProtocolError("output buffer is read-only")
        if view.nbytes < n_in + TAGLEN:
            raise LocalProtocolError("output buffer too small for ciphertext and tag")
        if k is None:
            view.cast("B")[:n_in] = plaintext
            return n_in
        n = self._n
        if n >= MAX_NONCE:
            raise NonceExhausted("send nonce exhausted: open a new session")
        clen = _ffi.new("unsigned long long *")
        rc = _lib.crypto_aead_chacha20poly1305_ietf_encrypt(
            _ffi.from_buffer(view, require_writable=True),
            clen,
            _ffi.from_buffer(plaintext),
            n_in,
            ad,
            len(ad),
            _ffi.NULL,
            _NONCE_PREFIX + n.to_bytes(8, "little"),
            k,
        )
        if rc != 0:  # pragma: no cover - libsodium's encrypt cannot fail for these sizes
            raise LocalProtocolError("encryption failed")
        self._n = n + 1
        return int(clen[0])

    def decrypt_into(self, ad: bytes, ciphertext: Buffer, out: Buffer) -> int:
        """DecryptWithAd into ``out`` (writable, >= len(ciphertext) - 16); return the length.

        Raises DecryptError if the tag does not verify (``n`` is then left unchanged; ``out``
        may hold garbage and must not be used). Same overlap rule as :meth:`encrypt_into`.
        """
        k = self._k
        n_in = len(ciphertext)
        view = memoryview(out)
        if view.readonly:
            raise LocalProtocolError("output buffer is read-only")
        if k is None:
            if view.nbytes < n_in:
                raise LocalProtocolError("output buffer too small for the plaintext")
            view.cast("B")[:n_in] = ciphertext
            return n_in
        n = self._n
        if n >= MAX_NONCE:
            raise NonceExhausted("receive nonce exhausted: open a new session")
        if n_in < TAGLEN:
            raise DecryptError("ciphertext shorter than the authentication tag")
        if view.nbytes < n_in - TAGLEN:
            raise LocalProtocolError("output buffer too small for the plaintext")
        mlen = _ffi.new("unsigned long long *")
        rc = _lib.crypto_aead_chacha20poly1305_ietf_decrypt(
            _ffi.from_buffer(view, require_writable=True),
            mlen,
            _ffi.NULL,
            _ffi.from_buffer(ciphertext),
            n_in,
            ad,
            len(ad),
            _NONCE_PREFIX + n.to_bytes(8, "little"),
            k,
        )
        if rc != 0:
            raise DecryptError("authentication tag did not verify")
        self._n = n + 1
        return int(mlen[0])

    def rekey(self) -> None:
        """Rekey(): ``k = first 32 bytes of ENCRYPT(k, 2**64 - 1, "", zeros)``; ``n`` is kept."""
        if self._k is None:
            raise LocalProtocolError("cannot rekey a CipherState without a key")
        self._k = _aead_encrypt(_ZEROS32, b"", _REKEY_NONCE, self._k)[:32]
