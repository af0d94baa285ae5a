"""CipherState and SymmetricState against their definitions in the Noise spec."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import crypto_aead_chacha20poly1305_ietf_encrypt

from node.noise import (
    CipherState,
    DecryptError,
    LocalProtocolError,
    NonceExhausted,
    SymmetricState,
)

KEY = bytes(range(32))


def test_without_a_key_data_passes_through() -> None:
    c = CipherState()
    assert not c.has_key()
    assert c.encrypt_with_ad(b"ad", bytearray(b"clear")) == b"clear"
    assert c.decrypt_with_ad(b"ad", b"clear") == b"clear"
    assert c.nonce == 0


def test_nonce_is_four_zero_bytes_then_little_endian_counter() -> None:
    c = CipherState(KEY)
    n = 0x0102030405060708
    c.set_nonce(n)
    expected = crypto_aead_chacha20poly1305_ietf_encrypt(
        b"msg", b"ad", b"\x00\x00\x00\x00" + bytes([8, 7, 6, 5, 4, 3, 2, 1]), KEY
    )
    assert c.encrypt_with_ad(b"ad", b"msg") == expected
    assert c.nonce == n + 1


@given(
    ad=st.binary(max_size=64),
    plaintext=st.binary(max_size=512),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_round_trip_and_counters(ad: bytes, plaintext: bytes, kind: type) -> None:
    send, recv = CipherState(KEY), CipherState(KEY)
    for i in range(3):
        ciphertext = send.encrypt_with_ad(ad, kind(plaintext))
        assert len(ciphertext) == len(plaintext) + 16
        assert recv.decrypt_with_ad(ad, kind(ciphertext)) == plaintext
        assert send.nonce == recv.nonce == i + 1


def test_failed_decryption_keeps_the_nonce() -> None:
    send, recv = CipherState(KEY), CipherState(KEY)
    ciphertext = send.encrypt_with_ad(b"", b"data")
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"other ad", ciphertext)
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"", ciphertext[:15])
    assert recv.nonce == 0
    assert recv.decrypt_with_ad(b"", ciphertext) == b"data"


def test_last_nonce_is_usable_and_the_reserved_one_is_not() -> None:
    c = CipherState(KEY)
    c.set_nonce(2**64 - 2)
    c.encrypt_with_ad(b"", b"")
    assert c.nonce == 2**64 - 1
    with pytest.raises(NonceExhausted):
        c.encrypt_with_ad(b"", b"")
    with pytest.raises(NonceExhausted):
        c.decrypt_with_ad(b"", bytes(16))
    with pytest.raises(LocalProtocolError):
        c.set_nonce(2**64)
    with pytest.raises(LocalProtocolError):
        c.set_nonce(-1)


def test_rekey_follows_the_spec_and_keeps_the_nonce() -> None:
    c = CipherState(KEY)
    c.set_nonce(7)
    c.rekey()
    reserved = b"\x00\x00\x00\x00" + b"\xff" * 8
    new_key = crypto_aead_chacha20poly1305_ietf_encrypt(bytes(32), b"", reserved, KEY)[:32]
    assert c.nonce == 7
    reference = CipherState(new_key)
    reference.set_nonce(7)
    assert c.encrypt_with_ad(b"", b"x") == reference.encrypt_with_ad(b"", b"x")


def test_rekey_without_key_and_bad_key_length_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        CipherState().rekey()
    with pytest.raises(LocalProtocolError):
        CipherState(bytes(31))


def _hkdf(ck: bytes, ikm: bytes, n: int) -> list[bytes]:
    temp = hmac.new(ck, ikm, hashlib.sha256).digest()
    outs, prev = [], b""
    for i in range(1, n + 1):
        prev = hmac.new(temp, prev + bytes([i]), hashlib.sha256).digest()
        outs.append(prev)
    return outs


def test_symmetric_state_initialisation_pads_or_hashes_the_name() -> None:
    short = b"Noise_NN_25519_ChaChaPoly_SHA256"  # exactly 32 bytes: used as is
    assert SymmetricState(short).get_handshake_hash() == short
    longer = b"Noise_XXpsk3_25519_ChaChaPoly_SHA256"
    assert SymmetricState(longer).get_handshake_hash() == hashlib.sha256(longer).digest()
    assert SymmetricState(b"abc").get_handshake_hash() == b"abc" + bytes(29)


def test_symmetric_state_operations_match_their_definitions() -> None:
    name = b"Noise_NN_25519_ChaChaPoly_SHA256"
    sym = SymmetricState(name)
    h = ck = name
    sym.mix_hash(b"prologue")
    h = hashlib.sha256(h + b"prologue").digest()
    assert sym.get_handshake_hash() == h
    assert not sym.has_key()
    assert sym.encrypt_and_hash(b"clear") == b"clear"
    h = hashlib.sha256(h + b"clear").digest()

    sym.mix_key(b"dh output")
    ck, k = _hkdf(ck, b"dh output", 2)
    ciphertext = sym.encrypt_and_hash(b"secret")
    assert ciphertext == CipherState(k).encrypt_with_ad(h, b"secret")
    h = hashlib.sha256(h + ciphertext).digest()

    sym.mix_key_and_hash(b"psk")
    ck, temp_h, k = _hkdf(ck, b"psk", 3)
    h = hashlib.sha256(h + temp_h).digest()
    assert sym.get_handshake_hash() == h

    c1, c2 = sym.split()
    k1, k2 = _hkdf(ck, b"", 2)
    assert c1.encrypt_with_ad(b"", b"t") == CipherState(k1).encrypt_with_ad(b"", b"t")
    assert c2.encrypt_with_ad(b"", b"t") == CipherState(k2).encrypt_with_ad(b"", b"t")


def test_decrypt_and_hash_checks_h_as_associated_data() -> None:
    a = SymmetricState(b"Noise_NN_25519_ChaChaPoly_SHA256")
    b = SymmetricState(b"Noise_NN_25519_ChaChaPoly_SHA256")
    a.mix_key(b"k")
    b.mix_key(b"k")
    b.mix_hash(b"diverged")
    with pytest.raises(DecryptError):
        b.decrypt_and_hash(a.encrypt_and_hash(b"payload"))


@given(st.binary(max_size=2000), st.binary(max_size=40), st.integers(0, 2**64 - 2))
def test_encrypt_into_and_decrypt_into_match_the_copying_calls(
    plaintext: bytes, ad: bytes, nonce: int
) -> None:
    a, b, ref = CipherState(KEY), CipherState(KEY), CipherState(KEY)
    for c in (a, b, ref):
        c.set_nonce(nonce)
    expected = ref.encrypt_with_ad(ad, plaintext)
    out = bytearray(len(plaintext) + 16 + 5)
    n = a.encrypt_into(ad, memoryview(bytearray(plaintext)), memoryview(out)[3:])
    assert n == len(expected) and bytes(out[3 : 3 + n]) == expected
    assert a.nonce == nonce + 1
    back = bytearray(len(plaintext))
    assert b.decrypt_into(ad, memoryview(out)[3 : 3 + n], back) == len(plaintext)
    assert bytes(back) == plaintext and b.nonce == nonce + 1


def test_decrypt_into_fails_closed_and_keeps_the_nonce() -> None:
    a, b = CipherState(KEY), CipherState(KEY)
    ct = bytearray(a.encrypt_with_ad(b"", b"secret message"))
    ct[-1] ^= 1
    with pytest.raises(DecryptError):
        b.decrypt_into(b"", ct, bytearray(64))
    assert b.nonce == 0
    with pytest.raises(DecryptError):
        b.decrypt_into(b"", b"short", bytearray(64))


def test_into_calls_check_their_output_buffer() -> None:
    c = CipherState(KEY)
    with pytest.raises(LocalProtocolError):
        c.encrypt_into(b"", b"12345", bytearray(20))  # needs 5 + 16
    with pytest.raises(LocalProtocolError):
        c.encrypt_into(b"", b"x", b"\x00" * 64)  # read-only
    ct = c.encrypt_with_ad(b"", b"12345")
    with pytest.raises(LocalProtocolError):
        CipherState(KEY).decrypt_into(b"", ct, bytearray(4))
    assert c.nonce == 1
    clear = CipherState()  # no key: copied through
    out = bytearray(30)
    assert clear.encrypt_into(b"", b"clear", out) == 5 and out[:5] == b"clear"
    assert clear.decrypt_into(b"", b"clear", out) == 5


def test_decrypt_into_in_place() -> None:
    a, b = CipherState(KEY), CipherState(KEY)
    buf = bytearray(a.encrypt_with_ad(b"", b"in place please"))
    n = b.decrypt_into(b"", memoryview(buf), memoryview(buf))
    assert bytes(buf[:n]) == b"in place please"


@given(st.lists(st.binary(max_size=3000), max_size=8), st.integers(0, 2**64 - 10))
def test_decrypt_many_into_matches_one_by_one(plaintexts: list[bytes], nonce: int) -> None:
    a, b = CipherState(KEY), CipherState(KEY)
    a.set_nonce(nonce)
    b.set_nonce(nonce)
    cts = [a.encrypt_with_ad(b"", p) for p in plaintexts]
    total = sum(map(len, plaintexts))
    out = bytearray(total + 7)
    assert b.decrypt_many_into(b"", [memoryview(c) for c in cts], out) == total
    assert bytes(out[:total]) == b"".join(plaintexts)
    assert b.nonce == nonce + len(plaintexts)


def test_decrypt_many_into_stops_at_a_bad_tag_with_the_nonce_there() -> None:
    a, b = CipherState(KEY), CipherState(KEY)
    cts = [bytearray(a.encrypt_with_ad(b"", bytes([i]) * 100)) for i in range(5)]
    cts[3][-1] ^= 1
    out = bytearray(500)
    with pytest.raises(DecryptError):
        b.decrypt_many_into(b"", cts, out)
    assert b.nonce == 3 and out[:300] == bytes([0]) * 100 + bytes([1]) * 100 + bytes([2]) * 100
    with pytest.raises(DecryptError):
        CipherState(KEY).decrypt_many_into(b"", [cts[0], b"short"], out)  # checked first
    with pytest.raises(LocalProtocolError):
        CipherState(KEY).decrypt_many_into(b"", cts[:2], bytearray(199))
    with pytest.raises(LocalProtocolError):
        CipherState(KEY).decrypt_many_into(b"", cts[:2], bytes(400))


def test_decrypt_many_into_at_the_end_of_the_nonce_space() -> None:
    a, b = CipherState(KEY), CipherState(KEY)
    a.set_nonce(2**64 - 3)
    b.set_nonce(2**64 - 3)
    cts = [a.encrypt_with_ad(b"", b"x" * 10) for _ in range(2)]
    out = bytearray(30)
    assert b.decrypt_many_into(b"", cts, out) == 20 and b.nonce == 2**64 - 1
    with pytest.raises(NonceExhausted):
        b.decrypt_many_into(b"", cts[:1], out)
    c, d = CipherState(KEY), CipherState(KEY)
    c.set_nonce(2**64 - 2)
    d.set_nonce(2**64 - 2)
    last = d.encrypt_with_ad(b"", b"y" * 10)  # the last nonce there is
    with pytest.raises(NonceExhausted):  # the first decrypts, the second has no nonce left
        c.decrypt_many_into(b"", [last, last], out)
    assert c.nonce == 2**64 - 1 and out[:10] == b"y" * 10


@given(st.lists(st.binary(max_size=3000), max_size=8), st.integers(0, 3), st.booleans())
def test_encrypt_many_into_matches_one_by_one(
    plaintexts: list[bytes], gap: int, keyed: bool
) -> None:
    a, ref = (CipherState(KEY), CipherState(KEY)) if keyed else (CipherState(), CipherState())
    expected = [ref.encrypt_with_ad(b"", p) for p in plaintexts]
    out = bytearray(sum(len(p) + gap + 16 for p in plaintexts))  # room for tags either way
    assert a.encrypt_many_into(b"", plaintexts, out, gap) == sum(len(c) + gap for c in expected)
    off = 0
    for c in expected:
        assert bytes(out[off + gap : off + gap + len(c)]) == c
        off += gap + len(c)
    assert a.nonce == ref.nonce
    with pytest.raises(LocalProtocolError):
        a.encrypt_many_into(b"", [b"x"], bytearray(gap + 16), gap)


def test_encrypt_many_into_at_the_end_of_the_nonce_space() -> None:
    a, ref = CipherState(KEY), CipherState(KEY)
    a.set_nonce(2**64 - 2)
    ref.set_nonce(2**64 - 2)
    out = bytearray(100)
    with pytest.raises(NonceExhausted):  # one nonce left for two messages
        a.encrypt_many_into(b"", [b"a", b"b"], out, 2)
    assert a.nonce == 2**64 - 1 and bytes(out[2:19]) == ref.encrypt_with_ad(b"", b"a")
