"""SymmetricState (Noise spec section 5.2): the chaining key, the handshake hash, a cipher."""

from __future__ import annotations

from ._cipher import CHACHAPOLY, CipherState
from ._crypto import HASHLEN, hash_, hkdf2, hkdf3


class SymmetricState:
    """Holds ``ck`` and ``h`` and the CipherState used during the handshake."""

    __slots__ = ("_cipher", "_ck", "_h")

    def __init__(self, protocol_name: bytes, cipher: str = CHACHAPOLY) -> None:
        """InitializeSymmetric(protocol_name); ``cipher`` is the name's cipher part."""
        if len(protocol_name) <= HASHLEN:
            h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            h = hash_(protocol_name)
        self._h = h
        self._ck = h
        self._cipher = CipherState(cipher=cipher)

    @property
    def cipher(self) -> CipherState:
        """The handshake CipherState."""
        return self._cipher

    def has_key(self) -> bool:
        """Whether a DH or PSK has been mixed in yet (payloads are then encrypted)."""
        return self._cipher.has_key()

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey: ``ck, k = HKDF(ck, ikm, 2)``; start a new cipher key."""
        self._ck, temp_k = hkdf2(self._ck, input_key_material)
        self._cipher.initialize_key(temp_k)

    def mix_hash(self, data: bytes) -> None:
        """MixHash: ``h = HASH(h || data)``."""
        self._h = hash_(self._h + data)

    def mix_key_and_hash(self, input_key_material: bytes) -> None:
        """MixKeyAndHash (used for ``psk``): ``ck, temp_h, k = HKDF(ck, ikm, 3)``."""
        self._ck, temp_h, temp_k = hkdf3(self._ck, input_key_material)
        self.mix_hash(temp_h)
        self._cipher.initialize_key(temp_k)

    def get_handshake_hash(self) -> bytes:
        """GetHandshakeHash(): ``h``, a channel-binding value once the handshake is done."""
        return self._h

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash: encrypt with ``h`` as associated data, then mix the ciphertext."""
        ciphertext = self._cipher.encrypt_with_ad(self._h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash: decrypt with ``h`` as associated data, then mix the ciphertext."""
        plaintext = self._cipher.decrypt_with_ad(self._h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split(): the initiator-to-responder and responder-to-initiator CipherStates."""
        temp_k1, temp_k2 = hkdf2(self._ck, b"")
        cipher = self._cipher.cipher
        return CipherState(temp_k1, cipher), CipherState(temp_k2, cipher)
