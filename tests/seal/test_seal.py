"""node.seal: round trips at record boundaries, every tampering a typed error, bounded Argon2id.

Small records (4 KiB, the minimum) keep the boundary cases cheap; one test runs the default
64 KiB records. Passphrase tests use Argon2id's minimum parameters except where the bounds are
the point.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.content import tree_hash
from node.seal import (
    HEADER_SIZE,
    MAX_MEMLIMIT,
    TAG_SIZE,
    TRAILER_SIZE,
    BadKey,
    ContentKey,
    MalformedSeal,
    NotSealed,
    Opener,
    SealReader,
    SealTampered,
    WrongKey,
    open_bytes,
    open_sealed,
    parse_header,
    read_key_file,
    seal_bytes,
    sealed_size,
    write_key_file,
)
from node.seal._format import _HEADER_BODY, _derive, _hmac
from tests._hyp import examples

SHIFT = 12
RS = 1 << SHIFT  # plaintext bytes per record in these tests
CRS = RS + TAG_SIZE  # ciphertext bytes per record
KEY = ContentKey.generate()
FAST_PW = ContentKey.from_passphrase("correct horse", opslimit=1, memlimit=8192)

# Sizes where the padding and trailer fall on every side of a record boundary.
EDGES = sorted(
    {0, 1}
    | {
        k * RS + d
        for k in (0, 1, 2, 3)
        for d in (-TRAILER_SIZE - 1, -TRAILER_SIZE, -TRAILER_SIZE + 1, -1, 0, 1)
    }
    - {-TRAILER_SIZE - 1, -TRAILER_SIZE, -TRAILER_SIZE + 1, -1}
)


def data_of(n: int, seed: int = 0) -> bytes:
    return hashlib.shake_256(f"{n}/{seed}".encode()).digest(n) if n else b""


def records(sealed: bytes) -> list[bytes]:
    body = sealed[HEADER_SIZE:]
    assert len(body) % CRS == 0
    return [body[i : i + CRS] for i in range(0, len(body), CRS)]


def reseal(sealed: bytes, recs: list[bytes]) -> bytes:
    return sealed[:HEADER_SIZE] + b"".join(recs)


@pytest.mark.parametrize("n", EDGES)
def test_round_trip_at_record_boundaries(n: int) -> None:
    data = data_of(n)
    sealed = seal_bytes(data, KEY, record_shift=SHIFT)
    assert len(sealed) == sealed_size(n, SHIFT)
    # the size is told only to within a record: padding + trailer always fit in < 1 record + 40
    assert (len(sealed) - HEADER_SIZE) % CRS == 0
    assert 0 <= (len(sealed) - HEADER_SIZE) // CRS * RS - n - TRAILER_SIZE < RS
    opener = Opener(KEY)
    out = opener.feed(sealed) + opener.close()
    assert out == data
    assert opener.result is not None
    assert opener.result.size == n and opener.result.plaintext_root == tree_hash(data)


@settings(max_examples=examples(60), deadline=None)
@given(
    n=st.one_of(st.sampled_from(EDGES), st.integers(0, 5 * RS)),
    cuts=st.lists(st.integers(0, 6 * CRS), max_size=8),
    pw=st.booleans(),
)
def test_round_trip_any_split(n: int, cuts: list[int], pw: bool) -> None:
    """Sealed in arbitrary pieces (SealReader), opened in arbitrary pieces: same bytes."""
    data = data_of(n, len(cuts))
    key = FAST_PW if pw else KEY
    reader = SealReader(io.BytesIO(data), key, record_shift=SHIFT, read_size=777)
    sealed = bytearray()
    buf = bytearray(1000)
    while k := reader.readinto(buf):
        sealed += buf[:k]
    assert reader.result is not None and reader.result.plaintext_root == tree_hash(data)
    bounds = sorted({0, len(sealed), *(c for c in cuts if c < len(sealed))})
    pieces = [bytes(sealed[a:b]) for a, b in itertools.pairwise(bounds)]
    stream = open_sealed(iter(pieces), key)
    assert b"".join(stream) == data
    assert stream.result is not None and stream.result.size == n


def test_default_records_and_a_large_stream_stay_bounded_in_memory() -> None:
    """64 KiB records; 24 MiB through SealReader and Opener with memory a few records."""
    key = ContentKey.generate()
    src = io.BytesIO(os.urandom(1 << 20) * 24)
    reader = SealReader(src, key)
    opener = Opener(key)
    h_in = hashlib.sha256(src.getvalue())
    h_out = hashlib.sha256()
    tracemalloc.start()
    try:
        while piece := reader.read(1 << 20):
            h_out.update(opener.feed(piece))
        h_out.update(opener.close())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert h_out.digest() == h_in.digest()
    assert peak < 8 << 20, peak


def test_plaintext_marker_is_not_in_the_ciphertext() -> None:
    marker = b"PLAINTEXT-MARKER-42"
    data = (marker + os.urandom(100)) * 500
    sealed = seal_bytes(data, KEY)
    assert marker not in sealed
    # two sealings of the same plaintext under the same key share nothing (fresh stream nonce)
    again = seal_bytes(data, KEY)
    assert sealed[HEADER_SIZE:][:64] != again[HEADER_SIZE:][:64]


# -- tampering -------------------------------------------------------------------------------


SEALED = seal_bytes(data_of(3 * RS + 100), KEY, record_shift=SHIFT)  # 4 records


def test_wrong_key_and_wrong_passphrase_are_wrong_key() -> None:
    with pytest.raises(WrongKey, match="wrong key"):
        open_bytes(SEALED, ContentKey.generate())
    sealed_pw = seal_bytes(b"x" * 10, FAST_PW)
    with pytest.raises(WrongKey, match="wrong passphrase"):
        open_bytes(sealed_pw, ContentKey.from_passphrase("incorrect horse"))
    with pytest.raises(WrongKey, match="random key, not a passphrase"):
        open_bytes(SEALED, FAST_PW)
    # the wrong key is told before any record is decrypted: the header alone suffices
    with pytest.raises(WrongKey):
        Opener(ContentKey.generate()).feed(SEALED[:HEADER_SIZE])


def test_the_derived_key_opens_passphrase_content() -> None:
    """A raw key equal to Argon2id's output opens passphrase content (kdf 1, raw key given)."""
    from node.seal._format import argon2id

    sealed = seal_bytes(b"abc", FAST_PW)
    h = parse_header(sealed)
    assert FAST_PW.passphrase is not None
    derived = argon2id(FAST_PW.passphrase, h.salt, h.opslimit, h.memlimit)
    assert open_bytes(sealed, ContentKey(secret=derived)) == b"abc"


