"""The OpenSSL AEAD (``cryptography``) against the libsodium one (PyNaCl) it replaced.

Same key, nonce layout, associated data and plaintext must give the same bytes through every
CipherState entry point, and every tampering that libsodium rejects must raise the project's
typed DecryptError (never cryptography's InvalidTag), leaving the nonce where it was.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt as sodium_decrypt,
)
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_encrypt as sodium_encrypt,
)
from nacl.exceptions import CryptoError

import node.noise._cipher as cipher_module
from node.noise import CipherState, DecryptError

keys = st.binary(min_size=32, max_size=32)
nonces = st.integers(0, 2**64 - 2)
ads = st.binary(max_size=80)
plaintexts = st.binary(max_size=3000)


def sodium_nonce(n: int) -> bytes:
    """The Noise ChaChaPoly nonce as the old code built it."""
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


def at(key: bytes, nonce: int) -> CipherState:
    c = CipherState(key)
    c.set_nonce(nonce)
    return c


@given(key=keys, nonce=nonces, ad=ads, plaintext=plaintexts)
def test_same_ciphertext_as_libsodium_through_every_entry_point(
    key: bytes, nonce: int, ad: bytes, plaintext: bytes
) -> None:
    expected = sodium_encrypt(plaintext, ad, sodium_nonce(nonce), key)
    assert at(key, nonce).encrypt_with_ad(ad, plaintext) == expected
    out = bytearray(len(plaintext) + 16 + 7)
    c = at(key, nonce)
    n = c.encrypt_into(ad, memoryview(plaintext), memoryview(out)[2:])
    assert n == len(expected) and out[2 : 2 + n] == expected and c.nonce == nonce + 1
    # and libsodium opens what OpenSSL sealed, OpenSSL opens what libsodium sealed
    assert sodium_decrypt(bytes(out[2 : 2 + n]), ad, sodium_nonce(nonce), key) == plaintext
    assert at(key, nonce).decrypt_with_ad(ad, expected) == plaintext
    back = bytearray(len(plaintext) + 3)
    d = at(key, nonce)
    assert d.decrypt_into(ad, bytearray(expected), back) == len(plaintext)
    assert back[: len(plaintext)] == plaintext and d.nonce == nonce + 1


@given(
    key=keys,
    nonce=nonces,
    ad=ads,
    plaintext=plaintexts,
    where=st.integers(min_value=0),
    bit=st.integers(0, 7),
    into=st.booleans(),
)
def test_tampering_fails_in_both_backends_with_the_typed_error(
    key: bytes, nonce: int, ad: bytes, plaintext: bytes, where: int, bit: int, into: bool
) -> None:
    ciphertext = bytearray(sodium_encrypt(plaintext, ad, sodium_nonce(nonce), key))
    ciphertext[where % len(ciphertext)] ^= 1 << bit
    with pytest.raises(CryptoError):
        sodium_decrypt(bytes(ciphertext), ad, sodium_nonce(nonce), key)
    c = at(key, nonce)
    with pytest.raises(DecryptError) as info:
        if into:
            c.decrypt_into(ad, ciphertext, bytearray(len(ciphertext)))
        else:
            c.decrypt_with_ad(ad, ciphertext)
    assert type(info.value) is DecryptError and info.value.__cause__ is None
    assert c.nonce == nonce


@given(
    key=keys, nonce=st.integers(0, 2**64 - 3), ad=ads, plaintext=st.binary(min_size=1, max_size=200)
)
def test_wrong_ad_nonce_or_key_and_truncation_fail_like_libsodium(
    key: bytes, nonce: int, ad: bytes, plaintext: bytes
) -> None:
    ciphertext = sodium_encrypt(plaintext, ad, sodium_nonce(nonce), key)
    other_key = bytes([key[0] ^ 1]) + key[1:]
    cases = [
        (key, nonce, ad + b"x", ciphertext),
        (key, nonce + 1, ad, ciphertext),
        (other_key, nonce, ad, ciphertext),
        (key, nonce, ad, ciphertext[:-1]),
        (key, nonce, ad, ciphertext[1:]),
    ]
    for k, n, a, ct in cases:
        with pytest.raises(CryptoError):
            sodium_decrypt(ct, a, sodium_nonce(n), k)
        with pytest.raises(DecryptError):
            at(k, n).decrypt_with_ad(a, ct)


@given(key=keys, nonce=nonces, rekeys=st.integers(1, 4), plaintext=plaintexts)
def test_rekey_matches_libsodium(key: bytes, nonce: int, rekeys: int, plaintext: bytes) -> None:
    c = at(key, nonce)
    k = key
    for _ in range(rekeys):
        c.rekey()
        k = sodium_encrypt(bytes(32), b"", sodium_nonce(2**64 - 1), k)[:32]
    assert c.nonce == nonce
    assert c.encrypt_with_ad(b"", plaintext) == sodium_encrypt(
        plaintext, b"", sodium_nonce(nonce), k
    )


def test_the_aead_object_is_built_once_per_key_not_per_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[bytes] = []
    real = cipher_module._ChaCha20Poly1305

    def counting(key: bytes) -> object:
        built.append(key)
        return real(key)

    monkeypatch.setitem(
        cipher_module._SUITES, "ChaChaPoly", (counting, cipher_module._SUITES["ChaChaPoly"][1])
    )
    send, recv = CipherState(bytes(32)), CipherState(bytes(32))
    out, back = bytearray(100), bytearray(100)
    for _ in range(50):
        n = send.encrypt_into(b"", b"m" * 60, out)
        recv.decrypt_into(b"", memoryview(out)[:n], back)
        recv.decrypt_with_ad(b"", send.encrypt_with_ad(b"", b"x"))
    assert len(built) == 2
    send.rekey()
    recv.rekey()
    assert len(built) == 4
    assert recv.decrypt_with_ad(b"", send.encrypt_with_ad(b"", b"after rekey")) == b"after rekey"
    send.initialize_key(None)
    assert not send.has_key() and len(built) == 4