@pytest.mark.parametrize("offset", [0, 8, 9, 10, 11, 12, 20, 36, 67, 68, 99])
def test_any_header_byte_flipped_is_a_typed_error(offset: int) -> None:
    bad = bytearray(SEALED)
    bad[offset] ^= 0x01
    with pytest.raises((NotSealed, MalformedSeal, WrongKey)):
        open_bytes(bytes(bad), KEY)


@pytest.mark.parametrize("record", [0, 1, 3])
@pytest.mark.parametrize("where", [0, 100, CRS - 1])  # the tag is the last 16 bytes
def test_a_flipped_ciphertext_byte_is_tampered(record: int, where: int) -> None:
    bad = bytearray(SEALED)
    bad[HEADER_SIZE + record * CRS + where] ^= 0x80
    with pytest.raises(SealTampered, match=f"record {record} fails"):
        open_bytes(bytes(bad), KEY)


def test_reordered_dropped_repeated_records_are_tampered() -> None:
    recs = records(SEALED)
    cases = {
        "swap": [recs[1], recs[0], *recs[2:]],
        "drop middle": [recs[0], recs[2], recs[3]],
        "drop last": recs[:3],
        "repeat": [recs[0], *recs],
        "last moved first": [recs[3], *recs[:3]],
    }
    for name, recs2 in cases.items():
        with pytest.raises(SealTampered):
            open_bytes(reseal(SEALED, recs2), KEY)
        assert name


@pytest.mark.parametrize("cut", [1, 16, CRS - 1, CRS, CRS + 1, 2 * CRS])
def test_truncation_is_tampered(cut: int) -> None:
    with pytest.raises(SealTampered):
        open_bytes(SEALED[:-cut], KEY)


def test_header_only_and_short_inputs() -> None:
    with pytest.raises(SealTampered, match="cut short"):
        open_bytes(SEALED[:HEADER_SIZE], KEY)
    with pytest.raises(MalformedSeal, match="cut short"):
        open_bytes(SEALED[: HEADER_SIZE - 1], KEY)
    with pytest.raises(NotSealed):
        open_bytes(b"", KEY)
    with pytest.raises(NotSealed):
        open_bytes(b"plain text that is not sealed at all", KEY)
    with pytest.raises(NotSealed):
        open_bytes(b"BCAI", KEY)


def test_records_of_another_sealing_under_the_same_key_are_tampered() -> None:
    other = seal_bytes(data_of(3 * RS + 100), KEY, record_shift=SHIFT)
    recs, recs2 = records(SEALED), records(other)
    with pytest.raises(SealTampered):
        open_bytes(reseal(SEALED, [recs[0], recs2[1], *recs[2:]]), KEY)


def _forge(key: ContentKey, plaintext_stream: bytes, *, shift: int = SHIFT) -> bytes:
    """Seal an arbitrary plaintext stream (bad trailer, bad padding): what a buggy or malicious
    sealer holding the key could produce. The opener must refuse it."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from node.seal._format import new_header, record_nonce

    keys = new_header(key, record_shift=shift)
    aead = ChaCha20Poly1305(keys.payload_key)
    rs = 1 << shift
    assert len(plaintext_stream) % rs == 0
    n = len(plaintext_stream) // rs
    out = [keys.header.raw]
    for i in range(n):
        rec = plaintext_stream[i * rs : (i + 1) * rs]
        out.append(aead.encrypt(record_nonce(i, i == n - 1), rec, keys.header.raw))
    return b"".join(out)


def test_a_lying_trailer_or_padding_is_tampered() -> None:
    data = data_of(100)
    root = tree_hash(data)
    pad = RS - 100 - TRAILER_SIZE

    def stream(size: int, r: bytes, padding: bytes | None = None) -> bytes:
        return (
            data + (padding if padding is not None else bytes(pad)) + struct.pack(">Q32s", size, r)
        )

    assert open_bytes(_forge(KEY, stream(100, root)), KEY) == data  # the honest stream opens
    with pytest.raises(SealTampered, match="hashes to"):
        open_bytes(_forge(KEY, stream(100, bytes(32))), KEY)
    with pytest.raises(SealTampered, match="padding"):
        open_bytes(_forge(KEY, stream(100, root, b"\x01" + bytes(pad - 1))), KEY)
    with pytest.raises(SealTampered, match=r"hashes to|padding"):
        open_bytes(_forge(KEY, stream(99, tree_hash(data[:99]))), KEY)
    with pytest.raises(SealTampered, match="cannot hold"):
        open_bytes(_forge(KEY, stream(10**9, root)), KEY)
    # a whole record of padding more than needed (size told less precisely than it must be)
    with pytest.raises(SealTampered, match="cannot hold"):
        open_bytes(
            _forge(KEY, stream(100, root) + bytes(RS - 40) + struct.pack(">Q32s", 100, root)), KEY
        )


# -- Argon2id bounds, header fields ----------------------------------------------------------


def _header_with(
    *,
    version: int = 1,
    kdf: int = 1,
    shift: int = 16,
    flags: int = 0,
    ops: int = 1,
    mem_kib: int = 8,
) -> bytes:
    body = _HEADER_BODY.pack(
        b"BCAISEAL", version, kdf, shift, flags, ops, mem_kib, os.urandom(16), os.urandom(32)
    )
    return body + bytes(32)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"mem_kib": 64 << 20}, "memlimit"),  # 64 GiB
        ({"mem_kib": (MAX_MEMLIMIT >> 10) + 1}, "memlimit"),
        ({"mem_kib": 0xFFFFFFFF}, "memlimit"),
        ({"mem_kib": 7}, "memlimit"),
        ({"ops": 11}, "opslimit"),
        ({"ops": 0xFFFFFFFF}, "opslimit"),
        ({"ops": 0}, "opslimit"),
        ({"version": 2}, "version 2"),
        ({"kdf": 7}, "KDF 7"),
        ({"flags": 1}, "flags"),
        ({"shift": 11}, "record size"),
        ({"shift": 23}, "record size"),
        ({"shift": 255}, "record size"),
        ({"kdf": 0}, "carries KDF parameters"),
    ],
)
def test_hostile_headers_are_refused_before_any_kdf_runs(
    fields: dict[str, int], match: str
) -> None:
    raw = _header_with(**fields)
    with pytest.raises(MalformedSeal, match=match):
        parse_header(raw)
    # the opener refuses it from the header alone, before Argon2id could allocate anything
    with pytest.raises(MalformedSeal):
        Opener(ContentKey.from_passphrase("pw", opslimit=1, memlimit=8192)).feed(raw + bytes(CRS))


def test_header_at_the_bounds_is_accepted_and_costs_what_it_says() -> None:
    h = parse_header(_header_with(ops=10, mem_kib=MAX_MEMLIMIT >> 10))
    assert (h.opslimit, h.memlimit) == (10, MAX_MEMLIMIT)


def test_a_sealer_refuses_out_of_bounds_parameters() -> None:
    with pytest.raises(BadKey):
        ContentKey.from_passphrase("pw", memlimit=2 * MAX_MEMLIMIT)
    with pytest.raises(BadKey):
        ContentKey.from_passphrase("pw", opslimit=0)
    with pytest.raises(BadKey):
        ContentKey.from_passphrase("")


def test_header_mac_is_what_the_format_says() -> None:
    """HMAC-SHA256 under the HKDF-derived header key over bytes 0..67 (docs/encryption.md)."""
    h = parse_header(SEALED)
    assert KEY.secret is not None
    k_header, _ = _derive(KEY.secret, h.stream_nonce)
    assert _hmac(k_header, SEALED[:68]) == SEALED[68:100]


# -- keys ------------------------------------------------------------------------------------


def test_key_text_round_trip_and_bad_texts() -> None:
    key = ContentKey.generate()
    assert ContentKey.from_text(key.text()) == key
    assert ContentKey.from_text("  " + key.text() + "\n") == key
    assert key.text() not in repr(key) and "key" in repr(key)
    for bad in [
        "",
        "seal1:",
        "seal2:" + key.text()[6:],
        key.text()[:-1],
        key.text() + "A",
        "seal1:!!!",
    ]:
        with pytest.raises(BadKey):
            ContentKey.from_text(bad)
    with pytest.raises(BadKey):
        FAST_PW.text()
    assert "correct" not in repr(FAST_PW)


def test_key_file_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    key = ContentKey.generate()
    path = tmp_path / "k"
    write_key_file(path, key)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_key_file(path) == key
    with pytest.raises(FileExistsError):
        write_key_file(path, ContentKey.generate())
    assert read_key_file(path) == key
    with pytest.raises(BadKey, match="cannot read"):
        read_key_file(tmp_path / "missing")
    (tmp_path / "junk").write_text("not a key\n")
    with pytest.raises(BadKey, match="junk"):
        read_key_file(tmp_path / "junk")
